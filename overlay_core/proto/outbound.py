"""The node's state and everything that sends: sealing, routing, handshakes, probes, relaying.

`Node` (node.py) adds the public API and the receive side on top of this class. The split
is by direction, like nebula's inside.go / outside.go: this file decides where a packet
goes and seals it; node.py opens packets and reacts to them.
"""

from __future__ import annotations

import os
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
    HelloAdmission,
    Throttle,
)
from .crypto import (
    EphemeralKey,
    Session,
    Suite,
    hello_features,
    preferred_suites,
    seal,
    static_key,
    suite_bits,
)
from .datapath import RxBatch
from .diagnose import link_of
from .effects import CloseTcp, Effect, Endpoint, Event, OpenTcp, Send, Transport, tcp
from .fragment import Reassembler
from .hops import HopTrace
from .identity import Identity, format_address
from .membership import Memberships
from .path import LATENCY_PROBE_S, PATH_ALIVE_S, PMTU_COMMON, PMTU_MIN, Path
from .peer import Handshake, Peer
from .relay import RelayState, TokenBucket, punchable
from .reporting import Reporter
from .roots import RootEntry
from .wire import Cipher, Verb

HANDSHAKE_RETRY_S = 1.0
HANDSHAKE_MAX_ATTEMPTS = 8  # for leaves; roots are retried for ever, with backoff
ROOT_RETRY_MAX_S = 8.0
WHOIS_RETRY_S = 1.0
PUNCH_INTERVAL_S = 0.5
TCP_FALLBACK_AFTER_S = 8.0  # no UDP answer from any root for this long: open TCP
TCP_UDP_RETRY_S = 5.0  # while tunneled, still try UDP to the roots this often
ECHO_TIMEOUT_S = 30.0
PEER_FORGET_S = 600.0
PUSH_PATHS_EVERY_S = 60.0
PUSH_ACCEPT_MIN_S = 5.0  # a peer's pushes we act on; both sides push at each handshake
MAX_WHOIS_QUEUE = 64
MAX_WHOIS_PENDING = 1024  # addresses being looked up at once
MAX_ECHOES_PENDING = 4096  # probes awaiting an answer (they expire after ECHO_TIMEOUT_S)
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


