"""SyncedApp: the console's live link to overlayd — pollers, the event stream, reconnects.

How it works:

1. Four long-running workers, one per resource family, each `@work(exclusive=True)` in
   its own group: the node (status + peers, every second), joined networks (2 s), the
   controller's networks and members (3 s; and one network's paths while the Paths
   screen shows them, `watch_paths`), and the event stream. They never touch a
   widget: each posts a typed message (messages.py) that a handler here folds into the
   LiveStore, then publishes the topic on `changed` for the views that show it.
2. An event makes the poller it concerns run at once (`poke`), so a link turning DIRECT
   or a member asking to join shows without waiting for the next tick.
3. The node poller is also the connection watchdog. When overlayd cannot be reached
   (ApiError.status is None) it posts Disconnected with the error's one line, counts
   down RETRY_S with RetryCountdown ticks, tries again, and posts Reconnected when the
   node answers; the other pollers just wait quietly meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, Unpack

from textual import on, work
from textual.app import App
from textual.signal import Signal

from .client import ApiError
from .live import LiveStore
from .messages import (
    Disconnected,
    EventArrived,
    HostedPolled,
    NetworksPolled,
    NodePolled,
    PollFailed,
    Reconnected,
    RetryCountdown,
)
from .widgets.requests_bar import JoinRequests

if TYPE_CHECKING:
    from .api import AsyncApiClient

COUNTDOWN_TICK_S = 0.25
MANY_PEERS = 200
# The worst pairs the Paths screen asks for: all of a network small enough for its matrix
# (20 members make 190 pairs); 200 members make 19,900, which need not travel every poll.
PATHS_LIMIT = 200
# Which poller an event kind concerns (schema.EVENT_KINDS).
EVENT_POKES = {
    "peer": "node",
    "link": "node",
    "handshake": "node",
    "tcp": "node",
    "roots": "node",
    "network": "networks",
    "member_request": "hosted",
    "member": "hosted",
    "controller": "hosted",
}


@dataclass(frozen=True, slots=True)
class Intervals:
    """Seconds between polls; tests and snapshots stretch them to poll once."""

    node_s: float = 1.0
    networks_s: float = 2.0
    hosted_s: float = 3.0
    retry_s: float = 2.0
    events_retry_s: float = 1.0
    ping_s: float = 1.0


class SyncOptions(TypedDict, total=False):
    """How often SyncedApp polls and which clocks it reads; tests and benchmarks set them,
    the console takes the defaults. Subclasses pass them through with **options."""

    intervals: Intervals | None  # None: Intervals()
    clock: Callable[[], float]  # for rates: monotonic, so tests step it exactly
    wall_clock: Callable[[], float]  # to age the controller's timestamps ("seen 5s ago")


class SyncedApp(App[None]):
    """The data half of the console; ZtuiApp adds the screens and keys."""

    def __init__(self, client: AsyncApiClient, **options: Unpack[SyncOptions]) -> None:
        super().__init__()
        self.client = client
        self.intervals = options.get("intervals") or Intervals()
        self.clock = options.get("clock", time.monotonic)
        self.wall_clock = options.get("wall_clock", time.time)
        self.store = LiveStore()
        self.changed: Signal[str] = Signal(self, "changed")
        self.offline_reason: str | None = None
        self.retry_left_s = 0.0
        self.attempt = 0
        self._wake = {name: asyncio.Event() for name in ("node", "networks", "hosted")}
        self._said: dict[str, str] = {}  # last error shown per poller, to say it only once
        # The join requests the bar shows, in step with every hosted poll; a poll's number
        # tells whether it started before or after an approval was answered.
        self.join_requests = JoinRequests()
        self.hosted_polls_started = 0
        self.paths_nwid: str | None = None  # the network whose paths the hosted poll reads

    # -- lifecycle

    def start_sync(self) -> None:
        self.poll_node()
        self.start_followers()

    def start_followers(self) -> None:
        """(Re)start everything but the watchdog: exclusive workers replace themselves."""
        self.poll_networks()
        self.poll_hosted()
        self.follow_events()

    async def on_unmount(self) -> None:
        # The client's connections belong to this event loop: close them before it ends.
        await self.client.aclose()

    def poke(self, name: str) -> None:
        """Make a poller run now rather than at its next tick."""
        if name in self._wake:
            self._wake[name].set()

    def watch_paths(self, nwid: str | None) -> None:
        """Have the hosted poll read `nwid`'s paths too, from now (None: no more). What
        an earlier network's poll said is dropped, so a screen never shows it as this one's."""
        self.paths_nwid = nwid
        self.store.set_paths(None, None)
        if nwid is not None:
            self.poke("hosted")

    async def _nap(self, name: str, seconds: float) -> None:
        wake = self._wake[name]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)
        wake.clear()

    # -- workers

    @work(exclusive=True, group="poll-node")
    async def poll_node(self) -> None:
        attempt = 0
        while True:
            try:
                status = await self.client.status()
                peers = await self.client.peers()
            except ApiError as exc:
                if exc.status is not None:
                    self.post_message(PollFailed("status", str(exc)))
                    await self._nap("node", self.intervals.node_s)
                    continue
                attempt += 1
                self.post_message(Disconnected(str(exc), attempt))
                # Real time, not self.clock: an injected clock may stand still in tests.
                deadline = time.monotonic() + self.intervals.retry_s
                while (left := deadline - time.monotonic()) > 0:
                    self.post_message(RetryCountdown(left, attempt))
                    await asyncio.sleep(min(COUNTDOWN_TICK_S, left))
                continue
            if attempt:
                attempt = 0
                self.post_message(Reconnected())
            self.post_message(NodePolled(status, peers, self.clock()))
            # Hundreds of peers cost a quarter second to redraw: poll them half as often.
            slow = len(peers) > MANY_PEERS
            await self._nap("node", self.intervals.node_s * (2 if slow else 1))

    @work(exclusive=True, group="poll-networks")
    async def poll_networks(self) -> None:
        while True:
            try:
                networks = await self.client.networks()
            except ApiError as exc:
                if exc.status is not None:
                    self.post_message(PollFailed("networks", str(exc)))
            else:
                self.post_message(NetworksPolled(networks, self.clock()))
            await self._nap("networks", self.intervals.networks_s)

    @work(exclusive=True, group="poll-hosted")
    async def poll_hosted(self) -> None:
        while True:
            self.hosted_polls_started += 1
            poll = self.hosted_polls_started
            nwid = self.paths_nwid
            paths, paths_error = None, None
            try:
                hosted = await self.client.controller_networks()
                members = []
                for network in hosted:
                    members += await self.client.members(network["nwid"])
                if nwid is not None and any(n["nwid"] == nwid for n in hosted):
                    try:
                        paths = await self.client.paths(nwid, PATHS_LIMIT)
                    except ApiError as exc:
                        if exc.status is None:
                            raise  # unreachable: the watchdog says so
                        # The Paths screen shows it where the user looks, not as a toast.
                        paths_error = str(exc)
                        if exc.error == "not_found":  # the route itself is unknown
                            paths_error = f"this overlayd predates path reports ({exc})"
            except ApiError as exc:
                if exc.status is not None:
                    self.post_message(PollFailed("controller", str(exc)))
            else:
                self.post_message(HostedPolled(hosted, members, poll, paths, paths_error))
            await self._nap("hosted", self.intervals.hosted_s)

    @work(exclusive=True, group="events")
    async def follow_events(self) -> None:
        # since=0 first: the daemon replays what it still holds, so the Events tab opens on
        # the last minutes (what someone troubleshooting wants), not on an empty page.
        since = 0
        while True:
            try:
                async for event in self.client.events(since=since):
                    since = event["id"]
                    self.post_message(EventArrived(event))
            except ApiError:
                pass  # the stream ended or the daemon is away: the watchdog tells the user
            await asyncio.sleep(self.intervals.events_retry_s)

    # -- folding results into the store

    @on(NodePolled)
    def _node_polled(self, message: NodePolled) -> None:
        self.store.set_status(message.status, message.at)
        self.store.set_peers(message.peers, message.at)
        self._said.pop("status", None)
        self.changed.publish("status")
        self.changed.publish("peers")

    @on(NetworksPolled)
    def _networks_polled(self, message: NetworksPolled) -> None:
        self.store.set_networks(message.networks, message.at)
        self._said.pop("networks", None)
        self.changed.publish("networks")

    @on(HostedPolled)
    def _hosted_polled(self, message: HostedPolled) -> None:
        self.store.set_hosted(message.hosted, message.members)
        self._said.pop("controller", None)
        # Before "members": the Members tab's detail names the bar's chosen member.
        self.join_requests.sync(self.store.pending_members, message.poll)
        self.changed.publish("members")
        self.changed.publish("requests")
        wanted = self.paths_nwid
        got = message.paths["nwid"] if message.paths is not None else None
        if wanted is not None and got in (wanted, None):
            # None too: the network is gone or the controller refused; the screen says so.
            self.store.set_paths(message.paths, message.paths_error)
            self.changed.publish("paths")

    @on(EventArrived)
    def _event_arrived(self, message: EventArrived) -> None:
        event = message.event
        self.store.add_event(event)
        self.changed.publish("events")
        if (poller := EVENT_POKES.get(event["kind"])) is not None:
            # A join request shows in the bar once the hosted poll this starts lists the
            # member as pending: a replayed request approved meanwhile never shows.
            self.poke(poller)

    @on(PollFailed)
    def _poll_failed(self, message: PollFailed) -> None:
        if self._said.get(message.what) != message.reason:
            self._said[message.what] = message.reason
            self.notify(message.reason, title=f"overlayd: {message.what}", severity="error")

    @on(Disconnected)
    def _disconnected(self, message: Disconnected) -> None:
        self.offline_reason = message.reason
        self.attempt = message.attempt
        self.store.clear()
        self.changed.publish("connection")

    @on(RetryCountdown)
    def _countdown(self, message: RetryCountdown) -> None:
        self.retry_left_s = message.seconds_left
        self.attempt = message.attempt
        self.changed.publish("connection")

    @on(Reconnected)
    def _reconnected(self) -> None:
        self.offline_reason = None
        self.changed.publish("connection")
        self.start_followers()  # they may have been waiting out the outage
        self.notify("Connected to overlayd again", title="ztui", timeout=3)
