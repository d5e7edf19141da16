"""Who may make this node do expensive work: HELLOs from strangers, handshakes, WHOIS.

A HELLO from a key we have no peer for is the one packet that costs real CPU before it is
authenticated: checking the key's address proof of work is one argon2id pass over 4 MiB
(~3 ms), and the static key one X25519 (~60 us). Anyone can send HELLOs from any source
address, so that work sits behind, in this order (cheapest first):

1. identity.py's verdict cache: a key checked before is not checked again. Good and bad
   verdicts are kept apart there, so a flood of junk keys cannot evict real nodes' keys.
2. `HelloAdmission.admit`: budgets. A global soft budget of NEW_IDENTITY_RATE checks per
   second (bursting to NEW_IDENTITY_BURST) serves normal life: a root that restarts and is
   HELLOed by all its leaves at once. While that budget is spent the node is "under load"
   and, like WireGuard's cookie reply, answers a stranger's HELLO with a COOKIE: 16 bytes
   that only the holder of the HELLO's source address can receive, smaller than the HELLO
   (so it amplifies nothing). A HELLO that brings a valid cookie back has proved its
   address and is admitted under a per-source-IP budget and a hard global cap. A spoofed
   flood therefore costs us a hash and a small reply per packet, never an argon2id.
3. Only then does the node open the HELLO's AEAD (junk bodies fail here, cheaply) and,
   last, run the proof of work.

Handshakes we start in reaction to packets (a session packet under a key id we don't have,
ERROR NEED_HELLO) are limited per peer by `Throttle`, and so are HELLOs we answer: a peer
cannot make us run X25519 in a loop. Unsolicited WHOIS (asking a root who sent us a packet
we can't place) has a global budget.

Everything here is sans-IO and keyed by explicit `now`; secrets come from the node's
injectable random source.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from nacl import bindings

from .effects import Endpoint
from .ratelimit import MAX_BUCKETS, KeyedBuckets, TokenBucket
from .wire import COOKIE_BYTES

NEW_IDENTITY_RATE = 20.0  # argon2id checks per second while not under load (~6% of a core)
NEW_IDENTITY_BURST = 100.0
# Sources that proved their address with a cookie: at most this many checks per second in
# all (~30% of a core at 3 ms each), and per source IP these.
PROVEN_IDENTITY_RATE = 100.0
PROVEN_IDENTITY_BURST = 100.0
PER_SOURCE_RATE = 2.0
PER_SOURCE_BURST = 10.0  # a household behind one NAT may bring several nodes up at once
COOKIE_ROTATE_S = 120.0  # a cookie stays valid for one to two rotations
# Handshakes a peer can make us do: start one (unknown key id, NEED_HELLO) at most every
# REHANDSHAKE_MIN_S, and answer its HELLOs at a rate of HELLO_ANSWER_RATE.
REHANDSHAKE_MIN_S = 5.0
HELLO_ANSWER_RATE = 1.0
HELLO_ANSWER_BURST = 5.0
UNSOLICITED_WHOIS_RATE = 10.0
UNSOLICITED_WHOIS_BURST = 20.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a stranger's HELLO: `admit` it, or answer with `cookie` (if any)."""

    admit: bool
    cookie: bytes | None = None
    reason: str = ""


class HelloAdmission:
    """Budgets and cookies for HELLOs from keys we have no peer for (see module docstring)."""

    def __init__(self, secret: bytes, now: float) -> None:
        self._secret, self._previous = secret, secret
        self._rotated = now
        self._soft = TokenBucket.full(NEW_IDENTITY_RATE, NEW_IDENTITY_BURST, now)
        self._hard = TokenBucket.full(PROVEN_IDENTITY_RATE, PROVEN_IDENTITY_BURST, now)
        self._sources: KeyedBuckets[str] = KeyedBuckets(PER_SOURCE_RATE, PER_SOURCE_BURST)

    def rotate(self, random_bytes: Callable[[int], bytes], now: float) -> bool:
        """Install a new cookie secret (drawn only then) if the current one is
        COOKIE_ROTATE_S old."""
        if now - self._rotated < COOKIE_ROTATE_S:
            return False
        self._previous, self._secret, self._rotated = self._secret, random_bytes(32), now
        return True

    def cookie(self, source: Endpoint, public_key: bytes, secret: bytes | None = None) -> bytes:
        data = f"{source.transport.value}|{source.host}|{source.port}|".encode() + public_key
        return bytes(
            bindings.crypto_generichash_blake2b_salt_personal(
                data, COOKIE_BYTES, secret or self._secret, b"", b"ztui-cookie-v1\0\0"
            )
        )

    def valid_cookie(self, source: Endpoint, public_key: bytes, cookie: bytes) -> bool:
        return any(
            bindings.sodium_memcmp(cookie, self.cookie(source, public_key, s))
            for s in (self._secret, self._previous)
        )

    def admit(
        self, source: Endpoint, public_key: bytes, cookie: bytes | None, now: float
    ) -> Verdict:
        """May we spend an identity check on this HELLO now?"""
        if cookie is not None and self.valid_cookie(source, public_key, cookie):
            if not self._sources.take(source.host, now):
                return Verdict(False, None, "source_budget")
            return Verdict(True) if self._hard.take(now) else Verdict(False, None, "hard_budget")
        if not self._soft.peek(now):
            return Verdict(False, self.cookie(source, public_key), "under_load")
        if not self._sources.take(source.host, now):
            return Verdict(False, None, "source_budget")
        self._soft.take(now)
        return Verdict(True)

    def expire(self, now: float) -> None:
        self._sources.expire(now)


class Throttle:
    """At most one event per `interval_s` per key (a peer address), the map bounded."""

    def __init__(self, interval_s: float, limit: int = MAX_BUCKETS) -> None:
        self._interval = interval_s
        self._limit = limit
        self._last: OrderedDict[int, float] = OrderedDict()

    def allow(self, key: int, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and 0.0 <= now - last < self._interval:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self._limit:
            self._last.popitem(last=False)
        return True

    def forget(self, key: int) -> None:
        self._last.pop(key, None)

    def expire(self, now: float) -> None:
        while self._last:
            key, last = next(iter(self._last.items()))
            if now - last <= self._interval:
                break
            del self._last[key]
