"""An in-memory internet with NAT routers, for driving sans-IO nodes with a fake clock.

Hosts live either on the "internet" (their address is public) or behind a NAT, which may
itself sit behind another NAT (a home router behind a carrier-grade NAT). The NAT kinds
(RFC 4787 families, and a model of Linux conntrack + MASQUERADE) are in fakenat.py.

Every datagram takes LATENCY_S per leg. It carries an IP TTL (Send.ttl, DEFAULT_TTL when
None): every NAT router it crosses costs one hop, and so do the `isp_hops` ISP routers
between the outermost NATs (or public hosts) of the two ends. Where the TTL runs out the
datagram is dropped (a NAT creates no mapping for it) and the router answers ICMP time
exceeded; a Linux router without an input firewall answers a datagram that is for itself
with ICMP port unreachable. An ICMP error that finds its way back (through the sender's
own NAT mappings) is recorded on the Host (`icmp`) and handed to the node's `icmp_error`.

`FakeNet.run(seconds)` advances the clock, delivers due datagrams and calls `tick` on every
node every TICK_S, executing the effects the nodes return, the way overlay_core.io does
with real sockets.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import assert_never

from ..controller import Controller, Denied
from ..proto import effects as fx
from ..proto.effects import Effect, Endpoint, Transport, tcp, udp
from ..proto.identity import Identity
from ..proto.node import TICK_S, Node, NodeConfig
from ..proto.roots import RootEntry
from .fakenat import LOCAL, Nat, NatKind

LATENCY_S = 0.005
PORT = 9993
DEFAULT_TTL = 64  # a Send without ttl: Linux's net.ipv4.ip_default_ttl
ISP_ROUTER_IPS = "198.18.2."  # the ISP routers between the ends: 198.18.2.1, .2, ...
CGNAT_INSIDE_IP = "100.64.0.1"  # a NAT with NATs behind it, on its inside (RFC 6598)


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP error that reached a host: what Node.icmp_error is called with."""

    kind: str  # "ttl_exceeded", "port_unreachable"
    endpoint: Endpoint  # the destination of our datagram, as we addressed it
    offender: str | None  # the ICMP's source as the host sees it
    at: float


@dataclass(slots=True)
class _Datagram:
    dest: Endpoint  # where it is headed now (translated on the way down)
    source: Endpoint  # its source as the receiver sees it
    data: bytes
    ttl: int = DEFAULT_TTL  # left on arrival
    origin: Host | None = None  # the sender, for ICMP errors (None: TCP)
    addressed: Endpoint | None = None  # the destination the sender gave
    up: tuple[tuple[Nat, Endpoint], ...] = ()  # the sender's NATs crossed, new source


@dataclass(slots=True)
class _Icmp:
    kind: str
    endpoint: Endpoint  # the destination of the datagram it is about, as addressed
    offender: str
    origin: Host
    up: tuple[tuple[Nat, Endpoint], ...]  # the sender's NATs it goes back in through


@dataclass
class Host:
    name: str
    node: Node
    endpoint: Endpoint  # inside address
    nat: Nat | None
    delivered: list[fx.Deliver] = field(default_factory=list)
    echoes: list[fx.EchoReply] = field(default_factory=list)
    frames: list[fx.DeliverFrame] = field(default_factory=list)  # written to its TAPs
    ports: dict[int, fx.ConfigurePort | None] = field(default_factory=dict)  # nwid -> settings
    controller: Controller | None = None
    failed: list[fx.EchoFailed] = field(default_factory=list)
    events: list[fx.Event] = field(default_factory=list)
    icmp: list[IcmpError] = field(default_factory=list)  # ICMP errors that reached it
    reports: Counter[str] = field(default_factory=Counter)  # path reports: kept / refused

    @property
    def address(self) -> int:
        return self.node.address


