"""`c` on Members: create a network on this node's controller — a name, an IPv4 pool, private
(approval needed) or public. The controller answers with the new id, which members paste
into their `j`.

The pool defaults to "the first free one": the body then names no pool and the controller
picks the first of 10.147.17.0/24, 10.147.18.0/24, ... that none of its networks uses, so
two networks of one controller never share a range by accident (a member of both would
get the same subnet on two devices). The dialog asks GET /controller/pools which one that
is, to show it, and which ranges the hosted networks use, so a preset or typed pool that
overlaps one is flagged before Create (creating it stays allowed).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, RadioSet, Static

from overlay_core.api.schema import UsedRangeJson

from ..client import ApiError
from ..widgets.reason_line import ReasonLine
from ..widgets.toggles import Checkbox, RadioButton
from .modals import parse_name

if TYPE_CHECKING:
    from ..app import ZtuiApp

# IPv4 only: the controller's pools hand out IPv4; IPv6 addresses are assigned by hand (i).
POOL_PRESETS = ["192.168.191.0/24", "172.27.0.0/16"]
FREE, CUSTOM, NONE = "free", "custom", "none"


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


def _span(text: str) -> tuple[int, int, int]:
    """(IP version, first, last) of a pool or route as the API writes them."""
    if "-" in text:
        low, _, high = text.partition("-")
        return 4, int(ipaddress.ip_address(low)), int(ipaddress.ip_address(high))
    net = ipaddress.ip_network(text, strict=False)
    return net.version, int(net.network_address), int(net.broadcast_address)


def overlaps(pool: str, used: list[UsedRangeJson]) -> list[str]:
    """One line per hosted network whose pool or on-link route `pool` overlaps, as the
    controller's warnings say it."""
    version, first, last = _span(pool)
    said: dict[str, str] = {}
    for entry in used:
        try:
            v, f, la = _span(entry["range"])
        except ValueError:  # a shape this console does not know: not worth a crash
            continue
        if v == version and f <= last and first <= la and entry["nwid"] not in said:
            name = f"{entry['name']} ({entry['nwid']})" if entry["name"] else entry["nwid"]
            said[entry["nwid"]] = f"{pool} overlaps {entry['kind']} {entry['range']} of {name}"
    return list(said.values())


class CreateNetworkModal(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the body for POST /controller/networks, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Create")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")  # centred, as every dialog
        self._loaded = False  # GET /controller/pools answered
        self._suggested: str | None = None  # the controller's first free pool, once known
        self._used: list[UsedRangeJson] = []

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Create a network on this node's controller", classes="dialog-title")
            yield Input(placeholder="name, e.g. home", id="net-name", compact=True)
            yield Static("Address pool (members get an address from it when approved):")
            with RadioSet(id="pool", compact=True):
                yield RadioButton("the first free pool", value=True, name=FREE, id="pool-free")
                for preset in POOL_PRESETS:
                    yield RadioButton(preset, name=preset)
                yield RadioButton("custom:", name=CUSTOM)
                yield RadioButton("none (assign addresses by hand)", name=NONE)
            yield Input(placeholder="custom pool: 10.1.2.0/24", id="custom-pool", compact=True)
            yield Checkbox("private: members need approval", True, id="private", compact=True)
            yield ReasonLine(id="create-reason")
            warning = Static(id="create-warning", classes="reason-line -bad")
            warning.display = False
            yield warning
            yield Static("Enter or Ctrl+S: create · Escape: cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#net-name", Input).focus()
        self._load_pools()

    @work(exclusive=True, group="pools")
    async def _load_pools(self) -> None:
        """Ask the controller for its free pool and used ranges; without an answer the
        first choice still works (the controller picks), it just cannot name the pool."""
        try:
            pools = await self.ztui.client.controller_pools()
        except ApiError:
            return
        self._suggested, self._used = pools["suggested"], pools["used"]
        self._loaded = True
        label = (
            f"the first free pool: {self._suggested}"
            if self._suggested
            else "the first free pool: none left, choose one"
        )
        self.query_one("#pool-free", RadioButton).label = label
        if self.query_one("#net-name", Input).value:  # else nothing typed yet to judge
            self._changed()

    def _pool_choice(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return pressed.name if pressed is not None and pressed.name else FREE

    def _read(self) -> dict[str, Any]:
        name = parse_name(self.query_one("#net-name", Input).value)
        if not name:
            raise ValueError("give the network a name")
        choice = self._pool_choice()
        body: dict[str, Any] = {"name": name}
        if choice == CUSTOM:
            body["pools"] = [check_pool(self.query_one("#custom-pool", Input).value)]
        elif choice == NONE:
            body["pools"] = []
        elif choice != FREE:  # FREE: no pools in the body, the controller picks
            body["pools"] = [choice]
        body["private"] = self.query_one("#private", Checkbox).value
        return body

    def _pools_words(self, body: dict[str, Any]) -> str:
        if "pools" not in body:
            return self._suggested or "the first free pool"
        return ", ".join(body["pools"]) or "no pool"

    @on(Input.Changed)
    @on(RadioSet.Changed)
    def _changed(self) -> None:
        reason = self.query_one("#create-reason", ReasonLine)
        try:
            body = self._read()
        except ValueError as exc:
            reason.bad(str(exc))
            self._warn("")
            return
        reason.good(f"{body['name']} with {self._pools_words(body)}")
        clashes = [line for pool in body.get("pools", []) for line in overlaps(pool, self._used)]
        if clashes:
            self._warn(
                f"⚠ {'; '.join(clashes)}: a member of both would get clashing addresses "
                "(Enter creates it anyway)"
            )
        elif "pools" not in body and self._loaded and self._suggested is None:
            self._warn("⚠ no free 10.147.x.0/24 is left: the network gets no pool")
        else:
            self._warn("")

    def _warn(self, text: str) -> None:
        """The overlap warning, taking no line when there is none."""
        warning = self.query_one("#create-warning", Static)
        warning.update(text)
        warning.display = bool(text)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        try:
            body = self._read()
        except ValueError as exc:
            self.query_one("#create-reason", ReasonLine).bad(str(exc))
            return
        self.dismiss(body)

    def action_cancel(self) -> None:
        self.dismiss(None)