class NodeState:
    def __init__(
        self,
        identity: Identity,
        config: NodeConfig,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if identity.seed is None:
            raise ValueError("a node needs an identity with its secret")
        self.identity = identity
        self.address = identity.address
        self.config = config
        self._random = random_bytes
        self.peers: dict[int, Peer] = {}
        self.roots: dict[int, RootEntry] = {
            r.identity.address: r for r in config.roots if r.identity.address != self.address
        }
        self._root_by_hostport = {
            (e.host, e.port): a for a, r in self.roots.items() for e in r.endpoints
        }
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.observed: dict[int, Endpoint] = {}  # reporter -> where it sees us
        self._reassembler = Reassembler(self.drops)
        self._static: dict[int, bytes] = {}
        self._whois: dict[int, float] = {}  # address -> last asked
        self._whois_queue: dict[int, list[tuple[Verb, bytes]]] = {}
        self._echoes: dict[int, EchoWait] = {}
        self._relay = RelayState()
        self._tcp_wanted: set[Endpoint] = set()
        self._tcp_up: set[Endpoint] = set()
        self._last_udp_from_root: float | None = None
        # Our NAT hops, traced towards a root: the TTL of NAT-opening packets (hops.py).
        self.hops = HopTrace()
        self._last_hello_ms = 0
        self._links: dict[int, tuple[str, Endpoint | None]] = {}
        self._started = 0.0
        # Admission control for the work strangers can make us do (admission.py).
        self._admission = HelloAdmission(random_bytes(32), 0.0)
        self._rehandshakes = Throttle(REHANDSHAKE_MIN_S)
        self._pushes = Throttle(PUSH_ACCEPT_MIN_S)  # PUSH_DIRECT_PATHS acted on, per peer
        self._unsolicited_whois = TokenBucket.full(UNSOLICITED_WHOIS_RATE, UNSOLICITED_WHOIS_BURST)
        self._rx_bytes = 0  # size of the packet being handled, for the handlers
        self._rx_batch: RxBatch | None = None  # open while receive_datagrams runs
        self.memberships = Memberships(self)
        self.reporter = Reporter()
        for root in self.roots.values():
            self._peer(root.identity, 0.0).is_root = True

    # ------------------------------------------------------------------ lookups

    def _peer(self, identity: Identity, now: float) -> Peer:
        peer = self.peers.get(identity.address)
        if peer is None:
            peer = self.peers[identity.address] = Peer(identity.public(), created=now)
            peer.is_root = identity.address in self.roots
            peer.mtu_limit = self.config.phys_mtu
        return peer

    def _path(self, peer: Peer, endpoint: Endpoint, now: float) -> Path:
        """The peer's path at `endpoint`, created if new; a root's configured endpoint is
        ours to send to before it is confirmed."""
        path = peer.path(endpoint, now)
        if peer.is_root and self._root_at(endpoint) == peer.address:
            path.configured = True
        return path

    def _confirm(self, peer: Peer, path: Path, now: float) -> None:
        """The peer answered a challenge sent to `path`: it may carry traffic now."""
        if path.confirmed:
            return
        path.confirm()
        peer.forget_best_path()
        peer.punch.pending.pop(path.endpoint, None)
        if peer.is_root and path.is_direct:
            self._last_udp_from_root = now

    def _static_key(self, peer: Peer) -> bytes:
        key = self._static.get(peer.address)
        if key is None:
            key = self._static[peer.address] = static_key(self.identity, peer.identity)
        return key

    def _root_at(self, endpoint: Endpoint) -> int | None:
        return self._root_by_hostport.get((endpoint.host, endpoint.port))

    def _root_link(self, now: float) -> str:
        links = {link_of(self.peers[a], "NONE", now) for a in self.roots}
        if "DIRECT" in links:
            return "RELAY"
        return "TCP" if "TCP" in links else "NONE"

    def _root_endpoints(self, peer: Peer) -> list[Endpoint]:
        entry = self.roots[peer.address]
        out = [] if self.config.force_tcp else list(entry.endpoints)
        out += [tcp(e.host, e.port) for e in entry.endpoints if tcp(e.host, e.port) in self._tcp_up]
        return out

    def _observe(self, peer: Peer, endpoint: Endpoint | None) -> None:
        if endpoint is not None:
            self.observed[peer.address] = endpoint

    # ------------------------------------------------------------------ sealing

    def _emit(
        self,
        peer: Peer,
        cipher: Cipher,
        session: Session | None,
        verb: Verb,
        payload: bytes,
        endpoint: Endpoint,
        now: float,
        packet_id: int | None = None,
        whole: bool = False,
        cookie: bytes | None = None,
        ttl: int | None = None,
    ) -> list[Effect]:
        if session is not None:
            packet_id, key_id = session.next_packet_id(), session.key_id
        else:
            packet_id = packet_id if packet_id is not None else _u(self._random(8))
            key_id = 0
        header = wire.Header(
            packet_id, peer.address, self.address, 0, False, cipher, key_id, cookie is not None
        )
        head = header.pack()
        ad = wire.associated_data(head)
        clear = self.identity.public_key + (cookie or b"") if cipher is Cipher.HELLO else b""
        plain = bytes([verb]) + payload
        if session is not None:  # the negotiated suite
            packet = head + session.seal(head, ad, plain)
        else:  # static-key packets: XChaCha20 always
            packet = head + clear + seal(self._static_key(peer), head, ad + clear, plain)
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
        self._count_sent(peer, endpoint, path, 1, len(pieces), len(packet), now)
        return [Send(endpoint, piece, ttl) for piece in pieces]

    def _count_sent(
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
        if path is None and (root := self._root_at(endpoint)) is not None:
            path = self.peers[root].paths.get(endpoint)
        if path is not None:
            path.sent(size, now, packets)

    def _route(self, peer: Peer, now: float) -> Endpoint | None:
        best = peer.best_path(now)
        if best is not None:
            return best.endpoint
        if peer.is_root:
            endpoints = self._root_endpoints(peer)
            return endpoints[-1] if endpoints else None  # TCP (appended last) when it's up
        if self.config.is_root:
            return None
        relays = [p for a in self.roots if (p := self.peers[a].best_path(now)) is not None]
        return min(relays, key=lambda p: p.sort_key()).endpoint if relays else None

    def _send(
        self,
        peer: Peer,
        verb: Verb,
        payload: bytes,
        now: float,
        endpoint: Endpoint | None = None,
        whole: bool = False,
        ttl: int | None = None,
    ) -> list[Effect]:
        session = peer.tx_session
        if session is None or session.expired(now):
            peer.queue.append((verb, payload))
            return self._ensure_handshake(peer, now)
        target = endpoint or self._route(peer, now)
        if target is None:
            self.drops["no_route"] += 1
            return []
        out = self._emit(
            peer, Cipher.SESSION, session, verb, payload, target, now, whole=whole, ttl=ttl
        )
        if peer.handshake is None and session.wants_rekey(now, self.config.rekey_after_packets):
            out += self._hello(peer, now)
        return out

    def _flush(self, peer: Peer, now: float) -> list[Effect]:
        if peer.tx_session is None:
            return []
        queued = list(peer.queue)
        peer.queue.clear()
        out: list[Effect] = []
        for verb, payload in queued:
            out += self._send(peer, verb, payload, now)
        return out

    def _send_to_address(self, dest: int, verb: Verb, payload: bytes, now: float) -> list[Effect]:
        if dest == self.address:
            self.drops["to_self"] += 1
            return []
        peer = self.peers.get(dest)
        if peer is not None:
            return self._send(peer, verb, payload, now)
        out = self._whois_for(dest, now)
        if dest in self._whois:  # queued only while a lookup is pending, which tick expires
            queue = self._whois_queue.setdefault(dest, [])
            if len(queue) < MAX_WHOIS_QUEUE:
                queue.append((verb, payload))
        return out

    # ------------------------------------------------------------------ handshakes

    def _ensure_handshake(self, peer: Peer, now: float) -> list[Effect]:
        return [] if peer.handshake is not None else self._hello(peer, now)

    def _hello(
        self, peer: Peer, now: float, endpoints: list[Endpoint] | None = None
    ) -> list[Effect]:
        handshake = peer.handshake
        if handshake is None:
            ephemeral = EphemeralKey.from_secret(self._random(32))
            offered = suite_bits(self.config.suites)
            handshake = peer.handshake = Handshake(ephemeral, {}, now, now, 0, offered)
        handshake.attempts += 1
        handshake.last_sent = now
        if endpoints is None:
            route = self._route(peer, now)
            endpoints = [route] if route is not None else []
            if peer.is_root and peer.best_path(now) is None:
                endpoints = self._root_endpoints(peer)
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
            packet_id = _u(self._random(8))
            handshake.sent_to[packet_id] = endpoint
            while len(handshake.sent_to) > 16:
                del handshake.sent_to[next(iter(handshake.sent_to))]
            cookie = None
            if peer.cookie is not None and peer.cookie[1] == endpoint:
                if now - peer.cookie[2] < COOKIE_ROTATE_S:
                    cookie = peer.cookie[0]
            payload = hello.pack() + bytes(wire.HELLO_PADDING_BYTES)
            out += self._emit(
                peer,
                Cipher.HELLO,
                None,
                Verb.HELLO,
                payload,
                endpoint,
                now,
                packet_id=packet_id,
                cookie=cookie,
            )
        return out

    def _rehandshake(self, peer: Peer, now: float) -> list[Effect]:
        """A handshake the other side asked for, or implied (a key id we don't have): at
        most one per REHANDSHAKE_MIN_S per peer, whoever sends such packets."""
        if peer.handshake is not None:
            return []
        if not self._rehandshakes.allow(peer.address, now):
            self.drops["rehandshake_limited"] += 1
            return []
        return self._hello(peer, now)

    def _whois_for(self, address: int, now: float, unsolicited: bool = False) -> list[Effect]:
        """Ask the roots who `address` is. `unsolicited`: because a stranger sent us a
        packet, not because we want to talk to it, so under a global budget."""
        if address == self.address:
            self.drops["whois_self"] += 1
            return []
        last = self._whois.get(address)
        if last is not None and now - last < WHOIS_RETRY_S:
            return []
        if last is None and len(self._whois) >= MAX_WHOIS_PENDING:
            self.drops["whois_limited"] += 1
            return []
        if unsolicited and not self._unsolicited_whois.take(now):
            self.drops["whois_limited"] += 1
            return []
        self._whois[address] = now
        out: list[Effect] = []
        for root in self.roots:
            peer = self.peers[root]
            if peer.tx_session is not None:
                out += self._send(peer, Verb.WHOIS, wire.addr_bytes(address), now)
        return out

    # ------------------------------------------------------------------ paths

    def _probe(self, peer: Peer, endpoint: Endpoint | None, now: float) -> list[Effect]:
        if peer.tx_session is None:
            return self._ensure_handshake(peer, now)
        echo_id = self._expect_echo(EchoWait(peer.address, now, False, endpoint))
        payload = wire.echo_request(echo_id, int(now * 1e6))
        out = self._send(peer, Verb.ECHO, payload, now, endpoint)
        if endpoint is not None:
            path = self._path(peer, endpoint, now)
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

    def _probe_mtu(self, peer: Peer, path: Path, size: int, now: float) -> list[Effect]:
        """An ECHO padded so the whole datagram is `size` bytes, sent unfragmented."""
        echo_id = self._expect_echo(EchoWait(peer.address, now, False, path.endpoint, size))
        echo = wire.Echo(echo_id, int(now * 1e6)).pack()
        padding = size - (wire.HEADER_BYTES + 1 + len(echo) + wire.TAG_BYTES)
        if padding < 0:
            path.mtu_fits(size)
            return []
        payload = echo + bytes(padding)
        return self._send(peer, Verb.ECHO, payload, now, path.endpoint, whole=True)

    def _expect_echo(self, wait: EchoWait) -> int:
        """Register a probe we are about to send; its random id."""
        echo_id = _u(self._random(4))
        while len(self._echoes) >= MAX_ECHOES_PENDING:
            del self._echoes[next(iter(self._echoes))]
        self._echoes[echo_id] = wait
        return echo_id

    def _reprobe(self, peer: Peer, path: Path, now: float) -> list[Effect]:
        """A path's regular probe (path.needs_probe). punch.py sends a dead direct path
        of a leaf a whole punch round instead."""
        return self._probe(peer, path.endpoint, now)

    def _push_paths(self, peer: Peer, now: float) -> list[Effect]:
        if self.config.is_root or peer.is_root or not self.config.local_endpoints:
            return []
        if peer.pushed_paths_at is not None and now - peer.pushed_paths_at < PUSH_PATHS_EVERY_S:
            return []
        if peer.tx_session is None:
            return []
        peer.pushed_paths_at = now
        payload = wire.pack_endpoints(self.config.local_endpoints)
        return self._send(peer, Verb.PUSH_DIRECT_PATHS, payload, now)

    # ------------------------------------------------------------------ relaying (roots)

    def _forward(self, data: bytes, source: Endpoint, now: float) -> list[Effect]:
        hops = wire.hops_of(data)
        if hops >= wire.MAX_HOPS:
            self.drops["hop_limit"] += 1
            return []
        sender = self.peers.get(wire.source_of(data))
        path = sender.paths.get(source) if sender is not None else None
        if sender is None or path is None or not path.confirmed:
            if path is not None:  # a known sender whose NAT moved: challenge it soon
                path.add_credit(len(data))
            self.drops["relay_unknown_source"] += 1
            return []
        if not self._relay.allow(sender.address, now):
            self.drops["rate_limited"] += 1
            return []
        receiver = self.peers.get(wire.dest_of(data))
        target = receiver.best_path(now) if receiver is not None else None
        if receiver is None or target is None:
            self.drops["relay_no_route"] += 1
            return []
        self.counters["relayed_packets"] += 1
        self.counters["relayed_bytes"] += len(data)
        out: list[Effect] = [Send(target.endpoint, wire.with_hops(data, hops + 1))]
        if (
            punchable(source)
            and punchable(target.endpoint)
            and self._relay.should_introduce(sender.address, receiver.address, now)
        ):
            out += self._introduce(sender, receiver, now)
            out += self._introduce(receiver, sender, now)
        return out

    def _introduce(self, to: Peer, about: Peer, now: float) -> list[Effect]:
        out: list[Effect] = []
        for path in about.paths.values():
            if path.alive(now) and punchable(path.endpoint):
                payload = wire.addr_bytes(about.address) + wire.pack_endpoint(path.endpoint)
                out += self._send(to, Verb.RENDEZVOUS, payload, now)
        return out

    # ------------------------------------------------------------------ timers

    def _contact_roots(self, now: float, force: bool = False) -> list[Effect]:
        out: list[Effect] = []
        for address in self.roots:
            peer = self.peers[address]
            if peer.best_path(now) is not None and peer.tx_session is not None:
                continue
            handshake = peer.handshake
            if handshake is not None and not force:
                backoff = min(ROOT_RETRY_MAX_S, HANDSHAKE_RETRY_S * 2 ** (handshake.attempts - 1))
                if now - handshake.last_sent < backoff:
                    continue
            out += self._hello(peer, now, self._root_endpoints(peer))
        return out

    def _want_tcp(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        for entry in self.roots.values():
            v4 = [e for e in entry.endpoints if not e.is_ipv6] or list(entry.endpoints)
            endpoint = tcp(v4[0].host, v4[0].port)
            if endpoint not in self._tcp_wanted:
                self._tcp_wanted.add(endpoint)
                out.append(OpenTcp(endpoint))
        return out

    def _tcp_fallback(self, now: float) -> list[Effect]:
        if self.config.is_root or not self.roots or self.config.force_tcp:
            return []
        if not self.config.tcp_fallback:
            return []
        last_udp = self._last_udp_from_root
        if not self._tcp_wanted:
            if now - (last_udp if last_udp is not None else self._started) > TCP_FALLBACK_AFTER_S:
                event = Event("tcp", "no UDP answer from any root: opening the TCP fallback")
                return [event, *self._want_tcp(now)]
            return []
        if last_udp is not None and now - last_udp < PATH_ALIVE_S:
            out: list[Effect] = [Event("tcp", "UDP to the roots works again: closing TCP")]
            for endpoint in self._tcp_wanted:
                out.append(CloseTcp(endpoint))
                out += self.tcp_down_paths(endpoint)
            self._tcp_wanted.clear()
            return out
        return []

    def tcp_down_paths(self, endpoint: Endpoint) -> list[Effect]:
        self._tcp_up.discard(endpoint)
        for peer in self.peers.values():
            if peer.paths.pop(endpoint, None) is not None:
                peer.forget_best_path()
        return []

    def _tick_peer(self, peer: Peer, now: float) -> list[Effect]:
        out: list[Effect] = []
        peer.drop_expired_sessions(now)
        for endpoint, path in list(peer.paths.items()):
            if path.forgettable(now) and endpoint.transport is Transport.UDP:
                del peer.paths[endpoint]
                peer.punch.pending.pop(endpoint, None)
                peer.forget_best_path()
        if self.config.is_root and not peer.is_root:
            # Leaves keep their own NAT mappings open; a root only challenges paths it has
            # not confirmed yet (a leaf behind a NAT that changed its mapping) and forgets
            # the silent peers.
            for endpoint, path in list(peer.paths.items()):
                if not path.confirmed and path.needs_probe(now) and peer.tx_session is not None:
                    out += self._probe(peer, endpoint, now)
            if not peer.paths and now - (peer.last_receive or peer.created) > PEER_FORGET_S:
                self._forget_peer(peer.address)
            return out
        handshake = peer.handshake
        if handshake is not None and not peer.is_root:
            if now - handshake.last_sent >= HANDSHAKE_RETRY_S:
                if handshake.attempts >= HANDSHAKE_MAX_ATTEMPTS:
                    peer.handshake = None
                    peer.queue.clear()
                    out.append(
                        Event(
                            "handshake",
                            f"{format_address(peer.address)} did not answer "
                            f"{handshake.attempts} HELLOs; giving up until next use",
                            peer.address,
                        )
                    )
                else:
                    out += self._hello(peer, now)
        if peer.tx_session is None:
            return out
        for endpoint, path in list(peer.paths.items()):
            if endpoint in peer.punch.pending:
                if now - (path.last_probe or 0.0) >= PUNCH_INTERVAL_S:
                    out += self._probe(peer, endpoint, now)
            elif path.needs_probe(now):
                out += self._reprobe(peer, path, now)
            if path.is_direct and path.alive(now):
                size = path.next_mtu_probe(now)
                if size is not None:
                    out += self._probe_mtu(peer, path, size, now)
        if (
            not peer.is_root
            and peer.best_path(now) is None
            and now - (peer.last_relay_probe or 0.0) >= LATENCY_PROBE_S
        ):
            # A relayed peer: measure the round trip through the root, and keep the root
            # relaying now and then, which makes it introduce us again.
            peer.last_relay_probe = now
            out += self._probe(peer, None, now)
        if peer.is_root and self._tcp_wanted and not self.config.force_tcp:
            out += self._retry_root_udp(peer, now)
        if not peer.is_root and now - (peer.last_receive or peer.created) > PEER_FORGET_S:
            self._forget_peer(peer.address)
        return out

    def _forget_peer(self, address: int) -> None:
        """Drop a peer and everything kept per peer beside it."""
        self.peers.pop(address, None)
        self._static.pop(address, None)
        self._links.pop(address, None)
        self._rehandshakes.forget(address)
        self._pushes.forget(address)

    def _retry_root_udp(self, peer: Peer, now: float) -> list[Effect]:
        out: list[Effect] = []
        for endpoint in self.roots[peer.address].endpoints:
            path = self._path(peer, endpoint, now)
            if now - (path.last_probe or 0.0) >= TCP_UDP_RETRY_S:
                out += self._probe(peer, endpoint, now)
        return out

    def _link_events(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        root_link = self._root_link(now)
        for address, peer in self.peers.items():
            best = peer.best_path(now)
            link = link_of(peer, root_link, now)
            old = self._links.get(address)
            self._links[address] = (link, best.endpoint if best is not None else None)
            if old is None:
                if link != "NONE":
                    out.append(Event("peer", f"{format_address(address)}: new, {link}", address))
                continue
            if old[0] == link:
                continue
            if old[0] == "DIRECT":
                peer.punch.last_direct_lost = now
                peer.punch.last_direct_endpoint = old[1]
            elif link == "DIRECT":
                peer.punch.last_direct_lost = None
            out.append(Event("link", f"{format_address(address)}: {old[0]} -> {link}", address))
        return out
