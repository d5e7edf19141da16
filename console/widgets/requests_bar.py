"""RequestsBar: members asking to join, in one or two lines above the footer, on every
screen, until each is approved or dismissed.

    ▶ 5c07de91ab asks to join home from 100.64.12.9:40123    a approve · x dismiss  1/2
      c0ffee0001 asks to join home from 198.51.100.61:9993                          2/2

It replaced a toast that covered a third of the screen, came back with every repeated
request and stacked. The bar takes its own lines (the table above shrinks; nothing is
covered) and names the one member `a` approves and `x` dismisses (app-level keys, so they
work from any tab or a peer's view): approving never depends on where a table's cursor
happens to be. Tab reaches the bar; there Enter approves, Escape dismisses and ↑/↓ choose.

JoinRequests is the bar's model (which members, in what order, which one is chosen, which
are being approved); SyncedApp keeps one in step with every hosted poll, ActionsApp marks
approvals in it, and both screens' bars draw it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget

from overlay_core.api.schema import MemberJson

from ..live import member_key

if TYPE_CHECKING:
    from ..app import ZtuiApp

MAX_LINES = 2
SIGNATURE_WIDTH = 200
KEYS_TEXT = "a approve · x dismiss"


class JoinRequests:
    """Pending members the user has not dismissed, in the order they first showed up, and
    the chosen one. New requests join at the end, so they never change which member the
    keys act on; approving or dismissing the chosen one moves the choice to the next."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._members: dict[str, MemberJson] = {}
        self._dismissed: set[str] = set()
        # Approvals sent: None while the call is out, then the number of hosted polls
        # started when the controller said yes (see sync).
        self._approving: dict[str, int | None] = {}
        self._chosen: str | None = None

    def sync(self, pending: Iterable[MemberJson], poll: int) -> None:
        """Follow the controller's list of pending members from hosted poll number `poll`
        (SyncedApp counts them as they start)."""
        members = {member_key(m["nwid"], m["address"]): m for m in pending}
        index = self._index()
        self._order = [k for k in self._order if k in members]
        self._order += sorted(k for k in members if k not in self._order)
        self._members = members
        # A member approved, removed or deauthorized and asking again is a new request.
        self._dismissed &= members.keys()
        # An approval is settled by a poll that no longer lists the member as pending, or
        # by one that started after the controller said yes (pending again then: it was
        # removed and asked anew). A poll that started earlier may still list it as
        # pending, and must not let `a` send it a second time.
        self._approving = {
            key: answered
            for key, answered in self._approving.items()
            if key in members and (answered is None or poll <= answered)
        }
        self._choose(index)

    @property
    def shown(self) -> list[MemberJson]:
        return [self._members[k] for k in self._order if k not in self._dismissed]

    @property
    def chosen(self) -> MemberJson | None:
        return self._members.get(self._chosen) if self._chosen is not None else None

    def _keys(self) -> list[str]:
        return [k for k in self._order if k not in self._dismissed]

    def _index(self) -> int:
        keys = self._keys()
        return keys.index(self._chosen) if self._chosen in keys else 0

    def _choose(self, index: int) -> None:
        keys = self._keys()
        if self._chosen in keys:
            return
        self._chosen = keys[min(index, len(keys) - 1)] if keys else None

    def move(self, step: int) -> None:
        keys = self._keys()
        if keys:
            self._chosen = keys[(self._index() + step) % len(keys)]

    def dismiss(self, member: MemberJson) -> None:
        index = self._index()
        self._dismissed.add(member_key(member["nwid"], member["address"]))
        self._choose(index)

    def start_approving(self, member: MemberJson) -> bool:
        """Mark the member as being approved; False if it already was (a second `a`, or
        a row's `a` after the bar's, before the controller's answer shows in a poll must
        not send it twice)."""
        key = member_key(member["nwid"], member["address"])
        if key in self._approving:
            return False
        self._approving[key] = None
        return True

    def approval_answered(self, member: MemberJson, ok: bool, polls_started: int) -> None:
        """The controller answered the approval. A refusal clears the mark at once, so `a`
        may try again; a yes keeps it until a poll started after now (`polls_started` is
        the count so far) shows the member approved."""
        key = member_key(member["nwid"], member["address"])
        if key not in self._approving:
            return  # a poll has settled it already
        if ok:
            self._approving[key] = polls_started
        else:
            del self._approving[key]

    def approving(self, member: MemberJson) -> bool:
        return member_key(member["nwid"], member["address"]) in self._approving


def request_line(
    member: MemberJson, where: str, *, chosen: bool, busy: bool, position: str, width: int
) -> Text:
    """One member's line, cut in the middle (never the address or the keys) to `width`."""
    right = Text()
    if chosen:
        right.append("approving…" if busy else KEYS_TEXT, style="bold")
    if position:
        right.append(f"  {position}")
    left = Text("▶ " if chosen else "  ", style="bold")
    left.append(member["address"], style="bold")
    asks = f" asks to join {where}"
    if member["physical_address"]:
        asks += f" from {member['physical_address']}"
    left.append(asks)
    room = max(len(left.plain[:12]), width - cell_len(right.plain) - 2)
    left.truncate(room, overflow="ellipsis", pad=True)
    return Text.assemble(left, "  ", right)


class RequestsBar(Widget, can_focus=True):
    """Draws the app's JoinRequests; hidden while there are none to show."""

    DEFAULT_CSS = """
    RequestsBar { display: none; height: auto; max-height: 2; }
    RequestsBar.-shown { display: block; }
    """
    BINDINGS = [
        Binding("enter", "app.approve_request", "Approve request"),
        Binding("escape", "app.dismiss_request", "Dismiss request"),
        Binding("up", "choose(-1)", "Previous request", show=False),
        Binding("down", "choose(1)", "Next request", show=False),
    ]

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    _drawn: list[str] | None = None

    def on_mount(self) -> None:
        self.ztui.changed.subscribe(self, self._changed)
        self._update()

    def _changed(self, topic: str) -> None:
        if topic == "requests":
            self._update()

    def _update(self) -> None:
        """Redraw if what the bar says changed: every hosted poll publishes "requests",
        and over SSH an unchanged bar must cost no bytes."""
        lines = [line.plain for line in self.lines(SIGNATURE_WIDTH)]  # what, not how wide
        if lines == self._drawn:
            return
        self._drawn = lines
        if not lines and self.has_focus:
            self.blur()  # nothing left to act on here: back to the table, if on the tabs
            self.ztui.focus_tab()
        self.set_class(bool(lines), "-shown")
        # Notifications rise above the bar instead of hiding the member it names.
        self.screen.set_class(len(lines) == 1, "-requests-1")
        self.screen.set_class(len(lines) > 1, "-requests-2")
        self.refresh(layout=True)

    def action_choose(self, step: int) -> None:
        self.ztui.join_requests.move(step)
        self.ztui.changed.publish("requests")

    def lines(self, width: int) -> list[Text]:
        requests = self.ztui.join_requests
        shown = requests.shown
        chosen = requests.chosen
        index = shown.index(chosen) if chosen in shown else 0
        start = min(index, max(0, len(shown) - MAX_LINES))
        lines = []
        for offset, member in enumerate(shown[start : start + MAX_LINES]):
            position = f"{start + offset + 1}/{len(shown)}" if len(shown) > 1 else ""
            lines.append(
                request_line(
                    member,
                    self.ztui.where(member),
                    chosen=member is chosen,
                    busy=requests.approving(member),
                    position=position,
                    width=width,
                )
            )
        return lines

    def render(self) -> Text:
        return Text("\n").join(self.lines(self.content_region.width or self.app.size.width))
