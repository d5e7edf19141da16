"""Hole punching in an order every common NAT lets through; and learning why it failed.

The trap (issue 10, confirmed on the netns rig with conntrack -L): a home router doing
plain MASQUERADE with no input firewall (a Linux box, a VPS, many ISP boxes) takes a
peer's punch that arrives *before* its own host has sent anything to that peer as traffic
for itself, and conntrack keeps an UNREPLIED entry for that 5-tuple (30 s, refreshed by
every later probe). When the inside host then sends to the peer, MASQUERADE cannot reuse
its port for the clashing tuple and picks another, which the peer's NAT drops: the pair
never goes DIRECT. With an input firewall the early punch is dropped before conntrack
confirms it, which is why consumer routers never showed the problem.

So no full-TTL packet may reach the peer's router before the peer has opened its own
mapping towards us. A punch round for one of the peer's endpoints goes:

1. The *opener*: an ECHO with a TTL that passes our own NATs and expires at the first
   router beyond them (hops.py learns that TTL with a traceroute to a root; ZeroTier One
   sends its first packet with TTL 2 for the same reason). It creates our NAT mapping
   towards the peer and dies before the peer's router can keep anything.
2. PUNCH, through the root (the only path there is yet): "I have opened towards you".
3. Probes at full TTL only once the peer's PUNCH has arrived: the peer's opener left
   before its PUNCH did, so our probes find its mapping in place, and ours were in place
   before our PUNCH left. A peer whose PUNCH arrives first gets our probes right after
   our opener. Peers without FEATURE_PUNCH (older versions) are probed at once, as
   before; a PUNCH that never comes (lost) stops the wait after PUNCH_WAIT_S.

The peer's endpoints come from the root (RENDEZVOUS, sent now as soon as someone asks
the root WHOIS, not only once traffic is relayed), from the peer's own list
(PUSH_DIRECT_PATHS) and from its PUNCH, which carries its endpoints as the roots see it.

When a round fails anyway (a stale entry already there), the next one waits DEAD_PROBE_S
(35 s), longer than the 30 s conntrack keeps an unanswered entry, and every later probe
of a dead path is a whole round again: the stale entry expires instead of being kept
alive by our own probes. (Measured alternative, a second local port, needs a second
socket per peer and the peer to learn it; the wait costs nothing in the common case.)

ICMP errors our attempts draw (port unreachable from the peer's router: it took our
probe as its own traffic; host/network unreachable) are kept per endpoint for the relay
reason (diagnose.py). They are not authenticated, so they never change a path.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from . import wire
from .admission import Throttle
from .effects import Effect, Endpoint, Transport
from .identity import Identity
from .outbound import EchoWait, NodeConfig, NodeState
from .path import DEAD_AFTER_S, DEAD_PROBE_S, Path
from .peer import Peer
from .relay import punchable
from .wire import FEATURE_PUNCH, Reader, Verb, pack_endpoints, parse_endpoints

PUNCH_PROBES = 6  # full-TTL probes per round, PUNCH_INTERVAL_S apart (outbound.py)
PUNCH_WAIT_S = 2.0  # probe anyway when the peer's PUNCH has not come by then
OPENED_VALID_S = 5.0  # a PUNCH this soon after our opener finds our mapping still there
PUNCH_SEND_MIN_S = 1.0  # at most one PUNCH per peer this often
PUNCH_ACCEPT_MIN_S = 1.0  # a peer's PUNCHes we act on (each makes us probe its list)
MAX_PUNCH_ENDPOINTS = 4  # v4 and v6 as two roots see them
MAX_LEARNED_ENDPOINTS = 64  # per peer, for the relay reason; paths themselves are capped
MAX_RENDEZVOUS_PENDING = 1024  # introductions to peers whose identity is still unknown
RENDEZVOUS_PENDING_S = 30.0


class Punching(NodeState):
    """The punch rounds, the hop trace and the ICMP they draw; Node (node.py) adds the
    receive side and the public API on top."""

    def __init__(
        self,
        identity: Identity,
        config: NodeConfig,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        super().__init__(identity, config, random_bytes)
        # address -> (its endpoint, how we learned it, when): RENDEZVOUS about a peer
        # whose identity we are still looking up; used when its session comes up.
        self._rendezvous_pending: dict[int, tuple[Endpoint, str, float]] = {}
        self._punch_sent: dict[int, float] = {}  # peer -> our last PUNCH to it
        self._punches = Throttle(PUNCH_ACCEPT_MIN_S)  # its PUNCHes we act on
        self._trace_to: tuple[int, Endpoint] | None = None  # the root being traced

    # ---------------------------------------------------------------- entry points

    def _punch(self, peer: Peer, endpoint: Endpoint, how: str, now: float) -> list[Effect]:
        """`endpoint` may reach `peer` (learned `how`): start a punch round there."""
        if endpoint in self.config.local_endpoints or not punchable(endpoint):
            return []
        path = peer.paths.get(endpoint)
        if path is not None and path.alive(now):
            return []
        self._learn(peer, endpoint, how)
        if peer.tx_session is None:
            # PUNCH and the probes need a session: the round starts when it is up.
            peer.punch.want_session = True
            return self._ensure_handshake(peer, now)
        return self._round(peer, self._path(peer, endpoint, now), now)

    def _learn(self, peer: Peer, endpoint: Endpoint, how: str) -> None:
        learned = peer.punch.learned
        learned[endpoint] = how
        if len(learned) > MAX_LEARNED_ENDPOINTS:  # keep what still has a path, newest first
            for stale in [e for e in learned if e not in peer.paths][: len(learned) // 2]:
                del learned[stale]

    def _reprobe(self, peer: Peer, path: Path, now: float) -> list[Effect]:
        """A learned direct endpoint that has not answered for DEAD_AFTER_S (or never)
        gets a whole round: its NAT state may be gone, so the order matters again. One
        that answered lately has mappings on both sides, and a path we did not learn
        (someone with the key sends from there) is only challenged: plain probes."""
        how = peer.punch.learned.get(path.endpoint)
        quiet = path.last_receive is None or now - path.last_receive >= DEAD_AFTER_S
        if how is not None and path.is_direct and quiet and not peer.is_root:
            return self._punch(peer, path.endpoint, how, now)
        return super()._reprobe(peer, path, now)

    def _session_up(self, peer: Peer, now: float) -> list[Effect]:
        """A session with `peer` is (newly) up: the rounds that waited for it start."""
        if self.config.is_root or peer.is_root:
            return []
        out: list[Effect] = []
        pending = self._rendezvous_pending.pop(peer.address, None)
        if pending is not None:
            endpoint, how, _ = pending
            peer.punch.learned.setdefault(endpoint, how)
            peer.punch.want_session = True
        if peer.punch.want_session:
            peer.punch.want_session = False
            for endpoint, how in list(peer.punch.learned.items()):
                out += self._punch(peer, endpoint, how, now)
        return out

    def _remember_rendezvous(self, address: int, endpoint: Endpoint, how: str, now: float) -> None:
        """An introduction to a peer we can't name yet (its HELLO is on the way)."""
        pending = self._rendezvous_pending
        if address not in pending and len(pending) >= MAX_RENDEZVOUS_PENDING:
            del pending[next(iter(pending))]
        pending[address] = (endpoint, how, now)

    # ---------------------------------------------------------------- one round

    def _round(self, peer: Peer, path: Path, now: float, peer_opened: bool = False) -> list[Effect]:
        endpoint = path.endpoint
        if path.last_burst is not None and now - path.last_burst < DEAD_PROBE_S:
            return []  # a root re-introduces us every few seconds; let NAT state expire
        path.last_burst = now
        punch = peer.punch
        if not path.confirmed:  # an authenticated introducer vouches for a few probes
            path.punch_allowance = PUNCH_PROBES + 1
        out = self._open(peer, path, now)
        waits = (
            peer.features & FEATURE_PUNCH
            and not peer_opened
            and not self._peer_just_opened(peer, now)
        )
        if waits:
            punch.awaiting[endpoint] = now
        else:
            out += self._start_probes(peer, endpoint, now)
        if peer.features & FEATURE_PUNCH:
            out += self._send_punch(peer, now)
        return out

    def _open(self, peer: Peer, path: Path, now: float) -> list[Effect]:
        """The opener: an ECHO whose TTL runs out just past our own NATs."""
        assert peer.tx_session is not None
        peer.punch.opened[path.endpoint] = now
        echo_id = self._expect_echo(EchoWait(peer.address, now, False, path.endpoint))
        payload = wire.echo_request(echo_id, int(now * 1e6))
        # IPv6 homes are routed rather than NATed, but their firewalls keep state the
        # same way, so the opener (with the TTL the IPv4 trace found) serves them too.
        ttl = self.hops.opener_ttl
        path.last_probe = now  # the round's timers count from here (path.needs_probe)
        self.counters["punch_openers"] += 1
        return self._send(peer, Verb.ECHO, payload, now, path.endpoint, ttl=ttl)

    def _start_probes(self, peer: Peer, endpoint: Endpoint, now: float) -> list[Effect]:
        peer.punch.awaiting.pop(endpoint, None)
        peer.punch.pending[endpoint] = PUNCH_PROBES
        return self._probe(peer, endpoint, now)

    def _peer_just_opened(self, peer: Peer, now: float) -> bool:
        opened = peer.punch.peer_opened
        return opened is not None and now - opened < OPENED_VALID_S

    def _send_punch(self, peer: Peer, now: float) -> list[Effect]:
        last = self._punch_sent.get(peer.address)
        if last is not None and now - last < PUNCH_SEND_MIN_S:
            return []
        self._punch_sent[peer.address] = now
        mine = [e for e in dict.fromkeys(self.observed.values()) if e.transport is Transport.UDP][
            :MAX_PUNCH_ENDPOINTS
        ]
        self.counters["punch_sent"] += 1
        return self._send(peer, Verb.PUNCH, pack_endpoints(mine), now)

    # ---------------------------------------------------------------- receiving PUNCH

    def _on_punch(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        """The peer opened its NAT towards every endpoint of ours it knows."""
        if self.config.is_root or peer.is_root:
            return []
        if not self._punches.allow(peer.address, now):
            self.drops["punch_rate_limited"] += 1
            return []
        peer.punch.peer_opened = now
        learned = peer.punch.learned
        for endpoint in parse_endpoints(reader)[:MAX_PUNCH_ENDPOINTS]:
            if punchable(endpoint) and endpoint not in learned:
                self._learn(peer, endpoint, "the peer's punch")
        out: list[Effect] = []
        for endpoint in list(learned):
            path = peer.paths.get(endpoint)
            if path is not None and path.alive(now):
                continue
            opened = peer.punch.opened.get(endpoint)
            if path is not None and opened is not None and now - opened < OPENED_VALID_S:
                if endpoint in peer.punch.awaiting:  # our opener went; now theirs has too
                    out += self._start_probes(peer, endpoint, now)
            elif peer.tx_session is not None and endpoint not in self.config.local_endpoints:
                path = path or self._path(peer, endpoint, now)
                out += self._round(peer, path, now, peer_opened=True)
        return out

    # ---------------------------------------------------------------- timers

    def _tick_peer(self, peer: Peer, now: float) -> list[Effect]:
        out = super()._tick_peer(peer, now)
        if peer.address in self.peers and peer.tx_session is not None:
            out += self._tick_punch(peer, now)
        return out

    def _tick_punch(self, peer: Peer, now: float) -> list[Effect]:
        out: list[Effect] = []
        for endpoint, since in list(peer.punch.awaiting.items()):
            if now - since >= PUNCH_WAIT_S:
                self.counters["punch_wait_expired"] += 1
                out += self._start_probes(peer, endpoint, now)
        for endpoint in [e for e, t in peer.punch.opened.items() if now - t > DEAD_PROBE_S]:
            del peer.punch.opened[endpoint]
        return out

    def _tick_punching(self, now: float) -> list[Effect]:
        """Expire the node-wide punch tables and drive the hop trace."""
        if self.config.is_root:
            return []
        pending = self._rendezvous_pending
        for stale in [a for a, (_, _, t) in pending.items() if now - t > RENDEZVOUS_PENDING_S]:
            del pending[stale]
        for quiet in [a for a, t in self._punch_sent.items() if now - t > PUNCH_SEND_MIN_S]:
            del self._punch_sent[quiet]
        self._punches.expire(now)
        return self._tick_hops(now)

    def _tick_hops(self, now: float) -> list[Effect]:
        """Drive the hop trace (hops.py) towards the first root with a live UDP path."""
        trace = self.hops
        if trace.due(now):
            target = self._trace_target(now)
            if target is None:
                return []
            self._trace_to = target
            trace.start(now)
        if self._trace_to is None:
            return []
        ttl = trace.next_ttl(now)
        if ttl is None:
            return []
        address, endpoint = self._trace_to
        peer = self.peers.get(address)
        if peer is None or peer.tx_session is None:
            trace.finished = now  # the root went away; trace again later
            return []
        echo_id = self._expect_echo(EchoWait(address, now, False, endpoint, trace_ttl=ttl))
        payload = wire.echo_request(echo_id, int(now * 1e6))
        return self._send(peer, Verb.ECHO, payload, now, endpoint, ttl=ttl)

    def _trace_target(self, now: float) -> tuple[int, Endpoint] | None:
        for address in self.roots:
            peer = self.peers[address]
            best = peer.best_path(now)
            if best is not None and best.is_direct and peer.tx_session is not None:
                return address, best.endpoint
        return None

    # ---------------------------------------------------------------- ICMP

    def icmp_error(
        self, kind: str, endpoint: Endpoint, offender: str | None, now: float
    ) -> list[Effect]:
        """An ICMP error for a datagram we sent to `endpoint` (read by the I/O layer):
        "ttl_exceeded" (from `offender`, a router on the way), "port_unreachable" or
        "unreachable". Unauthenticated: it feeds the hop trace and the relay reason only."""
        if endpoint.transport is not Transport.UDP:
            return []
        if kind == "ttl_exceeded":
            target = self._trace_to
            if target is not None and target[1] == endpoint and not self.hops.done:
                self.hops.time_exceeded(offender, now)
            else:
                self.counters["punch_openers_expired"] += 1  # where they should: past our NATs
            return []
        if kind not in ("port_unreachable", "unreachable"):
            return []
        for peer in self.peers.values():
            path = peer.paths.get(endpoint)
            if peer.is_root or path is None or path.alive(now):
                continue
            _, _, count = peer.punch.icmp.get(endpoint, ("", None, 0))
            peer.punch.icmp[endpoint] = (kind, offender, count + 1)
            self.counters[f"punch_icmp_{kind}"] += 1
        return []

    # ---------------------------------------------------------------- roots

    def _introduce_on_whois(self, asker: Peer, found: Peer, now: float) -> list[Effect]:
        """A root asked for `found` by `asker` introduces the two at once: they will
        want a direct path, and waiting for relayed traffic costs a round trip or more."""
        if not self.config.is_root or found.is_root or asker.is_root:
            return []
        if not any(p.alive(now) and punchable(p.endpoint) for p in asker.paths.values()):
            return []
        if not self._relay.should_introduce(asker.address, found.address, now):
            return []
        self.counters["rendezvous_on_whois"] += 1
        return self._introduce(asker, found, now) + self._introduce(found, asker, now)
