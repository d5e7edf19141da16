"""The daemon's virtual networks: TAP ports, the local controller, and networks.json.

The node decides; this module does what it asks and reports back:

1. OpenPort / ConfigurePort / ClosePort -> a TAP device per network. Opening and
   configuring are coroutines (netlink), so each network's port operations run as a chain
   of tasks, strictly in the order the node asked for them; a TapError anywhere becomes
   `node.port_failed(nwid, reason)`, which the console shows as PORT_ERROR.
2. DeliverFrame(s) -> `tap.write(frame)`, synchronously (it never blocks or raises).
3. Frames the host sends into a TAP -> `node.receive_frames(nwid, frames, now)`, a batch
   per wakeup. A TAP is opened with offloads when `offload` is set and the kernel can
   (virtio_net_hdr, TSO); the node is told which with `node.port_opened(nwid, offload)`.
4. ConfigRequest (a member asks this node's controller) -> `controller.handle_config_
   request(...)` -> `node.answer_config_request(...)`. A pending member's request is also
   a `member_request` event (at most one per member per MEMBER_REQUEST_EVERY_S, since a
   waiting member asks again and again), so the console can offer to approve it.
5. Every tick, `push()`: for each network the controller changed since the last tick
   (an approval, a deauthorization, a new MTU), each member it names is sent its fresh
   answer right away, so nobody waits for their next periodic request.

Calls back into the node go through `drive(call)`, which the daemon implements by calling
`call(node, now)` under its guard and executing the effects; so the node is only ever
entered from the event loop thread, one call at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from overlay_core.api.events import EventBus
from overlay_core.api.validate import settings_from_json
from overlay_core.controller import ConfigReply, Controller, Denied
from overlay_core.proto.effects import (
    ClosePort,
    ConfigRequest,
    ConfigurePort,
    DeliverFrame,
    DeliverFrames,
    Effect,
    OpenPort,
)
from overlay_core.proto.identity import format_address
from overlay_core.proto.netconf import ValidationError, format_nwid, parse_nwid
from overlay_core.proto.node import Node
from overlay_core.proto.vnet import NetworkSettings

from .home import Home, HomeError
from .tap import TapCounters, TapError, TapLike, TapOpener, tap_name

log = logging.getLogger(__name__)

NodeCall = Callable[[Node, float], list[Effect]]
Drive = Callable[[NodeCall], None]
PORT_EFFECTS = (OpenPort, ConfigurePort, ClosePort, DeliverFrame, DeliverFrames)
MEMBER_REQUEST_EVERY_S = 30.0
REQUESTS_REMEMBERED = 1024  # beyond this many members, forget those not heard from lately


@dataclass(slots=True)
class _Port:
    nwid: int
    tap: TapLike | None = None
    last_op: asyncio.Task[None] | None = None  # the tail of this port's operation chain


@dataclass(slots=True)
class NetworkPorts:
    """One TAP device per joined network, opened with `open_tap` (TapDevice.open, or a
    FakeTapFactory's in tests). Counters say what could not be done and why."""

    open_tap: TapOpener
    drive: Drive
    offload: bool = False  # ask for TAP offloads (the daemon's --offload)
    counters: Counter[str] = field(default_factory=Counter)
    _ports: dict[int, _Port] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def handle(
        self, effect: OpenPort | ConfigurePort | ClosePort | DeliverFrame | DeliverFrames
    ) -> None:
        if isinstance(effect, DeliverFrame | DeliverFrames):
            frames = effect.frames if isinstance(effect, DeliverFrames) else [effect.frame]
            port = self._ports.get(effect.nwid)
            if port is None or port.tap is None:
                self.counters["frames_without_port"] += len(frames)
            else:
                write = port.tap.write
                for frame in frames:
                    write(frame)
            return
        port = self._ports.setdefault(effect.nwid, _Port(effect.nwid))
        if isinstance(effect, OpenPort):
            self._chain(port, lambda: self._open(port, effect))
        elif isinstance(effect, ConfigurePort):
            self._chain(port, lambda: self._configure(port, effect))
        else:
            self._chain(port, lambda: self._close(port))

    def device(self, nwid: int) -> str | None:
        port = self._ports.get(nwid)
        return port.tap.name if port is not None and port.tap is not None else None

    def tap_counters(self, nwid: int) -> TapCounters | None:
        port = self._ports.get(nwid)
        return port.tap.counters if port is not None and port.tap is not None else None

    async def idle(self) -> None:
        """Until every port operation asked for so far has finished (for tests)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Cancel pending operations and close every device (the daemon is stopping)."""
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for port in self._ports.values():
            if port.tap is not None:
                port.tap.close()
                port.tap = None
        self._ports.clear()

    # ---- the operation chain

    def _chain(self, port: _Port, op: Callable[[], Awaitable[None]]) -> None:
        previous = port.last_op

        async def run() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])  # wait() never cancels what it waits for
            await op()

        task = asyncio.get_running_loop().create_task(run(), name=f"port-{port.nwid:016x}")
        port.last_op = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, port: _Port, effect: OpenPort) -> None:
        if port.tap is not None:
            return  # already open: a second join of the same network
        nwid = effect.nwid
        name = tap_name(nwid)
        try:
            port.tap = await self.open_tap(
                name,
                effect.mac,
                effect.mtu,
                lambda frames: self._from_host(nwid, frames),
                on_error=lambda error: self._failed(nwid, str(error)),
                offload=self.offload,
            )
            offloaded = port.tap.offload
            self.drive(lambda node, now: node.port_opened(nwid, offloaded))
        except TapError as exc:
            self._failed(nwid, str(exc))
        except Exception as exc:  # a bug in the device layer must not kill the chain
            log.exception("opening %s failed", name)
            self._failed(nwid, f"cannot create TAP device {name}: {exc}")

    async def _configure(self, port: _Port, effect: ConfigurePort) -> None:
        tap = port.tap
        if tap is None:
            self.counters["configure_without_port"] += 1
            return
        try:
            await tap.configure(mtu=effect.mtu, addresses=effect.addresses, routes=effect.routes)
        except TapError as exc:
            self._failed(effect.nwid, str(exc))
        except Exception as exc:
            log.exception("configuring %s failed", tap.name)
            self._failed(effect.nwid, f"cannot configure {tap.name}: {exc}")

    async def _close(self, port: _Port) -> None:
        if port.tap is not None:
            port.tap.close()
            port.tap = None
        if port.last_op is asyncio.current_task():  # nothing queued behind us: forget it
            self._ports.pop(port.nwid, None)

    def _from_host(self, nwid: int, frames: list[bytes]) -> None:
        self.drive(lambda node, now: node.receive_frames(nwid, frames, now))

    def _failed(self, nwid: int, reason: str) -> None:
        self.counters["port_errors"] += 1
        log.warning("network %s: %s", format_nwid(nwid), reason)
        self.drive(lambda node, now: node.port_failed(nwid, reason))


