"""What a root does with packets that are not addressed to it.

A root forwards a packet to its destination when (1) the hop count is below MAX_HOPS,
(2) the packet arrived from a physical path the root has authenticated for the claimed
source (so nobody can make a root send traffic "from" someone else), (3) the source is
within its rate limit (so a root can't be turned into a traffic cannon), and (4) the root
has a live path to the destination. Forwarding never grows a packet: the root only bumps
the hop count, which is outside the authenticated data.

While it relays between two UDP peers it sends each a RENDEZVOUS with the other's
external endpoint(s), at most once per RENDEZVOUS_INTERVAL_S per pair, so they can punch
a direct path and stop needing the root.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .effects import Endpoint, Transport

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
BUCKET_IDLE_S = 60.0  # a source silent this long gets a fresh, full bucket next time
MAX_BUCKETS = 16384

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float = 0.0) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def peek(self, now: float) -> bool:
        """Would `take` succeed now? Spends nothing."""
        return min(self.burst, self.tokens + (now - self.updated) * self.rate) >= 1.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class KeyedBuckets(Generic[K]):
    """One token bucket per key (a sender's address, a source host), the map bounded in
    size and age: keys silent for BUCKET_IDLE_S are dropped, and past `limit` the key
    least recently used gives its place up (it gets a full bucket if it comes back)."""

    def __init__(self, rate: float, burst: float, limit: int = MAX_BUCKETS) -> None:
        self._rate, self._burst, self._limit = rate, burst, limit
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def take(self, key: K, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            while len(self._buckets) >= self._limit:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = TokenBucket.full(self._rate, self._burst, now)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def expire(self, now: float) -> None:
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated <= BUCKET_IDLE_S:
                break
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class RelayState:
    """Per-source rate limits and per-pair rendezvous timestamps of one root."""

    def __init__(self, rate_pps: float = RELAY_RATE_PPS, burst: float = RELAY_BURST) -> None:
        self._buckets: KeyedBuckets[int] = KeyedBuckets(rate_pps, burst)
        self._total = TokenBucket.full(RELAY_TOTAL_PPS, RELAY_TOTAL_BURST)
        self._introduced: dict[tuple[int, int], float] = {}

    def allow(self, source: int, now: float) -> bool:
        return self._buckets.take(source, now) and self._total.take(now)

    def should_introduce(self, a: int, b: int, now: float) -> bool:
        pair = (a, b) if a < b else (b, a)
        last = self._introduced.get(pair)
        if last is not None and now - last < RENDEZVOUS_INTERVAL_S:
            return False
        self._introduced[pair] = now
        return True

    def expire(self, now: float) -> None:
        for pair in [p for p, t in self._introduced.items() if now - t > 60.0]:
            del self._introduced[pair]
        self._buckets.expire(now)


def punchable(endpoint: Endpoint) -> bool:
    return endpoint.transport is Transport.UDP
