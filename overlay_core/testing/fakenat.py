"""The NAT routers of the FakeNet (fakenet.py): idealised RFC 4787 families and a model of
Linux conntrack + MASQUERADE.

- FULL_CONE: one public port per inside endpoint; anyone may send to it.
- PORT_RESTRICTED: one public port per inside endpoint; only (ip, port) pairs the inside
  host has sent to may answer. (A consumer router: MASQUERADE behind an input firewall.)
- SYMMETRIC: a new public port for every destination; same filtering as above.
  (MASQUERADE --random-fully, carrier-grade NATs.)
- BLOCK_UDP: drops UDP both ways; TCP to the outside still works.
- LINUX_MASQUERADE: a Linux router doing plain `-j MASQUERADE`, modelled on its conntrack
  table (see `Conn`): the inside port is kept unless the reply tuple would clash with an
  existing entry, then another port is taken; inbound is admitted only as the reply of an
  entry (address- and port-dependent filtering). A datagram to the router's public address
  that answers nothing is the router's own traffic: with `input_firewall` (INPUT drops NEW
  from the WAN) it is dropped without a trace; without one conntrack confirms a "local"
  entry for it (UNREPLIED, refreshed by every later packet of that tuple) and the router
  answers ICMP port unreachable (FakeNet sends that). Such an entry makes MASQUERADE move
  the inside host's later flow to that peer to another port: issue 10.

A Nat may sit behind another one (`upstream`, a carrier-grade NAT): its public address is
then an address on the upstream's inside, translated again there.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Literal

from ..proto.effects import Endpoint, udp

UDP_UNREPLIED_S = 30.0  # net.netfilter.nf_conntrack_udp_timeout
UDP_REPLIED_S = 120.0  # net.netfilter.nf_conntrack_udp_timeout_stream (seen both ways)
SWEEP_S = 1.0  # forget expired conntrack entries at most this often

LOCAL: Final = "local"  # Nat.into: the datagram is for the router itself


class NatKind(Enum):
    FULL_CONE = "full-cone"
    PORT_RESTRICTED = "port-restricted"
    SYMMETRIC = "symmetric"
    BLOCK_UDP = "block-udp"
    LINUX_MASQUERADE = "linux-masquerade"


Tuple = tuple[Endpoint, Endpoint]  # (source, destination) of a UDP datagram


@dataclass(eq=False)
class Conn:
    """One conntrack entry: the tuple of its first packet and the tuple a reply has.

    A forwarded (masqueraded) flow: original (inside, remote), reply (remote, public), so
    `inside` and `public` are the two faces of the mapping. A local one (the router's own
    traffic): original (remote, router:port), reply (router:port, remote), no NAT."""

    original: Tuple
    reply: Tuple
    local: bool
    expires: float
    replied: bool = False  # seen both ways: ASSURED, 120 s
    packets: int = 1

    @property
    def inside(self) -> Endpoint:
        return self.original[0]

    @property
    def remote(self) -> Endpoint:
        return self.original[1] if not self.local else self.original[0]

    @property
    def public(self) -> Endpoint:
        return self.reply[1] if not self.local else self.original[1]

    @property
    def state(self) -> str:
        return "ASSURED" if self.replied else "UNREPLIED"

    def refresh(self, now: float) -> None:
        self.packets += 1
        self.expires = now + (UDP_REPLIED_S if self.replied else UDP_UNREPLIED_S)


@dataclass(eq=False)
class Nat:
    public_ip: str
    kind: NatKind
    _ports: itertools.count[int] = field(default_factory=lambda: itertools.count(40000))
    # (inside endpoint, destination or None) -> public port
    mappings: dict[tuple[Endpoint, Endpoint | None], int] = field(default_factory=dict)
    # public port -> (inside endpoint, destinations allowed to answer)
    inbound: dict[int, tuple[Endpoint, set[Endpoint]]] = field(default_factory=dict)
    name: str = ""
    upstream: Nat | None = None  # the NAT our public side is behind (None: the internet)
    inside_ip: str = ""  # the router's own address on its inside (ICMP from it shows this)
    input_firewall: bool = True  # LINUX_MASQUERADE: INPUT drops NEW from the WAN
    # LINUX_MASQUERADE: both tuples of every entry -> the entry (conntrack's hash table)
    conntrack: dict[Tuple, Conn] = field(default_factory=dict, repr=False)
    # what happened here: "local_entries", "port_changed", "unsolicited_dropped", ...
    stats: Counter[str] = field(default_factory=Counter, repr=False)
    _swept: float = field(default=float("-inf"), repr=False)

    # ------------------------------------------------------------- FakeNet's interface

    def out(self, inside: Endpoint, dest: Endpoint, now: float) -> Endpoint | None:
        """Forward a datagram from the inside to `dest`: its new source, None if dropped."""
        if self.kind is NatKind.LINUX_MASQUERADE:
            return self._masquerade(inside, dest, now)
        return self.outbound(inside, dest)

    def expired_out(self, inside: Endpoint, dest: Endpoint, now: float) -> None:
        """A datagram from the inside whose TTL ran out here. Linux drops it in the forward
        path, after conntrack saw it (an existing entry is refreshed) and before
        POSTROUTING confirms a new one and binds the NAT: no new mapping."""
        self.stats["ttl_expired"] += 1
        if self.kind is NatKind.LINUX_MASQUERADE:
            conn = self._lookup((inside, dest), now)
            if conn is not None and conn.original == (inside, dest):
                conn.refresh(now)

    def into(self, source: Endpoint, port: int, now: float) -> Endpoint | Literal["local"] | None:
        """A datagram from `source` to our public address, `port`: the inside endpoint it is
        forwarded to, LOCAL (the router's own traffic: it answers port unreachable), or
        None (dropped)."""
        if self.kind is not NatKind.LINUX_MASQUERADE:
            return self.inbound_to(port, source)
        key = (source, udp(self.public_ip, port))
        conn = self._lookup(key, now)
        if conn is not None:
            if not conn.local and conn.reply == key:
                conn.replied = True
                conn.refresh(now)
                return conn.inside
            if conn.local and conn.original == key:
                conn.refresh(now)
                self.stats["local_packets"] += 1
                return LOCAL
            return None
        if self.input_firewall:
            self.stats["unsolicited_dropped"] += 1
            return None
        conn = Conn(key, (key[1], key[0]), True, now + UDP_UNREPLIED_S)
        self.conntrack[conn.original] = self.conntrack[conn.reply] = conn
        self.stats["local_entries"] += 1
        self.stats["local_packets"] += 1
        return LOCAL

    def related(self, public: Endpoint, remote: Endpoint, now: float) -> bool:
        """Whether an ICMP error about our datagram public -> remote finds the mapping it
        came through (conntrack: RELATED to that entry), so it reaches the inside."""
        if self.kind is NatKind.LINUX_MASQUERADE:
            conn = self._lookup((remote, public), now)
            return conn is not None and not conn.local and conn.reply == (remote, public)
        entry = self.inbound.get(public.port)
        return entry is not None and remote in entry[1] and self.kind is not NatKind.BLOCK_UDP

    # ------------------------------------------------------------- looking at it

    def entries(self, now: float) -> list[Conn]:
        """The live conntrack entries (LINUX_MASQUERADE), oldest first: `conntrack -L`."""
        self._sweep(now, force=True)
        return list({id(c): c for c in self.conntrack.values()}.values())

    def entry(self, source: Endpoint, dest: Endpoint, now: float) -> Conn | None:
        """The live entry either of whose tuples is (source, dest), without touching it."""
        return self._lookup((source, dest), now)

    # ------------------------------------------------------------- the idealised kinds

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

    # ------------------------------------------------------------- conntrack

    def _masquerade(self, inside: Endpoint, dest: Endpoint, now: float) -> Endpoint | None:
        key = (inside, dest)
        conn = self._lookup(key, now)
        if conn is not None:
            if conn.local or conn.original != key:
                return None  # the inside answering a tuple we hold the other way round
            conn.refresh(now)
            return conn.public
        # MASQUERADE keeps the source port unless the new entry's reply tuple is taken
        # (nf_nat_used_tuple: either tuple of any entry); then it searches for a free one.
        public = udp(self.public_ip, inside.port)
        while self._lookup((dest, public), now) is not None:
            public = udp(self.public_ip, next(self._ports))
        if public.port != inside.port:
            self.stats["port_changed"] += 1
        conn = Conn(key, (dest, public), False, now + UDP_UNREPLIED_S)
        self.conntrack[conn.original] = self.conntrack[conn.reply] = conn
        return public

    def _lookup(self, key: Tuple, now: float) -> Conn | None:
        self._sweep(now)
        conn = self.conntrack.get(key)
        if conn is not None and conn.expires <= now:
            self._forget(conn)
            return None
        return conn

    def _forget(self, conn: Conn) -> None:
        self.conntrack.pop(conn.original, None)
        self.conntrack.pop(conn.reply, None)

    def _sweep(self, now: float, force: bool = False) -> None:
        if not force and now - self._swept < SWEEP_S:
            return
        self._swept = now
        for conn in [c for c in self.conntrack.values() if c.expires <= now]:
            self._forget(conn)
