"""What a root does with packets that are not addressed to it.

A root forwards a packet to its destination when (1) the hop count is below MAX_HOPS,
(2) the packet arrived from a physical path the root has authenticated for the claimed
source (so nobody can make a root send traffic "from" someone else), (3) the source is
within its rate limit (so a root can't be turned into a traffic cannon), and (4) the root
has a live path to the destination. Forwarding never grows a packet: the root only bumps
the hop count, which is outside the authenticated data.

While it relays between two UDP peers it sends each a RENDEZVOUS with the other's
external endpoint(s), at most once per RENDEZVOUS_INTERVAL_S per pair, so they can punch
a direct path and stop needing the root. It introduces them the same way as soon as one
asks it WHOIS about the other (`introduce_on_whois`), before any traffic needs relaying.

`Relay` is the part of the node that does this (node.py wires it); it sends through the
node's core (outbound.Outbound); its limits are ratelimit.py's token buckets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import wire
from .effects import Effect, Endpoint, Send, Transport
from .ratelimit import KeyedBuckets, TokenBucket
from .wire import Verb

if TYPE_CHECKING:
    from .outbound import Outbound
    from .peer import Peer

# Per source; a token bucket refilled at this rate. 80k datagrams/s is ~0.7 Gbit/s of the
# ~1.1 KB ones a relayed TCP stream sends (relayed segments fit the smallest path MTU): a
# relayed member moves files at least as fast as through a tinc hub (5k/s, ~55 Mbit/s, was
# the ceiling of every relayed transfer), while one member's share of the root's CPU stays
# bounded (about half a core of forwarding at ~6 us a datagram).
RELAY_RATE_PPS = 80000.0
RELAY_BURST = 8000.0  # 0.1 s of it: no source gets a long free run
# All relaying together, so two members (or one with two identities) can't fill a root's
# cores and starve the rest (HELLOs, WHOIS, other relays): about one core of forwarding.
RELAY_TOTAL_PPS = 160000.0
RELAY_TOTAL_BURST = 16000.0
RENDEZVOUS_INTERVAL_S = 5.0
INTRODUCED_KEEP_S = 60.0  # how long a pair's last introduction is remembered


class Relay:
    """A root's forwarding: per-source rate limits (and one for all sources together),
    and the introductions of the peers it relays between."""

    def __init__(
        self, out: Outbound, rate_pps: float = RELAY_RATE_PPS, burst: float = RELAY_BURST
    ) -> None:
        self._out = out
        self._buckets: KeyedBuckets[int] = KeyedBuckets(rate_pps, burst)
        self._total = TokenBucket.full(RELAY_TOTAL_PPS, RELAY_TOTAL_BURST)
        self._introduced: dict[tuple[int, int], float] = {}  # pair -> last RENDEZVOUS

    def forward(self, data: bytes, source: Endpoint, now: float) -> list[Effect]:
        """A datagram from `source` addressed to another node: forwarded with one more
        hop when the module docstring's four conditions hold, else dropped (counted)."""
        out = self._out
        hops = wire.hops_of(data)
        if hops >= wire.MAX_HOPS:
            out.drops["hop_limit"] += 1
            return []
        sender = out.peers.get(wire.source_of(data))
        path = sender.paths.get(source) if sender is not None else None
        if sender is None or path is None or not path.confirmed:
            if path is not None:  # a known sender whose NAT moved: challenge it soon
                path.add_credit(len(data))
            out.drops["relay_unknown_source"] += 1
            return []
        if not self._allow(sender.address, now):
            out.drops["rate_limited"] += 1
            return []
        receiver = out.peers.get(wire.dest_of(data))
        target = receiver.best_path(now) if receiver is not None else None
        if receiver is None or target is None:
            out.drops["relay_no_route"] += 1
            return []
        out.counters["relayed_packets"] += 1
        out.counters["relayed_bytes"] += len(data)
        effects: list[Effect] = [Send(target.endpoint, wire.with_hops(data, hops + 1))]
        if (
            punchable(source)
            and punchable(target.endpoint)
            and self._should_introduce(sender.address, receiver.address, now)
        ):
            effects += self._introduce(sender, receiver, now)
            effects += self._introduce(receiver, sender, now)
        return effects

    def introduce_on_whois(self, asker: Peer, found: Peer, now: float) -> list[Effect]:
        """A root asked for `found` by `asker` introduces the two at once: they will
        want a direct path, and waiting for relayed traffic costs a round trip or more."""
        if not self._out.config.is_root or found.is_root or asker.is_root:
            return []
        if not any(p.alive(now) and punchable(p.endpoint) for p in asker.paths.values()):
            return []
        if not self._should_introduce(asker.address, found.address, now):
            return []
        self._out.counters["rendezvous_on_whois"] += 1
        return self._introduce(asker, found, now) + self._introduce(found, asker, now)

    def expire(self, now: float) -> None:
        for pair in [p for p, t in self._introduced.items() if now - t > INTRODUCED_KEEP_S]:
            del self._introduced[pair]
        self._buckets.expire(now)

    def _allow(self, source: int, now: float) -> bool:
        return self._buckets.take(source, now) and self._total.take(now)

    def _should_introduce(self, a: int, b: int, now: float) -> bool:
        pair = (a, b) if a < b else (b, a)
        last = self._introduced.get(pair)
        if last is not None and now - last < RENDEZVOUS_INTERVAL_S:
            return False
        self._introduced[pair] = now
        return True

    def _introduce(self, to: Peer, about: Peer, now: float) -> list[Effect]:
        """RENDEZVOUS to `to`: each live, punchable endpoint of `about`."""
        out: list[Effect] = []
        for path in about.paths.values():
            if path.alive(now) and punchable(path.endpoint):
                payload = wire.addr_bytes(about.address) + wire.pack_endpoint(path.endpoint)
                out += self._out.send(to, Verb.RENDEZVOUS, payload, now)
        return out


def punchable(endpoint: Endpoint) -> bool:
    return endpoint.transport is Transport.UDP