@dataclass(slots=True)
class ControllerLink:
    """Connects the node's config requests to the local controller, and pushes changes."""

    controller: Controller
    drive: Drive
    events: EventBus | None = None
    counters: Counter[str] = field(default_factory=Counter)
    _requests_seen: dict[tuple[int, int], float] = field(default_factory=dict)

    def answer(self, request: ConfigRequest, now: float) -> None:
        physical = None if request.physical is None else str(request.physical)
        nwid, member = request.nwid, request.member
        try:
            reply = self.controller.handle_config_request(
                nwid, member, version=request.version, physical=physical, now=now
            )
        except Exception:
            self._failed("handle_config_request")
            return
        self.counters["config_replies"] += 1
        self._send(nwid, member.address, reply)
        if isinstance(reply, Denied) and reply.code == "ACCESS_DENIED":
            try:
                self._member_request(nwid, member.address, physical, now)
            except Exception:
                self._failed("get_member")

    def _member_request(self, nwid: int, address: int, physical: str | None, now: float) -> None:
        """Tell the console a pending member is asking, unless it was told lately."""
        if self.events is None:
            return
        key = (nwid, address)
        last = self._requests_seen.get(key)
        if last is not None and now - last < MEMBER_REQUEST_EVERY_S:
            return
        record = self.controller.get_member(nwid, address)
        network = self.controller.get_network(nwid)
        if record is None or record.state != "pending" or network is None:
            return  # deauthorized members are refused without asking anyone
        if len(self._requests_seen) >= REQUESTS_REMEMBERED:
            cutoff = now - MEMBER_REQUEST_EVERY_S
            self._requests_seen = {k: t for k, t in self._requests_seen.items() if t > cutoff}
        self._requests_seen[key] = now
        text, nwid_text = format_address(address), format_nwid(nwid)
        where = f" from {physical}" if physical else ""
        message = f"{text} asks to join {network.name} ({nwid_text}){where}; approve it?"
        self.events.publish("member_request", message, nwid=nwid_text, address=text)

    def push(self, now: float) -> None:
        """Send every member of every network changed since the last call its new answer:
        a fresh config, or the denial that tells a deauthorized member it is out."""
        try:
            dirty = self.controller.take_dirty()
        except Exception:
            self._failed("take_dirty")
            return
        for nwid in sorted(dirty):
            try:
                members = self.controller.members_to_notify(nwid)
                replies = [(m, self.controller.build_config(nwid, m, now)) for m in members]
            except Exception:
                self._failed("build_config")
                continue
            for member, reply in replies:
                self.counters["config_pushes"] += 1
                self._send(nwid, member, reply)

    def _send(self, nwid: int, member: int, reply: ConfigReply) -> None:
        answer: bytes | str = reply.code if isinstance(reply, Denied) else reply
        self.drive(lambda node, now: node.answer_config_request(nwid, member, answer, now))

    def _failed(self, what: str) -> None:
        self.counters["controller_errors"] += 1
        log.exception("controller.%s failed", what)


# --------------------------------------------------------------------------- networks.json


def load_joined(home: Home) -> dict[int, NetworkSettings]:
    """The networks to re-join at start, with their settings. HomeError (one line) if the
    file is unreadable or an entry breaks a rule, naming the network and the field."""
    data = home.load_networks()
    entries = data.get("networks", {})
    if not isinstance(entries, dict):
        raise HomeError(f"{home.networks_path}: networks must be an object keyed by network id")
    joined: dict[int, NetworkSettings] = {}
    for key, value in entries.items():
        try:
            nwid = parse_nwid(key)
        except ValueError:
            raise HomeError(f"{home.networks_path}: {key!r}: a network id is 16 hex digits")
        try:
            joined[nwid] = settings_from_json(value)
        except ValidationError as exc:
            raise HomeError(f"{home.networks_path}: {key}: {exc}") from None
    return joined


def save_joined(home: Home, joined: dict[int, NetworkSettings]) -> None:
    networks = {format_nwid(nwid): joined[nwid].to_json() for nwid in sorted(joined)}
    home.save_networks({"networks": networks})
