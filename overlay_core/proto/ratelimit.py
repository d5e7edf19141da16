"""Token buckets: how the node (and its I/O layer) limits what others can make it do.

A `TokenBucket` allows `rate` events a second on average and `burst` at once; a
`KeyedBuckets` keeps one per key (a sender's address, a source host), bounded in number
and forgotten when idle, so a flood of fresh keys costs memory no one can grow. Users: a
root's relaying (relay.py), HELLO admission (admission.py), a peer's HELLO answers
(peer.py), unsolicited WHOIS (outbound.py), path reports (reporting.py), and the I/O
layer's event and hook limits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

BUCKET_IDLE_S = 60.0  # a key silent this long gets a fresh, full bucket next time
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
