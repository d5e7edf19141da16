"""Small dialogs: a yes/no confirmation and a one-field prompt that validates as you type.

Every dialog answers Enter (accept) and Escape (cancel), so no action needs the mouse, and
dismisses with a typed result (None for cancel) that the app's callback acts on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Generic, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from overlay_core.api.schema import NWID_HEX_DIGITS, NWID_SHAPE_REASON, check_nwid_text

from ..widgets.reason_line import ReasonLine

T = TypeVar("T")
NAME_MAX = 64


class ConfirmModal(ModalScreen[bool]):
    """Ask before doing something that cannot be undone from here. y / n / Escape."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, question: str, yes: str = "Yes") -> None:
        super().__init__(classes="dialog-screen")
        self._title, self._question, self._yes = title, question, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._title, classes="dialog-title")
            yield Static(self._question, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self._yes} (y)", variant="error", id="yes", compact=True)
                yield Button("Cancel (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # Enter on a reflex must not leave a network

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class PromptModal(ModalScreen[T | None], Generic[T]):
    """One line of input, checked on every keystroke by `check` (text -> value, or
    ValueError whose message is shown under the field). Enter accepts only a valid value.

    Args:
        check: parses the text; raises ValueError with the reason it is refused.
        describe: a line shown while the text is valid (what will happen).
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        help_text: str,
        check: Callable[[str], T],
        *,
        value: str = "",
        placeholder: str = "",
        describe: Callable[[T], str] | None = None,
    ) -> None:
        super().__init__(classes="dialog-screen")
        self._title, self._help = title, help_text
        self._check, self._describe = check, describe
        self._value, self._placeholder = value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._title, classes="dialog-title")
            yield Static(self._help, classes="dialog-body")
            yield Input(self._value, placeholder=self._placeholder, id="prompt-input")
            yield ReasonLine(id="prompt-reason")
            yield Static("Enter: OK · Escape: cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._validate(self._value)

    def _validate(self, text: str) -> tuple[bool, T | None]:
        reason = self.query_one("#prompt-reason", ReasonLine)
        if not text.strip() and not self._value:
            reason.clear()
            return False, None
        try:
            value = self._check(text)
        except ValueError as exc:
            reason.bad(str(exc))
            return False, None
        reason.good(self._describe(value) if self._describe else "")
        return True, value

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._validate(event.value)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        ok, value = self._validate(event.value)
        if ok:
            self.dismiss(value)
        elif not event.value.strip():
            self.query_one("#prompt-reason", ReasonLine).bad("type a value, or Escape to cancel")

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- the checks the prompts use


def parse_nwid(text: str) -> str:
    """A pasted network id: whitespace anywhere is dropped (a wrapped line, a trailing
    newline); then it must be 16 hex digits, with the daemon's words if not."""
    compact = "".join(text.split()).lower()
    bad = [c for c in compact if c not in "0123456789abcdef"]
    if bad:
        raise ValueError(f"{NWID_SHAPE_REASON}; {bad[0]!r} is not a hex digit")
    if len(compact) != NWID_HEX_DIGITS:
        raise ValueError(f"{NWID_SHAPE_REASON}; this is {len(compact)}")
    return check_nwid_text(compact)


def parse_name(text: str) -> str:
    name = text.strip()
    if len(name) > NAME_MAX:
        raise ValueError(f"a name is at most {NAME_MAX} characters, this is {len(name)}")
    return name


def parse_ips(text: str) -> list[str]:
    """Comma- or space-separated IPv4/IPv6 addresses; empty takes every address away.
    Whether each lies in a pool is the controller's call: it answers with its reason."""
    ips: list[str] = []
    for item in text.replace(",", " ").split():
        try:
            ips.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IPv4 or IPv6 address") from None
    return ips
