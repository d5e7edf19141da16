"""Checkbox and RadioButton that say their state in glyphs: [x] / [ ] and (•) / ( ).

Textual's own draw the same "▐X▌" on and off and tell them apart by colour alone, which
on a 16-colour console (TERM=linux) or to a colour-blind user is no difference at all.
The console's dialogs use these instead of textual.widgets' (a test checks that no
screen imports those directly).
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox as TextualCheckbox
from textual.widgets import RadioButton as TextualRadioButton


class Checkbox(TextualCheckbox):
    """`[x] label` when checked, `[ ] label` when not."""

    ON, OFF = "[x]", "[ ]"

    @property
    def _button(self) -> Content:
        glyph = self.ON if self.value else self.OFF
        return Content.styled(glyph, self.get_visual_style("toggle--button"))


class RadioButton(TextualRadioButton):
    """`(•) label` when chosen, `( ) label` when not."""

    ON, OFF = "(•)", "( )"

    @property
    def _button(self) -> Content:
        glyph = self.ON if self.value else self.OFF
        return Content.styled(glyph, self.get_visual_style("toggle--button"))
