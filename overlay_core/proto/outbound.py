"""The node's core: who it knows (peers, roots) and how a packet to one of them leaves.

`Outbound` holds the per-peer state and does all the sending: it decides where a packet
goes (`route`), seals it (`seal`, `emit`), starts handshakes (`hello`), looks strangers up
(`whois_for`) and probes paths (`probe`). Every other part of the node holds this one
object instead of inheriting from it (node.py lists the parts and wires them); the ones
that only need to send a verb see it through the `Sender` protocol (sender.py).

The split is by direction, like nebula's inside.go / outside.go: this file decides where
a packet goes and seals it; inbound.py opens packets and reacts to them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import __version__
from . import wire
from .admission import (
    COOKIE_ROTATE_S,
    REHANDSHAKE_MIN_S,
    UNSOLICITED_WHOIS_BURST,
    UNSOLICITED_WHOIS_RATE,
    Throttle,
)
from .crypto import (
    EphemeralKey,
    Session,
    Suite,
    hello_features,
    preferred_suites,
    static_key,
    suite_bits,
)
from .crypto import (
    seal as seal_static,
)
from .datapath import send_many
from .diagnose import link_of
from .effects import Effect, Endpoint, Send, tcp
from .hops import HopTrace
from .identity import Identity
from .path import PMTU_COMMON, PMTU_MIN, Path
from .peer import Handshake, Peer
from .ratelimit import TokenBucket
from .roots import RootEntry
from .states import Link
from .wire import Cipher, Verb

WHOIS_RETRY_S = 1.0
WHOIS_EXPIRE_S = 30.0  # a lookup nobody answered is dropped, with what it queued
ECHO_TIMEOUT_S = 30.0
PUSH_PATHS_EVERY_S = 60.0
MAX_WHOIS_QUEUE = 64
MAX_WHOIS_PENDING = 1024  # addresses being looked up at once
MAX_ECHOES_PENDING = 4096  # probes awaiting an answer (they expire after ECHO_TIMEOUT_S)
MAX_HELLO_TARGETS = 16  # HELLOs of one handshake whose answer we still take
# UDP payload per datagram: 1500-byte Ethernet minus IPv6 (40) and UDP (8) headers, minus
# a margin for tunnels (PPPoE, VLAN) on the way.
DEFAULT_PHYS_MTU = PMTU_COMMON  # the daemon sets more from a jumbo interface's MTU


@dataclass(slots=True)
class NodeConfig:
    version: str = __version__
    is_root: bool = False
    roots: list[RootEntry] = field(default_factory=list)
    local_endpoints: list[Endpoint] = field(default_factory=list)
    force_tcp: bool = False
    tcp_fallback: bool = True
    phys_mtu: int = DEFAULT_PHYS_MTU
    rekey_after_packets: int = 1 << 28
    # Session cipher suites, best first (crypto.py). The default reads the CPU once, at
    # import; (Suite.XCHACHA20,) behaves like a node from before suites existed.
    suites: tuple[Suite, ...] = preferred_suites()
    partial_csum: bool = False  # offer wire.FEATURE_PARTIAL_CSUM in HELLO and OK(HELLO)
    # Offer wire.FEATURE_PUNCH (punch.py); False behaves like a node from before it.
    punch_sync: bool = True


@dataclass(slots=True)
class EchoWait:
    peer: int
    sent: float
    user: bool
    endpoint: Endpoint | None = None  # sent to this path (None: routed); an answer confirms it
    probe_size: int | None = None  # a path MTU probe of this many bytes
    trace_ttl: int | None = None  # a hop trace probe sent with this TTL (hops.py)


def _u(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


class Outbound:
    """The node's tables and its sending side; see the module docstring."""

    def __init__(
        self, identity: Identity, config: NodeConfig, random_bytes: Callable[[int], bytes]
    ) -> None:
        if identity.seed is None:
            raise ValueError("a node needs an identity with its secret")
        self.identity = identity
        self.address = identity.address
        self.config = config
        self.random = random_bytes  # the node's only source of randomness
        self.peers: dict[int, Peer] = {}
        # The node hands these tables out (Node.roots, .peers, ...): they are changed in
        # place, never rebound.
        self.roots: dict[int, RootEntry] = {}
        self._root_by_hostport: dict[tuple[str, int], int] = {}
        self.use_roots({r.identity.address: r for r in config.roots})
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.observed: dict[int, Endpoint] = {}  # reporter -> where it sees us
        # Our NAT hops, traced towards a root: the TTL of NAT-opening packets (hops.py).
        self.hops = HopTrace()
        self.started = 0.0
        self.whois: dict[int, float] = {}  # address -> last asked
        self.whois_queue: dict[int, list[tuple[Verb, bytes]]] = {}
        self.echoes: dict[int, EchoWait] = {}
        self.tcp_up: set[Endpoint] = set()  # TCP links to roots that are open
        self._static: dict[int, bytes] = {}
        self._last_hello_ms = 0
        self._rehandshakes = Throttle(REHANDSHAKE_MIN_S)
        self._unsolicited_whois = TokenBucket.full(UNSOLICITED_WHOIS_RATE, UNSOLICITED_WHOIS_BURST)

    @property
    def version(self) -> str:
        return self.config.version

    def use_roots(self, roots: dict[int, RootEntry]) -> None:
        """Make `roots` (address -> entry, in the file's order) the node's roots; answers
        at their endpoints are theirs from now on. Ourselves is never one of them."""
        self.roots.clear()
        self.roots.update((a, r) for a, r in roots.items() if a != self.address)
        self._root_by_hostport = {
            (e.host, e.port): a for a, r in self.roots.items() for e in r.endpoints
        }

    def expire(self, now: float) -> None:
        """Drop what only ages: probes nobody answered, lookups nobody answered."""
        self._rehandshakes.expire(now)
        for echo_id in [i for i, w in self.echoes.items() if now - w.sent > ECHO_TIMEOUT_S]:
            del self.echoes[echo_id]
        for address in [a for a, t in self.whois.items() if now - t > WHOIS_EXPIRE_S]:
            self.whois.pop(address, None)
            self.whois_queue.pop(address, None)

    # ------------------------------------------------------------------ lookups

    def peer(self, identity: Identity, now: float) -> Peer:
        """The peer with `identity`, created if new."""
        peer = self.peers.get(identity.address)
        if peer is None:
            peer = self.peers[identity.address] = Peer(identity.public(), created=now)
            peer.is_root = identity.address in self.roots
            peer.mtu_limit = self.config.phys_mtu
        return peer

    def path(self, peer: Peer, endpoint: Endpoint, now: float) -> Path:
        """The peer's path at `endpoint`, created if new; a root's configured endpoint is
        ours to send to before it is confirmed."""
        path = peer.path(endpoint, now)
        if peer.is_root and self.root_at(endpoint) == peer.address:
            path.configured = True
        return path

    def static_key(self, peer: Peer) -> bytes:
        key = self._static.get(peer.address)
        if key is None:
            key = self._static[peer.address] = static_key(self.identity, peer.identity)
        return key

    def root_at(self, endpoint: Endpoint) -> int | None:
        return self._root_by_hostport.get((endpoint.host, endpoint.port))

    def root_link(self, now: float) -> Link:
        """How a peer without a direct path is reached now: through a root over UDP
        (RELAY), over the TCP fallback (TCP), or not at all (NONE)."""
        links = {link_of(self.peers[a], Link.NONE, now) for a in self.roots}
        if Link.DIRECT in links:
            return Link.RELAY
        return Link.TCP if Link.TCP in links else Link.NONE

    def root_endpoints(self, peer: Peer) -> list[Endpoint]:
        entry = self.roots[peer.address]
        out = [] if self.config.force_tcp else list(entry.endpoints)
        out += [tcp(e.host, e.port) for e in entry.endpoints if tcp(e.host, e.port) in self.tcp_up]
        return out

    def observe(self, peer: Peer, endpoint: Endpoint | None) -> None:
        if endpoint is not None:
            self.observed[peer.address] = endpoint

    def drop_peer(self, address: int) -> None:
        """The core's share of forgetting a peer: it and the keys and limits kept for it
        here. Only for Timers.forget_peer, which also clears what the other parts keep."""
        self.peers.pop(address, None)
        self._static.pop(address, None)
        self._rehandshakes.forget(address)

    def drop_tcp_paths(self, endpoint: Endpoint) -> None:
        """The TCP link at `endpoint` is gone: no peer's path runs over it any more."""
        self.tcp_up.discard(endpoint)
        for peer in self.peers.values():
            if peer.paths.pop(endpoint, None) is not None:
                peer.forget_best_path()

    # ------------------------------------------------------------------ sealing

    def seal(
        self,
        peer: Peer,
        cipher: Cipher,
        session: Session | None,
        verb: Verb,
        payload: bytes,
        packet_id: int | None = None,
        cookie: bytes | None = None,
    ) -> bytes:
        """One `verb` packet to `peer`: sealed on `session` (its suite), or without one
        with the static key (HELLO and OK(HELLO)) and a random packet id if none given."""
        if session is not None:
            packet_id, key_id = session.next_packet_id(), session.key_id
        else:
            packet_id = packet_id if packet_id is not None else _u(self.random(8))
            key_id = 0
        header = wire.Header(
            packet_id, peer.address, self.address, 0, False, cipher, key_id, cookie is not None
        )
        head = header.pack()
        ad = wire.associated_data(head)
        clear = self.identity.public_key + (cookie or b"") if cipher is Cipher.HELLO else b""
        plain = bytes([verb]) + payload
        if session is not None:  # the negotiated suite
            return head + session.seal(head, ad, plain)
        # Static-key packets: XChaCha20 always.
        return head + clear + seal_static(self.static_key(peer), head, ad + clear, plain)

    def emit(
        self,
        peer: Peer,
        packet: bytes,
        endpoint: Endpoint,
        now: float,
        whole: bool = False,
        ttl: int | None = None,
    ) -> list[Effect]:
        """A sealed `packet` on its way to `peer` at `endpoint` (with IP TTL `ttl`, None:
        the system's): fragmented to the path's MTU unless `whole`, within what an
        unconfirmed path may be sent, and counted."""
        path = peer.paths.get(endpoint)
        # Relayed packets take the other leg too, whose MTU only the root knows: stay small.
        mtu = path.mtu if path is not None else PMTU_MIN
        try:
            pieces = [packet] if whole else wire.fragment_packet(packet, mtu)
        except ValueError:
            self.drops["too_big"] += 1
            return []
        if (
            path is not None
            and not (path.confirmed or path.configured)  # the common case: no sum per packet
            and not path.may_send(sum(len(p) for p in pieces))
        ):
            # Unconfirmed: never more bytes toward an address than it sent us (path.py).
            self.drops["unconfirmed_path"] += 1
            return []
        self.count_sent(peer, endpoint, path, 1, len(pieces), len(packet), now)
        return [Send(endpoint, piece, ttl) for piece in pieces]

    def count_sent(
        self,
        peer: Peer,
        endpoint: Endpoint,
        path: Path | None,
        packets: int,
        datagrams: int,
        size: int,
        now: float,
    ) -> None:
        """`packets` packets of `size` bytes in all, as `datagrams` datagrams, went to
        `peer` at `endpoint`: its own path's, or the relaying root's, whose it is."""
        peer.last_send = now
        peer.counters["tx_packets"] += packets
        peer.counters["tx_bytes"] += size
        self.counters["tx_packets"] += datagrams
        self.counters["tx_bytes"] += size
        if path is None and (root := self.root_at(endpoint)) is not None:
            path = self.peers[root].paths.get(endpoint)
        if path is not None:
            path.sent(size, now, packets)

    def route(self, peer: Peer, now: float) -> Endpoint | None:
        """Where a packet to `peer` goes now: its best path, else a root's."""
        best = peer.best_path(now)
        if best is not None:
            return best.endpoint
        if peer.is_root:
            endpoints = self.root_endpoints(peer)
            return endpoints[-1] if endpoints else None  # TCP (appended last) when it's up
        if self.config.is_root:
            return None
        relays = [p for a in self.roots if (p := self.peers[a].best_path(now)) is not None]
        return min(relays, key=lambda p: p.sort_key()).endpoint if relays else None

    def send(
        self,
        peer: Peer,
        verb: Verb,
        payload: bytes,
        now: float,
        endpoint: Endpoint | None = None,
        whole: bool = False,
        ttl: int | None = None,
    ) -> list[Effect]:
        """One `verb` packet to `peer` on its session (queued behind a handshake when
        there is none), to `endpoint` or wherever `route` says."""
        session = peer.tx_session
        if session is None or session.expired(now):
            peer.queue.append((verb, payload))
            return self.ensure_handshake(peer, now)
        target = endpoint or self.route(peer, now)
        if target is None:
            self.drops["no_route"] += 1
            return []
        packet = self.seal(peer, Cipher.SESSION, session, verb, payload)
        out = self.emit(peer, packet, target, now, whole, ttl)
        if peer.handshake is None and session.wants_rekey(now, self.config.rekey_after_packets):
            out += self.hello(peer, now)
        return out

    def flush(self, peer: Peer, now: float) -> list[Effect]:
        """Send what waited for a session with `peer`, if there is one now."""
        if peer.tx_session is None:
            return []
        queued = list(peer.queue)
        peer.queue.clear()
        out: list[Effect] = []
        for verb, payload in queued:
            out += self.send(peer, verb, payload, now)
        return out

    def send_to_address(self, dest: int, verb: Verb, payload: bytes, now: float) -> list[Effect]:
        """`send` to a node we may not know yet: its identity is looked up first (WHOIS),
        and the packet waits for the answer."""
        if dest == self.address:
            self.drops["to_self"] += 1
            return []
        peer = self.peers.get(dest)
        if peer is not None:
            return self.send(peer, verb, payload, now)
        out = self.whois_for(dest, now)
        if dest in self.whois:  # queued only while a lookup is pending, which tick expires
            queue = self.whois_queue.setdefault(dest, [])
            if len(queue) < MAX_WHOIS_QUEUE:
                queue.append((verb, payload))
        return out

    def send_many_to_address(
        self, dest: int, verb: Verb, payloads: list[bytes], now: float
    ) -> list[Effect]:
        """`send_to_address` for many packets of one verb: sealed in one batch to a known
        peer (datapath.send_many), else one by one."""
        peer = self.peers.get(dest)
        if peer is not None and dest != self.address:
            return send_many(self, peer, verb, payloads, now)
        out: list[Effect] = []
        for payload in payloads:
            out += self.send_to_address(dest, verb, payload, now)
        return out

    # ------------------------------------------------------------------ handshakes

    def ensure_handshake(self, peer: Peer, now: float) -> list[Effect]:
        return [] if peer.handshake is not None else self.hello(peer, now)

    def hello(
        self, peer: Peer, now: float, endpoints: list[Endpoint] | None = None
    ) -> list[Effect]:
        """A HELLO to `peer` (at `endpoints`, else where `route` says; a root with no live
        path at all of its endpoints), starting a handshake or counting one more try."""
        handshake = peer.handshake
        if handshake is None:
            ephemeral = EphemeralKey.from_secret(self.random(32))
            offered = suite_bits(self.config.suites)
            handshake = peer.handshake = Handshake(ephemeral, {}, now, now, 0, offered)
        handshake.attempts += 1
        handshake.last_sent = now
        if endpoints is None:
            route = self.route(peer, now)
            endpoints = [route] if route is not None else []
            if peer.is_root and peer.best_path(now) is None:
                endpoints = self.root_endpoints(peer)
        out: list[Effect] = []
        for endpoint in endpoints:
            # Strictly increasing per sender, so a receiver can refuse replayed HELLOs.
            self._last_hello_ms = max(int(now * 1000), self._last_hello_ms + 1)
            path = peer.paths.get(endpoint)
            seen = endpoint if path is not None and path.last_receive is not None else None
            hello = wire.Hello(
                wire.PROTOCOL_VERSION,
                self.config.version,
                self.config.is_root,
                self._last_hello_ms,
                handshake.ephemeral.public,
                seen,
                hello_features(
                    handshake.offered,
                    partial_csum=self.config.partial_csum,
                    punch=self.config.punch_sync,
                ),
            )
            packet_id = _u(self.random(8))
            handshake.sent_to[packet_id] = endpoint
            while len(handshake.sent_to) > MAX_HELLO_TARGETS:
                del handshake.sent_to[next(iter(handshake.sent_to))]
            cookie = None
            if peer.cookie is not None and peer.cookie[1] == endpoint:
                if now - peer.cookie[2] < COOKIE_ROTATE_S:
                    cookie = peer.cookie[0]
            payload = hello.pack() + bytes(wire.HELLO_PADDING_BYTES)
            packet = self.seal(peer, Cipher.HELLO, None, Verb.HELLO, payload, packet_id, cookie)
            out += self.emit(peer, packet, endpoint, now)
        return out

    def rehandshake(self, peer: Peer, now: float) -> list[Effect]:
        """A handshake the other side asked for, or implied (a key id we don't have): at
        most one per REHANDSHAKE_MIN_S per peer, whoever sends such packets."""
        if peer.handshake is not None:
            return []
        if not self._rehandshakes.allow(peer.address, now):
            self.drops["rehandshake_limited"] += 1
            return []
        return self.hello(peer, now)

    def whois_for(self, address: int, now: float, unsolicited: bool = False) -> list[Effect]:
        """Ask the roots who `address` is. `unsolicited`: because a stranger sent us a
        packet, not because we want to talk to it, so under a global budget."""
        if address == self.address:
            self.drops["whois_self"] += 1
            return []
        last = self.whois.get(address)
        if last is not None and now - last < WHOIS_RETRY_S:
            return []
        if last is None and len(self.whois) >= MAX_WHOIS_PENDING:
            self.drops["whois_limited"] += 1
            return []
        if unsolicited and not self._unsolicited_whois.take(now):
            self.drops["whois_limited"] += 1
            return []
        self.whois[address] = now
        out: list[Effect] = []
        for root in self.roots:
            peer = self.peers[root]
            if peer.tx_session is not None:
                out += self.send(peer, Verb.WHOIS, wire.addr_bytes(address), now)
        return out

    # ------------------------------------------------------------------ probes

    def probe(self, peer: Peer, endpoint: Endpoint | None, now: float) -> list[Effect]:
        """An ECHO to `peer` at `endpoint` (None: routed), whose answer confirms the path
        and measures it; counted as a direct attempt on a dead direct path of a leaf."""
        if peer.tx_session is None:
            return self.ensure_handshake(peer, now)
        echo_id = self.expect_echo(EchoWait(peer.address, now, False, endpoint))
        payload = wire.echo_request(echo_id, int(now * 1e6))
        out = self.send(peer, Verb.ECHO, payload, now, endpoint)
        if endpoint is not None:
            path = self.path(peer, endpoint, now)
            path.last_probe = now
            path.probes_sent += 1
            if path.is_direct and not path.alive(now) and not peer.is_root:
                peer.punch.attempts += 1
                if peer.punch.first_attempt is None:
                    peer.punch.first_attempt = now
            left = peer.punch.pending.get(endpoint)
            if left is not None:
                if left <= 1:
                    del peer.punch.pending[endpoint]
                else:
                    peer.punch.pending[endpoint] = left - 1
        return out

    def probe_mtu(self, peer: Peer, path: Path, size: int, now: float) -> list[Effect]:
        """An ECHO padded so the whole datagram is `size` bytes, sent unfragmented."""
        echo_id = self.expect_echo(EchoWait(peer.address, now, False, path.endpoint, size))
        echo = wire.Echo(echo_id, int(now * 1e6)).pack()
        padding = size - (wire.HEADER_BYTES + 1 + len(echo) + wire.TAG_BYTES)
        if padding < 0:
            path.mtu_fits(size)
            return []
        payload = echo + bytes(padding)
        return self.send(peer, Verb.ECHO, payload, now, path.endpoint, whole=True)

    def expect_echo(self, wait: EchoWait) -> int:
        """Register a probe we are about to send; its random id."""
        echo_id = _u(self.random(4))
        while len(self.echoes) >= MAX_ECHOES_PENDING:
            del self.echoes[next(iter(self.echoes))]
        self.echoes[echo_id] = wait
        return echo_id

    def push_paths(self, peer: Peer, now: float) -> list[Effect]:
        """Tell a leaf peer our own endpoints (PUSH_DIRECT_PATHS), once per
        PUSH_PATHS_EVERY_S, so it can punch towards them too."""
        if self.config.is_root or peer.is_root or not self.config.local_endpoints:
            return []
        if peer.pushed_paths_at is not None and now - peer.pushed_paths_at < PUSH_PATHS_EVERY_S:
            return []
        if peer.tx_session is None:
            return []
        peer.pushed_paths_at = now
        payload = wire.pack_endpoints(self.config.local_endpoints)
        return self.send(peer, Verb.PUSH_DIRECT_PATHS, payload, now)
