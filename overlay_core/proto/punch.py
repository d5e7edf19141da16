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

`Punching` is one part of the node (node.py wires it): it sends through the node's core
(outbound.Outbound), handles the verbs that carry endpoints (RENDEZVOUS, PUSH_DIRECT_PATHS,
PUNCH) and is ticked by the node's timers (timers.py).
"""

from __future__ import annotations

from . import wire
from .admission import Throttle
from .effects import Effect, Endpoint, Transport
from .outbound import EchoWait, Outbound
from .path import DEAD_AFTER_S, DEAD_PROBE_S, Path
from .peer import Learned, LearnedFrom, Peer
from .relay import punchable
from .wire import FEATURE_PUNCH, Reader, Verb, pack_endpoints, parse_endpoints

PUNCH_PROBES = 6  # full-TTL probes per round, timers.PUNCH_INTERVAL_S apart
PUNCH_WAIT_S = 2.0  # probe anyway when the peer's PUNCH has not come by then
OPENED_VALID_S = 5.0  # a PUNCH this soon after our opener finds our mapping still there
PUNCH_SEND_MIN_S = 1.0  # at most one PUNCH per peer this often
PUNCH_ACCEPT_MIN_S = 1.0  # a peer's PUNCHes we act on (each makes us probe its list)
PUSH_ACCEPT_MIN_S = 5.0  # a peer's pushes we act on; both sides push at each handshake
MAX_PUNCH_ENDPOINTS = 4  # v4 and v6 as two roots see them
MAX_LEARNED_ENDPOINTS = 64  # per peer, for the relay reason; paths themselves are capped
MAX_RENDEZVOUS_PENDING = 1024  # introductions to peers whose identity is still unknown
RENDEZVOUS_PENDING_S = 30.0


class Punching:
    """The punch rounds, the hop trace and the ICMP they draw (see the module docstring)."""

    def __init__(self, out: Outbound) -> None:
        self._out = out
        # address -> (its endpoint, how we learned it, when): RENDEZVOUS about a peer
        # whose identity we are still looking up; used when its session comes up.
        self._rendezvous_pending: dict[int, tuple[Endpoint, Learned, float]] = {}
        self._punch_sent: dict[int, float] = {}  # peer -> our last PUNCH to it
        self._punches = Throttle(PUNCH_ACCEPT_MIN_S)  # its PUNCHes we act on
        self._pushes = Throttle(PUSH_ACCEPT_MIN_S)  # its PUSH_DIRECT_PATHS we act on
        self._trace_to: tuple[int, Endpoint] | None = None  # the root being traced

    # ---------------------------------------------------------------- entry points

    def punch(self, peer: Peer, endpoint: Endpoint, how: Learned, now: float) -> list[Effect]:
        """`endpoint` may reach `peer` (learned `how`): start a punch round there."""
        if endpoint in self._out.config.local_endpoints or not punchable(endpoint):
            return []
        path = peer.paths.get(endpoint)
        if path is not None and path.alive(now):
            return []
        self._learn(peer, endpoint, how)
        if peer.tx_session is None:
            # PUNCH and the probes need a session: the round starts when it is up.
            peer.punch.want_session = True
            return self._out.ensure_handshake(peer, now)
        return self._round(peer, self._out.path(peer, endpoint, now), now)

    def _learn(self, peer: Peer, endpoint: Endpoint, how: Learned) -> None:
        learned = peer.punch.learned
        learned[endpoint] = how
        if len(learned) > MAX_LEARNED_ENDPOINTS:  # keep what still has a path, newest first
            for stale in [e for e in learned if e not in peer.paths][: len(learned) // 2]:
                del learned[stale]

    def reprobe(self, peer: Peer, path: Path, now: float) -> list[Effect]:
        """A path's regular probe (path.needs_probe). A learned direct endpoint that has
        not answered for DEAD_AFTER_S (or never) gets a whole round: its NAT state may be
        gone, so the order matters again. One that answered lately has mappings on both
        sides, and a path we did not learn (someone with the key sends from there) is
        only challenged: plain probes."""
        how = peer.punch.learned.get(path.endpoint)
        quiet = path.last_receive is None or now - path.last_receive >= DEAD_AFTER_S
        if how is not None and path.is_direct and quiet and not peer.is_root:
            return self.punch(peer, path.endpoint, how, now)
        return self._out.probe(peer, path.endpoint, now)

    def session_up(self, peer: Peer, now: float) -> list[Effect]:
        """A session with `peer` is (newly) up: the rounds that waited for it start."""
        if self._out.config.is_root or peer.is_root:
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
                out += self.punch(peer, endpoint, how, now)
        return out

    def forget(self, address: int) -> None:
        """The node forgets a peer: so do its limits here."""
        self._pushes.forget(address)

    # ---------------------------------------------------------------- verbs with endpoints

    def on_rendezvous(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        """A root tells us where another node is."""
        if not peer.is_root:
            self._out.drops["rendezvous_not_from_root"] += 1
            return []
        address = reader.address()
        endpoint = reader.endpoint()
        other = self._out.peers.get(address)
        if endpoint is None or address == self._out.address:
            return []
        how = Learned.from_root(peer.address)
        if other is None:
            # A root introduces us when the other side asks for us (WHOIS): its HELLO is on
            # the way, and we punch once that session is up. Looking it up and greeting it
            # too would only cross two handshakes.
            self._remember_rendezvous(address, endpoint, how, now)
            return []
        return self.punch(other, endpoint, how, now)

    def _remember_rendezvous(
        self, address: int, endpoint: Endpoint, how: Learned, now: float
    ) -> None:
        """An introduction to a peer we can't name yet (its HELLO is on the way)."""
        pending = self._rendezvous_pending
        if address not in pending and len(pending) >= MAX_RENDEZVOUS_PENDING:
            del pending[next(iter(pending))]
        pending[address] = (endpoint, how, now)

    def on_push_direct_paths(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        """The peer's own list of its endpoints: a round towards each new one."""
        out: list[Effect] = []
        if self._out.config.is_root:
            return out
        if not self._pushes.allow(peer.address, now):
            # Each push makes us probe up to 16 addresses the peer chose: a peer may not
            # aim that at a third party faster than this (it pushes every 60 s itself).
            self._out.drops["push_rate_limited"] += 1
            return out
        how = Learned(LearnedFrom.PEER_LIST)
        for endpoint in parse_endpoints(reader)[: wire.MAX_PUSHED_ENDPOINTS]:
            if endpoint not in peer.paths:
                out += self.punch(peer, endpoint, how, now)
        return out

    def on_punch(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        """PUNCH: the peer opened its NAT towards every endpoint of ours it knows."""
        if self._out.config.is_root or peer.is_root:
            return []
        if not self._punches.allow(peer.address, now):
            self._out.drops["punch_rate_limited"] += 1
            return []
        peer.punch.peer_opened = now
        learned = peer.punch.learned
        for endpoint in parse_endpoints(reader)[:MAX_PUNCH_ENDPOINTS]:
            if punchable(endpoint) and endpoint not in learned:
                self._learn(peer, endpoint, Learned(LearnedFrom.PEER_PUNCH))
        out: list[Effect] = []
        for endpoint in list(learned):
            path = peer.paths.get(endpoint)
            if path is not None and path.alive(now):
                continue
            opened = peer.punch.opened.get(endpoint)
            if path is not None and opened is not None and now - opened < OPENED_VALID_S:
                if endpoint in peer.punch.awaiting:  # our opener went; now theirs has too
                    out += self._start_probes(peer, endpoint, now)
            elif peer.tx_session is not None and endpoint not in self._out.config.local_endpoints:
                path = path or self._out.path(peer, endpoint, now)
                out += self._round(peer, path, now, peer_opened=True)
        return out

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
        echo_id = self._out.expect_echo(EchoWait(peer.address, now, False, path.endpoint))
        payload = wire.echo_request(echo_id, int(now * 1e6))
        # IPv6 homes are routed rather than NATed, but their firewalls keep state the
        # same way, so the opener (with the TTL the IPv4 trace found) serves them too.
        ttl = self._out.hops.opener_ttl
        path.last_probe = now  # the round's timers count from here (path.needs_probe)
        self._out.counters["punch_openers"] += 1
        return self._out.send(peer, Verb.ECHO, payload, now, path.endpoint, ttl=ttl)

    def _start_probes(self, peer: Peer, endpoint: Endpoint, now: float) -> list[Effect]:
        peer.punch.awaiting.pop(endpoint, None)
        peer.punch.pending[endpoint] = PUNCH_PROBES
        return self._out.probe(peer, endpoint, now)

    def _peer_just_opened(self, peer: Peer, now: float) -> bool:
        opened = peer.punch.peer_opened
        return opened is not None and now - opened < OPENED_VALID_S

    def _send_punch(self, peer: Peer, now: float) -> list[Effect]:
        last = self._punch_sent.get(peer.address)
        if last is not None and now - last < PUNCH_SEND_MIN_S:
            return []
        self._punch_sent[peer.address] = now
        seen = dict.fromkeys(self._out.observed.values())
        mine = [e for e in seen if e.transport is Transport.UDP][:MAX_PUNCH_ENDPOINTS]
        self._out.counters["punch_sent"] += 1
        return self._out.send(peer, Verb.PUNCH, pack_endpoints(mine), now)

    # ---------------------------------------------------------------- timers

    def tick_peer(self, peer: Peer, now: float) -> list[Effect]:
        """A peer with a session: probes that waited too long for its PUNCH go anyway."""
        out: list[Effect] = []
        for endpoint, since in list(peer.punch.awaiting.items()):
            if now - since >= PUNCH_WAIT_S:
                self._out.counters["punch_wait_expired"] += 1
                out += self._start_probes(peer, endpoint, now)
        for endpoint in [e for e, t in peer.punch.opened.items() if now - t > DEAD_PROBE_S]:
            del peer.punch.opened[endpoint]
        return out

    def tick(self, now: float) -> list[Effect]:
        """Expire the node-wide punch tables and drive the hop trace."""
        self._pushes.expire(now)
        if self._out.config.is_root:
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
        trace = self._out.hops
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
        peer = self._out.peers.get(address)
        if peer is None or peer.tx_session is None:
            trace.finished = now  # the root went away; trace again later
            return []
        echo_id = self._out.expect_echo(EchoWait(address, now, False, endpoint, trace_ttl=ttl))
        payload = wire.echo_request(echo_id, int(now * 1e6))
        return self._out.send(peer, Verb.ECHO, payload, now, endpoint, ttl=ttl)

    def _trace_target(self, now: float) -> tuple[int, Endpoint] | None:
        for address in self._out.roots:
            peer = self._out.peers[address]
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
            hops = self._out.hops
            if target is not None and target[1] == endpoint and not hops.done:
                hops.time_exceeded(offender, now)
            else:
                self._out.counters["punch_openers_expired"] += 1  # past our NATs, as meant
            return []
        if kind not in ("port_unreachable", "unreachable"):
            return []
        for peer in self._out.peers.values():
            path = peer.paths.get(endpoint)
            if peer.is_root or path is None or path.alive(now):
                continue
            _, _, count = peer.punch.icmp.get(endpoint, ("", None, 0))
            peer.punch.icmp[endpoint] = (kind, offender, count + 1)
            self._out.counters[f"punch_icmp_{kind}"] += 1
        return []
