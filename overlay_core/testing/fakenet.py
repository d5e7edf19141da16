"""An in-memory internet with NAT routers, for driving sans-IO nodes with a fake clock.

Hosts live either on the "internet" (their address is public) or behind a NAT. A NAT
behaves like one of the RFC 4787 families that matter for hole punching:

- FULL_CONE: one public port per inside endpoint; anyone may send to it.
- PORT_RESTRICTED: one public port per inside endpoint; only (ip, port) pairs the inside
  host has sent to may answer. (Linux MASQUERADE without --random-fully.)
- SYMMETRIC: a new public port for every destination; same filtering as above.
  (MASQUERADE --random-fully, carrier-grade NATs.)
- BLOCK_UDP: drops UDP both ways; TCP to the outside still works.

Every datagram takes LATENCY_S per leg. `FakeNet.run(seconds)` advances the clock, delivers
due datagrams and calls `tick` on every node every TICK_S, executing the effects the
nodes return, the way overlay_core.io does with real sockets.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ..controller import Controller, Denied
from ..proto.effects import (
    ClosePort,
    CloseTcp,
    ConfigRequest,
    ConfigurePort,
    Deliver,
    DeliverFrame,
    DeliverFrames,
    EchoFailed,
    EchoReply,
    Effect,
    Endpoint,
    Event,
    OpenPort,
    OpenTcp,
    Send,
    SendMany,
    Transport,
    tcp,
    udp,
)
from ..proto.identity import Identity
from ..proto.node import TICK_S, Node, NodeConfig
from ..proto.roots import RootEntry

LATENCY_S = 0.005
PORT = 9993


class NatKind(Enum):
    FULL_CONE = "full-cone"
    PORT_RESTRICTED = "port-restricted"
    SYMMETRIC = "symmetric"
    BLOCK_UDP = "block-udp"


@dataclass
class Nat:
    public_ip: str
    kind: NatKind
    _ports: itertools.count[int] = field(default_factory=lambda: itertools.count(40000))
    # (inside endpoint, destination or None) -> public port
    mappings: dict[tuple[Endpoint, Endpoint | None], int] = field(default_factory=dict)
    # public port -> (inside endpoint, destinations allowed to answer)
    inbound: dict[int, tuple[Endpoint, set[Endpoint]]] = field(default_factory=dict)

    def outbound(self, inside: Endpoint, dest: Endpoint) -> Endpoint | None:
        if self.kind is NatKind.BLOCK_UDP:
            return None
        key = (inside, dest if self.kind is NatKind.SYMMETRIC else None)
        port = self.mappings.get(key)
        if port is None:
            port = self.mappings[key] = next(self._ports)
            self.inbound[port] = (inside, set())
        self.inbound[port][1].add(dest)
        return udp(self.public_ip, port)

    def inbound_to(self, port: int, source: Endpoint) -> Endpoint | None:
        entry = self.inbound.get(port)
        if entry is None or self.kind is NatKind.BLOCK_UDP:
            return None
        inside, allowed = entry
        if self.kind is not NatKind.FULL_CONE and source not in allowed:
            return None
        return inside


@dataclass
class Host:
    name: str
    node: Node
    endpoint: Endpoint  # inside address
    nat: Nat | None
    delivered: list[Deliver] = field(default_factory=list)
    echoes: list[EchoReply] = field(default_factory=list)
    frames: list[DeliverFrame] = field(default_factory=list)  # written to its TAPs
    ports: dict[int, ConfigurePort | None] = field(default_factory=dict)  # nwid -> settings
    controller: Controller | None = None
    failed: list[EchoFailed] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def address(self) -> int:
        return self.node.address


class FakeNet:
    def __init__(self, start: float = 1_000_000.0, seed: int = 1) -> None:
        self.now = start
        self.hosts: dict[str, Host] = {}
        self.roots: list[RootEntry] = []
        self.nats: dict[str, Nat] = {}
        self.blocked: set[frozenset[str]] = set()  # pairs of IPs that cannot reach each other
        # Largest datagram (UDP payload) a public IP's link carries; bigger ones are lost,
        # as with DF set on a real link. Absent: anything up to 1472 (a 1500-byte link).
        self.link_mtu: dict[str, int] = {}
        self.dropped = 0
        self.wiretap: list[tuple[Endpoint, Endpoint, bytes]] | None = None  # (from, to, data)
        self._queue: list[tuple[float, int, Endpoint, Endpoint, bytes]] = []
        self._seq = itertools.count()
        self._by_ip: dict[str, Host] = {}
        self._tcp: dict[Endpoint, tuple[Host, Endpoint]] = {}  # root-side stream end -> leaf
        self._next_tick = start
        self._random = _seeded(seed)
        self._ips = itertools.count(10)

    # ------------------------------------------------------------------ building

    def add_nat(self, name: str, kind: NatKind) -> Nat:
        nat = self.nats[name] = Nat(f"198.18.1.{next(self._ips)}", kind)
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
                _, _, dest, source, data = heapq.heappop(self._queue)
                self._deliver(dest, source, data)
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
        return host.nat.public_ip if host.nat is not None else host.endpoint.host

    def _apply(self, host: Host, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(host, effect)
            elif isinstance(effect, SendMany):
                for data in effect.datagrams:
                    self._send(host, Send(effect.endpoint, data))
            elif isinstance(effect, Deliver):
                host.delivered.append(effect)
            elif isinstance(effect, EchoReply):
                host.echoes.append(effect)
            elif isinstance(effect, EchoFailed):
                host.failed.append(effect)
            elif isinstance(effect, Event):
                host.events.append(effect)
            elif isinstance(effect, DeliverFrame):
                host.frames.append(effect)
            elif isinstance(effect, DeliverFrames):
                host.frames += [DeliverFrame(effect.nwid, frame) for frame in effect.frames]
            elif isinstance(effect, OpenPort):
                host.ports[effect.nwid] = None
            elif isinstance(effect, ConfigurePort):
                host.ports[effect.nwid] = effect
            elif isinstance(effect, ClosePort):
                host.ports.pop(effect.nwid, None)
            elif isinstance(effect, ConfigRequest) and host.controller is not None:
                reply = host.controller.handle_config_request(
                    effect.nwid,
                    effect.member,
                    version=effect.version,
                    physical=str(effect.physical) if effect.physical else None,
                    now=self.now,
                )
                self._answer(host, effect.nwid, effect.member.address, reply)
            elif isinstance(effect, OpenTcp):
                self._open_tcp(host, effect.endpoint)
            elif isinstance(effect, CloseTcp):
                self._tcp = {k: v for k, v in self._tcp.items() if v != (host, effect.endpoint)}

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

    def _send(self, host: Host, send: Send) -> None:
        dest = send.endpoint
        if dest.transport is Transport.TCP:
            self._send_tcp(host, dest, send.data)
            return
        source = host.endpoint
        neighbour = self._by_ip.get(dest.host)
        if neighbour is not None and neighbour.nat is not None and neighbour.endpoint == dest:
            # A private address: reachable only from behind the same NAT, untranslated.
            if neighbour.nat is not host.nat:
                self.dropped += 1
                return
        elif host.nat is not None:
            mapped = host.nat.outbound(source, dest)
            if mapped is None:
                self.dropped += 1
                return
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
        heapq.heappush(
            self._queue, (self.now + LATENCY_S, next(self._seq), dest, source, send.data)
        )

    def _deliver(self, dest: Endpoint, source: Endpoint, data: bytes) -> None:
        if dest.transport is Transport.TCP:
            target = self._by_ip.get(dest.host)
            if target is not None:
                self._apply(target, target.node.receive_datagram(data, source, self.now))
            return
        host = self._by_ip.get(dest.host)
        if host is None:
            for nat in self.nats.values():
                if nat.public_ip == dest.host:
                    inside = nat.inbound_to(dest.port, source)
                    host = self._by_ip.get(inside.host) if inside is not None else None
                    break
        if host is None:
            self.dropped += 1
            return
        self._apply(host, host.node.receive_datagram(data, source, self.now))

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
            item = (
                self.now + LATENCY_S,
                next(self._seq),
                tcp(leaf.endpoint.host, 0),
                root_endpoint,
                data,
            )
        else:  # leaf writing to its stream to the root
            leaf_side = next((k for k, v in self._tcp.items() if v == (host, dest)), None)
            if leaf_side is None:
                self.dropped += 1
                return
            item = (self.now + LATENCY_S, next(self._seq), tcp(dest.host, 0), leaf_side, data)
        heapq.heappush(self._queue, item)


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
