"""The daemon's virtual networks: TAP ports, the local controller, and networks.json.

The node decides; this module does what it asks and reports back (`NetworkPorts.handle`
takes the PortEffects the daemon hands on, one exhaustive match like the daemon's own):

1. OpenPort / ConfigurePort / ClosePort -> a TAP device per network. Opening and
   configuring are coroutines (netlink), so each network's port operations run as a chain
   of tasks, strictly in the order the node asked for them; a TapError anywhere becomes
   `node.port_failed(nwid, reason)`, which the console shows as PORT_ERROR. So does a
   configuration whose addresses or routes clash with another port's (two networks with
   the same pool): the port is left without addresses and the reason names the network
   and device that hold them, instead of the kernel getting one subnet on two devices.
2. DeliverFrame(s) -> `tap.write(frame)`, synchronously (it never blocks or raises).
3. Frames the host sends into a TAP -> `node.receive_frames(nwid, frames, now)`, a batch
   per wakeup. A TAP is opened with offloads when `offload` is set and the kernel can
   (virtio_net_hdr, TSO); the node is told which with `node.port_opened(nwid, offload)`.
4. ConfigRequest (a member asks this node's controller) -> `controller.answer_request(
   ...)` -> `node.answer_config_request(...)`. A pending member's request is also a
   `member_request` event when the controller says it is news (its first request, or the
   first after a long silence; a waiting member asks again every few seconds), so the
   console can offer to approve it once, and `on_member_request` (the daemon's
   --on-member-request command, hooks.py) is given it with the network's name and where
   the member asked from; a member let in by its request (a public network, or this node
   joining a network it hosts) is a `member` event.
5. Every tick, `push()`: for each network the controller changed since the last tick
   (an approval, a deauthorization, a new MTU), each member it names is sent its fresh
   answer right away, so nobody waits for their next periodic request.

Calls back into the node go through `drive(call)`, which the daemon implements by calling
`call(node, now)` under its guard and executing the effects; so the node is only ever
entered from the event loop thread, one call at a time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import assert_never

from overlay_core.api.events import EventBus
from overlay_core.api.validate import settings_from_json
from overlay_core.controller import ConfigReply, Controller, Denied, RequestOutcome
from overlay_core.proto.effects import (
    ClosePort,
    ConfigRequest,
    ConfigurePort,
    DeliverFrame,
    DeliverFrames,
    Effect,
    OpenPort,
    PathReportIn,
    PortEffect,
)
from overlay_core.proto.identity import format_address
from overlay_core.proto.netconf import ValidationError, format_nwid, parse_nwid
from overlay_core.proto.node import Node
from overlay_core.proto.vnet import NetworkSettings

from .home import Home, HomeError
from .hooks import MemberRequestJson, member_request_json
from .tap import TapCounters, TapError, TapLike, TapOpener, tap_name

log = logging.getLogger(__name__)

NodeCall = Callable[[Node, float], list[Effect]]
Drive = Callable[[NodeCall], None]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Claim:
    """The address space a configured port holds on this host.

    on_link: the subnets of its addresses and its routes without a gateway, each with the
    text it came from; the kernel treats each as a LAN on that device. targets: every
    route's destination. Two ports clash when their LANs overlap (one machine on the same
    subnet twice: the kernel picks either device), or when one routes to exactly a prefix
    the other has (the second route cannot be added). A route via a gateway overlapping
    another's LAN is fine: the more specific prefix wins.
    """

    on_link: tuple[tuple[IPNetwork, str], ...] = ()
    targets: tuple[tuple[IPNetwork, str], ...] = ()

    @classmethod
    def of(cls, addresses: Iterable[str], routes: Iterable[tuple[str, str | None]]) -> Claim:
        on_link: list[tuple[IPNetwork, str]] = []
        targets: list[tuple[IPNetwork, str]] = []
        for text in addresses:
            on_link.append((ipaddress.ip_interface(text).network, text))
        for target, via in routes:
            net = ipaddress.ip_network(target, strict=False)
            targets.append((net, target))
            if via is None:
                on_link.append((net, target))
        return cls(tuple(on_link), tuple(targets))

    def clash(self, other: Claim) -> tuple[str, str] | None:
        """(ours, theirs) for the first clash with `other`, as configured; None if none."""
        for net, text in self.on_link:
            for theirs, their_text in other.on_link:
                if net.version == theirs.version and net.overlaps(theirs):
                    return text, their_text
        for routing, holder in ((self, other), (other, self)):
            prefixes = dict((*holder.on_link, *holder.targets))
            for net, text in routing.targets:
                if net in prefixes:
                    pair = (text, prefixes[net])
                    return pair if routing is self else (pair[1], pair[0])
        return None


@dataclass(slots=True)
class _Port:
    nwid: int
    tap: TapLike | None = None
    last_op: asyncio.Task[None] | None = None  # the tail of this port's operation chain
    # What this port's addresses and routes hold, from the moment its configure starts
    # (before the netlink await), so two ports configuring at once still see each other.
    claim: Claim = field(default_factory=Claim)


@dataclass(slots=True)
class NetworkPorts:
    """One TAP device per joined network, opened with `open_tap` (TapDevice.open, or a
    MemoryTapFactory's in tests). Counters say what could not be done and why."""

    open_tap: TapOpener
    drive: Drive
    offload: bool = False  # ask for TAP offloads (the daemon's --offload)
    counters: Counter[str] = field(default_factory=Counter)
    _ports: dict[int, _Port] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def handle(self, effect: PortEffect) -> None:
        match effect:
            case DeliverFrame(nwid, frame):
                self._write(nwid, [frame])
            case DeliverFrames(nwid, frames):
                self._write(nwid, frames)
            case OpenPort(nwid):
                port = self._port(nwid)
                self._chain(port, lambda: self._open(port, effect))
            case ConfigurePort(nwid):
                port = self._port(nwid)
                self._chain(port, lambda: self._configure(port, effect))
            case ClosePort(nwid):
                port = self._port(nwid)
                self._chain(port, lambda: self._close(port))
            case _:
                assert_never(effect)

    def _port(self, nwid: int) -> _Port:
        return self._ports.setdefault(nwid, _Port(nwid))

    def _write(self, nwid: int, frames: list[bytes]) -> None:
        """Frames to the host, synchronously: a TAP write never blocks or raises."""
        port = self._ports.get(nwid)
        if port is None or port.tap is None:
            self.counters["frames_without_port"] += len(frames)
            return
        write = port.tap.write
        for frame in frames:
            write(frame)

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
        addresses, routes = effect.addresses, effect.routes
        try:
            claim = Claim.of(addresses, routes)
        except ValueError:  # the node checked them already; a bad one is netlink's to report
            claim = Claim()
        clash = self._clash(port, claim)
        if clash is not None:
            self.counters["port_clashes"] += 1
            claim, addresses, routes = Claim(), (), ()  # and take back what it had
        port.claim = claim
        try:
            await tap.configure(mtu=effect.mtu, addresses=addresses, routes=routes)
        except TapError as exc:
            port.claim = Claim()
            self._failed(effect.nwid, str(exc))
            return
        except Exception as exc:
            port.claim = Claim()
            log.exception("configuring %s failed", tap.name)
            self._failed(effect.nwid, f"cannot configure {tap.name}: {exc}")
            return
        if clash is not None:
            self._failed(effect.nwid, clash)

    def _clash(self, port: _Port, claim: Claim) -> str | None:
        """Why `claim` cannot go on `port`'s device: the first other port it clashes with,
        named by network and device, and what to do; None when it fits."""
        for other in self._ports.values():
            if other is port or other.tap is None:
                continue
            pair = claim.clash(other.claim)
            if pair is not None:
                ours, theirs = pair
                return (
                    f"{ours} clashes with {theirs} on {other.tap.name} (network "
                    f"{format_nwid(other.nwid)}), so no address is set here: change one "
                    "network's pool or leave one of them"
                )
        return None

    async def _close(self, port: _Port) -> None:
        port.claim = Claim()
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
    on_member_request: Callable[[MemberRequestJson], None] | None = None

    def answer(self, request: ConfigRequest, now: float) -> None:
        physical = None if request.physical is None else str(request.physical)
        nwid, member = request.nwid, request.member
        try:
            outcome = self.controller.answer_request(
                nwid, member, version=request.version, physical=physical, now=now
            )
        except Exception:
            self._failed("answer_request")
            return
        self.counters["config_replies"] += 1
        self._send(nwid, member.address, outcome.reply)
        self._publish(outcome, physical)

    def report(self, effect: PathReportIn, now: float) -> None:
        """Keep a member's path report, if the controller will (controller/reports.py)."""
        try:
            refused = self.controller.store_report(effect.report, now)
        except Exception:
            self._failed("store_report")
            return
        self.counters[f"reports_{refused}" if refused else "reports_kept"] += 1

    def _publish(self, outcome: RequestOutcome, physical: str | None) -> None:
        """A pending member's first request asks the console to approve it (the controller
        decides what is news: deauthorized members are refused without asking anyone); a
        member its request let in is news too."""
        network, member = outcome.network, outcome.member
        if self.events is None or network is None or member is None:
            return
        text, nwid_text = format_address(member.address), format_nwid(network.nwid)
        if outcome.announce:
            where = f" from {physical}" if physical else ""
            message = f"{text} asks to join {network.name} ({nwid_text}){where}; approve it?"
            event = self.events.publish("member_request", message, nwid=nwid_text, address=text)
            if self.on_member_request is not None:
                node = format_address(self.controller.identity.address)
                request = member_request_json(
                    event, network=network.name, physical=physical, node=node
                )
                self.on_member_request(request)
        elif outcome.admitted:
            own = member.address == self.controller.identity.address
            if own:
                why = "the controller's own node"
            elif network.private:
                why = "approved before it asked"
            else:
                why = "a public network"
            ips = ", ".join(member.ips) or "no IP assigned"
            message = f"{text} in {network.name} ({nwid_text}): admitted, {why}: {ips}"
            self.events.publish("member", message, nwid=nwid_text, address=text)

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
