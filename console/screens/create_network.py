"""`c` on Members: create a network on this node's controller — a name, an IPv4 pool from
presets or typed, private (approval needed) or public. The controller answers with the new
id, which members paste into their `j`."""

from __future__ import annotations

import ipaddress
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, RadioButton, RadioSet, Static

from .modals import parse_name

# IPv4 only: the controller's pools hand out IPv4; IPv6 addresses are assigned by hand (i).
POOL_PRESETS = ["10.147.17.0/24", "192.168.191.0/24", "172.27.0.0/16"]
CUSTOM, NONE = "custom", "none"


def check_pool(text: str) -> str:
    """A CIDR or a FIRST-LAST range of IPv4 addresses; the controller checks the rest."""
    text = text.strip()
    try:
        if "-" in text:
            first, last = (ipaddress.IPv4Address(p.strip()) for p in text.split("-", 1))
            if last < first:
                raise ValueError
            return f"{first}-{last}"
        return str(ipaddress.IPv4Network(text, strict=False))
    except ValueError:
        raise ValueError(
            f"{text!r}: use a CIDR such as 10.147.17.0/24 or a range 10.147.17.10-10.147.17.99"
        ) from None


class CreateNetworkModal(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the body for POST /controller/networks, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Create")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Create a network on this node's controller", classes="dialog-title")
            yield Input(placeholder="name, e.g. home", id="net-name", compact=True)
            yield Static("Address pool (members get an address from it when approved):")
            with RadioSet(id="pool", compact=True):
                for index, preset in enumerate(POOL_PRESETS):
                    yield RadioButton(preset, value=index == 0, name=preset)
                yield RadioButton("custom:", name=CUSTOM)
                yield RadioButton("none (assign addresses by hand)", name=NONE)
            yield Input(placeholder="custom pool: 10.1.2.0/24", id="custom-pool", compact=True)
            yield Checkbox("private: members need approval", True, id="private", compact=True)
            yield Static(id="create-reason", classes="reason-line")
            yield Static("Enter or Ctrl+S: create · Escape: cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#net-name", Input).focus()

    def _pool_choice(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return pressed.name if pressed is not None and pressed.name else POOL_PRESETS[0]

    def _read(self) -> dict[str, Any]:
        name = parse_name(self.query_one("#net-name", Input).value)
        if not name:
            raise ValueError("give the network a name")
        choice = self._pool_choice()
        pools: list[str] = []
        if choice == CUSTOM:
            pools = [check_pool(self.query_one("#custom-pool", Input).value)]
        elif choice != NONE:
            pools = [choice]
        private = self.query_one("#private", Checkbox).value
        return {"name": name, "pools": pools, "private": private}

    @on(Input.Changed)
    @on(RadioSet.Changed)
    def _changed(self) -> None:
        reason = self.query_one("#create-reason", Static)
        try:
            body = self._read()
        except ValueError as exc:
            reason.update(f"✗ {exc}")
            reason.set_classes("reason-line -bad")
        else:
            pools = ", ".join(body["pools"]) or "no pool"
            reason.update(f"✓ {body['name']} with {pools}")
            reason.set_classes("reason-line -good")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        try:
            body = self._read()
        except ValueError as exc:
            reason = self.query_one("#create-reason", Static)
            reason.update(f"✗ {exc}")
            reason.set_classes("reason-line -bad")
            return
        self.dismiss(body)

    def action_cancel(self) -> None:
        self.dismiss(None)