class FakeNet:
    def __init__(self, start: float = 1_000_000.0, seed: int = 1, isp_hops: int = 1) -> None:
        self.now = start
        # Routers between the outermost NATs (or public hosts) of two ends; 0: a flat lab
        # where the peer's router is the next hop.
        self.isp_hops = isp_hops
        self.hosts: dict[str, Host] = {}
        self.roots: list[RootEntry] = []
        self.nats: dict[str, Nat] = {}
        self.blocked: set[frozenset[str]] = set()  # pairs of IPs that cannot reach each other
        # Largest datagram (UDP payload) a public IP's link carries; bigger ones are lost,
        # as with DF set on a real link. Absent: anything up to 1472 (a 1500-byte link).
        self.link_mtu: dict[str, int] = {}
        self.dropped = 0
        # (from, to, data) of each datagram that left the sender's NATs (its source as
        # translated), also those whose TTL then runs out at an ISP router
        self.wiretap: list[tuple[Endpoint, Endpoint, bytes]] | None = None
        self._queue: list[tuple[float, int, _Datagram | _Icmp]] = []
        self._seq = itertools.count()
        self._by_ip: dict[str, Host] = {}
        self._tcp: dict[Endpoint, tuple[Host, Endpoint]] = {}  # root-side stream end -> leaf
        self._next_tick = start
        self._random = _seeded(seed)
        self._ips = itertools.count(10)
        self._inside_ip_given: set[str] = set()  # NATs whose add_nat named inside_ip

    # ------------------------------------------------------------------ building

    def add_nat(
        self,
        name: str,
        kind: NatKind,
        upstream: Nat | None = None,
        *,
        input_firewall: bool = True,
        inside_ip: str | None = None,
    ) -> Nat:
        """A NAT router on the internet, or behind `upstream` (a carrier-grade NAT): then its
        public address is one on the upstream's inside (100.64.n.2), translated again there.
        `inside_ip`: the router's own address on its inside, which the ICMP errors it sends
        inwards come from; default 10.n.0.1, or CGNAT_INSIDE_IP for a NAT with NATs behind
        it. `input_firewall` only matters for LINUX_MASQUERADE (see fakenat.py)."""
        n = next(self._ips)
        public_ip = f"198.18.1.{n}" if upstream is None else f"100.64.{n}.2"
        nat = Nat(public_ip, kind, name=name, upstream=upstream, input_firewall=input_firewall)
        nat.inside_ip = inside_ip or f"10.{n}.0.1"
        if upstream is not None and upstream.name not in self._inside_ip_given:
            upstream.inside_ip = CGNAT_INSIDE_IP
        if inside_ip is not None:
            self._inside_ip_given.add(name)
        self.nats[name] = nat
        return nat

    def add_host(
        self,
        name: str,
        *,
        nat: Nat | None = None,
        root: bool = False,
        identity: Identity | None = None,
        config: NodeConfig | None = None,
    ) -> Host:
        n = next(self._ips)
        ip = f"10.0.{n}.2" if nat is not None else f"198.18.0.{n}"
        endpoint = udp(ip, PORT)
        identity = identity or Identity.generate(self._random)
        config = config or NodeConfig()
        config.is_root = root
        config.roots = list(self.roots)
        config.local_endpoints = [endpoint]
        node = Node(identity, config, self._random)
        host = self.hosts[name] = Host(name, node, endpoint, nat)
        self._by_ip[ip] = host
        if root:
            self.roots.append(RootEntry(identity.public(), (endpoint,)))
        self._apply(host, node.start(self.now))
        return host

    # ------------------------------------------------------------------ running

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = self._queue[0][0] if self._queue else end
            step = min(due, self._next_tick, end)
            self.now = step
            if self._queue and self._queue[0][0] <= step:
                item = heapq.heappop(self._queue)[2]
                if isinstance(item, _Icmp):
                    self._icmp_arrives(item)
                else:
                    self._deliver(item)
                continue
            if self._next_tick <= step:
                self._next_tick += TICK_S
                for host in list(self.hosts.values()):
                    self._apply(host, host.node.tick(self.now))
                    self._push_configs(host)
                continue
            if step >= end:
                return

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        end = self.now + timeout
        while self.now < end:
            if condition():
                return True
            self.run(0.1)
        return condition()

    def call(self, host: Host, effects: list[Effect]) -> None:
        self._apply(host, effects)

    def block(self, a: Host, b: Host) -> None:
        """Drop UDP between the two hosts' public faces (the direct path), not via roots."""
        self.blocked.add(frozenset((self._public_ip(a), self._public_ip(b))))

    def unblock(self, a: Host, b: Host) -> None:
        self.blocked.discard(frozenset((self._public_ip(a), self._public_ip(b))))

    # ------------------------------------------------------------------ plumbing

    def _public_ip(self, host: Host) -> str:
        chain = _chain(host.nat)
        return chain[-1].public_ip if chain else host.endpoint.host

    def _nat_with_public_ip(self, ip: str) -> Nat | None:
        return next((nat for nat in self.nats.values() if nat.public_ip == ip), None)

    def _push(self, item: _Datagram | _Icmp) -> None:
        heapq.heappush(self._queue, (self.now + LATENCY_S, next(self._seq), item))

    def _apply(self, host: Host, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case fx.Send():
                    self._send(host, effect)
                case fx.SendMany(endpoint, datagrams):
                    for data in datagrams:
                        self._send(host, fx.Send(endpoint, data))
                case fx.Deliver():
                    host.delivered.append(effect)
                case fx.EchoReply():
                    host.echoes.append(effect)
                case fx.EchoFailed():
                    host.failed.append(effect)
                case fx.Event():
                    host.events.append(effect)
                case fx.DeliverFrame():
                    host.frames.append(effect)
                case fx.DeliverFrames(nwid, frames):
                    host.frames += [fx.DeliverFrame(nwid, frame) for frame in frames]
                case fx.OpenPort(nwid):
                    host.ports[nwid] = None
                case fx.ConfigurePort(nwid):
                    host.ports[nwid] = effect
                case fx.ClosePort(nwid):
                    host.ports.pop(nwid, None)
                case fx.ConfigRequest():
                    self._config_request(host, effect)
                case fx.PathReportIn(report):
                    if host.controller is not None:
                        refused = host.controller.store_report(report, self.now)
                        host.reports[refused or "kept"] += 1
                case fx.OpenTcp(endpoint):
                    self._open_tcp(host, endpoint)
                case fx.CloseTcp(endpoint):
                    self._tcp = {k: v for k, v in self._tcp.items() if v != (host, endpoint)}
                case _:
                    assert_never(effect)

    def _config_request(self, host: Host, request: fx.ConfigRequest) -> None:
        """What the daemon's ControllerLink does: the host's controller answers at once."""
        if host.controller is None:
            return
        outcome = host.controller.answer_request(
            request.nwid,
            request.member,
            version=request.version,
            physical=str(request.physical) if request.physical else None,
            now=self.now,
        )
        self._answer(host, request.nwid, request.member.address, outcome.reply)

    def _answer(self, host: Host, nwid: int, member: int, reply: bytes | Denied) -> None:
        answer = reply if isinstance(reply, bytes) else reply.code
        self._apply(host, host.node.answer_config_request(nwid, member, answer, self.now))

    def _push_configs(self, host: Host) -> None:
        """What the daemon does every tick: send fresh configs where the controller changed."""
        controller = host.controller
        if controller is None:
            return
        for nwid in controller.take_dirty():
            for member in controller.members_to_notify(nwid):
                self._answer(host, nwid, member, controller.build_config(nwid, member, self.now))

    def _send(self, host: Host, send: fx.Send) -> None:
        dest = send.endpoint
        if dest.transport is Transport.TCP:
            self._send_tcp(host, dest, send.data)
            return
        ttl = DEFAULT_TTL if send.ttl is None else send.ttl
        target = self._by_ip.get(dest.host)
        nat_there = None if target is not None else self._nat_with_public_ip(dest.host)
        # The network `dest` is an address in: an inside (a NAT) or the internet (None).
        realm = target.nat if target is not None else nat_there.upstream if nat_there else None
        chain = _chain(host.nat)
        if realm is not None and not any(nat is realm for nat in chain):
            self.dropped += 1  # a private address, reachable only from behind its NAT
            return
        # Up through our own NATs until we are in the network `dest` is in.
        source, up = host.endpoint, list[tuple[Nat, Endpoint]]()
        for nat in chain:
            if nat is realm:
                break
            if ttl <= 1:
                nat.expired_out(source, dest, self.now)
                self._icmp(host, "ttl_exceeded", dest, nat.inside_ip, tuple(up))
                return
            ttl -= 1
            mapped = nat.out(source, dest, self.now)
            if mapped is None:
                self.dropped += 1
                return
            up.append((nat, mapped))
            source = mapped
        if frozenset((source.host, dest.host)) in self.blocked:
            self.dropped += 1
            return
        limit = min(self.link_mtu.get(source.host, 1472), self.link_mtu.get(dest.host, 1472))
        if len(send.data) > limit:
            self.dropped += 1
            return
        if self.wiretap is not None:
            self.wiretap.append((source, dest, send.data))
        if realm is None and source.host != dest.host:  # across the internet
            for hop in range(self.isp_hops):
                if ttl <= 1:
                    self._icmp(host, "ttl_exceeded", dest, isp_router_ip(hop), tuple(up))
                    return
                ttl -= 1
        self._push(_Datagram(dest, source, send.data, ttl, host, dest, tuple(up)))

    def _deliver(self, datagram: _Datagram) -> None:
        dest, source, data = datagram.dest, datagram.source, datagram.data
        if dest.transport is Transport.TCP:
            target = self._by_ip.get(dest.host)
            if target is not None:
                self._apply(target, target.node.receive_datagram(data, source, self.now))
            return
        # Down through the NATs in front of `dest`, each admitting it or not.
        down: list[Nat] = []
        while (host := self._by_ip.get(dest.host)) is None:
            nat = self._nat_with_public_ip(dest.host)
            verdict = nat.into(source, dest.port, self.now) if nat is not None else None
            if nat is None or verdict is None:
                self.dropped += 1
                return
            if verdict == LOCAL:  # nothing listens on the router: port unreachable
                self._icmp_back(datagram, "port_unreachable", nat.public_ip, down)
                return
            if datagram.ttl <= 1:
                self._icmp_back(datagram, "ttl_exceeded", nat.public_ip, down)
                return
            datagram.ttl -= 1
            down.append(nat)
            dest = verdict
        self._apply(host, host.node.receive_datagram(data, source, self.now))

    def _icmp_back(self, datagram: _Datagram, kind: str, offender: str, down: list[Nat]) -> None:
        """An ICMP error from a router in front of the receiver: on its way out it passes
        the NATs the datagram came in through (RELATED), the outermost giving it its public
        address as the source."""
        if down:
            offender = down[0].public_ip
        if datagram.origin is not None and datagram.addressed is not None:
            self._icmp(datagram.origin, kind, datagram.addressed, offender, datagram.up)

    def _icmp(
        self,
        host: Host,
        kind: str,
        dest: Endpoint,
        offender: str,
        up: tuple[tuple[Nat, Endpoint], ...],
    ) -> None:
        self.dropped += 1  # the datagram it is about
        self._push(_Icmp(kind, dest, offender, host, up))

    def _icmp_arrives(self, icmp: _Icmp) -> None:
        """In through the sender's NATs as RELATED traffic, if its mappings are still there."""
        for nat, public in reversed(icmp.up):
            if not nat.related(public, icmp.endpoint, self.now):
                return
        host = icmp.origin
        host.icmp.append(IcmpError(icmp.kind, icmp.endpoint, icmp.offender, self.now))
        handler = getattr(host.node, "icmp_error", None)  # nodes without it ignore ICMP
        if handler is not None:
            self._apply(host, handler(icmp.kind, icmp.endpoint, icmp.offender, self.now))

    def _open_tcp(self, host: Host, root_endpoint: Endpoint) -> None:
        root = self._by_ip.get(root_endpoint.host)
        if root is None:
            return
        leaf_side = tcp(self._public_ip(host), 50000 + len(self._tcp))
        self._tcp[leaf_side] = (host, root_endpoint)
        self._apply(host, host.node.tcp_up(root_endpoint, self.now))

    def _send_tcp(self, host: Host, dest: Endpoint, data: bytes) -> None:
        if dest in self._tcp:  # root answering a leaf's stream
            leaf, root_endpoint = self._tcp[dest]
            self._push(_Datagram(tcp(leaf.endpoint.host, 0), root_endpoint, data))
        else:  # leaf writing to its stream to the root
            leaf_side = next((k for k, v in self._tcp.items() if v == (host, dest)), None)
            if leaf_side is None:
                self.dropped += 1
                return
            self._push(_Datagram(tcp(dest.host, 0), leaf_side, data))


def _chain(nat: Nat | None) -> list[Nat]:
    """A host's NATs, its own first, the one on the internet last."""
    chain = []
    while nat is not None:
        chain.append(nat)
        nat = nat.upstream
    return chain


def isp_router_ip(hop: int) -> str:
    """The address the ISP router `hop` (0: the first past the sender's NATs) answers from."""
    return f"{ISP_ROUTER_IPS}{hop + 1}"


def _seeded(seed: int) -> Callable[[int], bytes]:
    """Deterministic bytes for reproducible tests (BLAKE2b in counter mode), unless seed=0."""
    if seed == 0:
        return os.urandom
    import hashlib

    counter = itertools.count()

    def random_bytes(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.blake2b(f"{seed}:{next(counter)}".encode()).digest()
        return out[:n]

    return random_bytes
