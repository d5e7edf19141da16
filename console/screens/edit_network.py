"""`e` on a network: local MTU, MSS clamping and allow* settings, with a calculator that
shows its working against the tightest path this node has, so the choice is informed:

    path MTU 1432 - overhead 45 = 1387 largest frame in one datagram - Ethernet 14 = 1373
    2800: frames up to 2800 bytes; each crosses this 1432-byte path as 3 datagrams

Values are checked as you type with the daemon's own rules; the daemon checks again and
its reason is shown if it still refuses.
"""

from __future__ import annotations

from typing import Any, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from overlay_core.api.schema import NetworkJson

from .. import mtu as calc
from ..widgets.reason_line import ReasonLine
from ..widgets.toggles import Checkbox

ALLOW_FLAGS: list[tuple[Literal["allow_managed", "allow_global", "allow_default"], str]] = [
    ("allow_managed", "managed addresses/routes"),
    ("allow_global", "global ones"),
    ("allow_default", "default route"),
]


class EditNetworkModal(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the settings body for PATCH /networks/{nwid}, or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, network: NetworkJson, path: calc.TightestPath | None) -> None:
        super().__init__(classes="dialog-screen")
        self.network = network
        self.path = path

    def compose(self) -> ComposeResult:
        network, settings = self.network, self.network["settings"]
        title = f"Settings of {network['name'] or network['nwid']} ({network['nwid']})"
        with Vertical(classes="dialog wide"):
            yield Static(title, classes="dialog-title")
            with Horizontal(classes="field"):
                yield Static("MTU", classes="field-label")
                yield Input(
                    "" if settings["mtu"] is None else str(settings["mtu"]),
                    placeholder=f"network's ({network['mtu']})",
                    id="mtu",
                    compact=True,
                )
                yield Static("MSS", classes="field-label")
                yield Input(
                    settings["mss"] or "",
                    placeholder=f"network's ({network['mss']})",
                    id="mss",
                    compact=True,
                )
            with Horizontal(classes="field"):
                yield Static("allow", classes="field-label")
                for key, label in ALLOW_FLAGS:
                    yield Checkbox(label, bool(settings[key]), id=key, compact=True)
            yield Static(id="calc", classes="calc")
            yield ReasonLine(id="edit-reason")
            yield Static(
                "Enter or Ctrl+S: save · Escape: cancel · empty MTU/MSS: the network's value",
                classes="dialog-keys",
            )

    def on_mount(self) -> None:
        self.query_one("#mtu", Input).focus()
        self._update()

    def _read(self) -> dict[str, Any]:
        """The form as a settings body; ValueError with the rule a field breaks."""
        body: dict[str, Any] = {
            "mtu": calc.check_mtu(self.query_one("#mtu", Input).value),
            "mss": calc.check_mss(self.query_one("#mss", Input).value),
        }
        for key, _ in ALLOW_FLAGS:
            body[key] = self.query_one(f"#{key}", Checkbox).value
        return body

    def _update(self) -> dict[str, Any] | None:
        reason = self.query_one("#edit-reason", ReasonLine)
        try:
            body = self._read()
        except ValueError as exc:
            reason.bad(str(exc))
            body = None
        else:
            reason.clear()
        mtu = body["mtu"] if body and body["mtu"] is not None else self.network["mtu"]
        mss = body["mss"] if body and body["mss"] is not None else self.network["mss"]
        lines = calc.arithmetic_lines(self.path, mtu)
        lines.append("")
        lines.append(f"MTU {calc.mtu_sentence(mtu, self.path)}")
        lines.append(f"MSS {calc.mss_sentence(mss, mtu, self.path)}")
        self.query_one("#calc", Static).update("\n".join(lines))
        return body

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        self._update()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    @on(Button.Pressed)
    def _pressed(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        body = self._update()
        if body is None:
            self.notify("Not saved: fix the value marked ✗ first", severity="warning")
            return
        self.dismiss(body)

    def action_cancel(self) -> None:
        self.dismiss(None)
