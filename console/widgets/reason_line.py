"""ReasonLine: the line under a form's fields that says, as the user types, whether what
is there will do: "✓ what will happen" in the theme's success colour, "✗ the rule it
breaks" in its error colour (the daemon's own words where the console checks with its
rules), or nothing yet. The colours are console/ztui.tcss's `.reason-line` classes."""

from __future__ import annotations

from textual.widgets import Static


class ReasonLine(Static):
    """Starts empty; `good`, `bad` and `clear` set the words and the colour together."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="reason-line")

    def good(self, text: str = "") -> None:
        """Valid: what will happen, or a bare tick."""
        self._say(f"✓ {text}" if text else "✓", "reason-line -good")

    def bad(self, reason: str) -> None:
        """Refused, and why."""
        self._say(f"✗ {reason}", "reason-line -bad")

    def clear(self) -> None:
        """Nothing to judge yet."""
        self._say("", "reason-line")

    def _say(self, text: str, classes: str) -> None:
        self.update(text)
        self.set_classes(classes)
