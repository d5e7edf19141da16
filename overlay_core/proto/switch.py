"""The Ethernet switch of one virtual network: which members a frame goes to, and which
received frames are let onto the TAP.

How it switches a frame from the local TAP (`SwitchTable.route`):

1. Broadcast/multicast destination: every member but us, at most `multicast_limit` of
   them. The choice is deterministic: active bridges first (a bridge stands for a whole
   LAN segment, and ARP/ND for hosts behind it only works if the bridge hears it), then
   the other members in ascending address order. With more members than the limit, the
   highest addresses hear no broadcasts: keep the limit at or above the member count.
2. Unicast to a derived MAC (ethernet.mac_for) of a current member: that member. No table
   entry is needed; the MAC names the member.
3. Unicast to a MAC learned behind an active bridge: that bridge.
4. Anything else (unknown unicast, including a derived MAC of someone no longer a member):
   flooded to the active bridges, as a learning switch floods and as ZeroTier does; the
   host may sit behind one of them. Non-bridge members never see unknown unicast.

A frame addressed to ourselves goes nowhere. Which members and bridges exist is the
network config's business; they are passed in on every call, so a config change applies
to the next frame without the table having to be told.

Receiving (`accept_from`, and `SwitchTable.accept` which also learns): a frame is only
let in from a member, and its source MAC must be the sender's derived MAC, unless the
sender is an active bridge. A bridge may send from any unicast MAC except the derived MAC
of another member (that would be impersonation, or a bridging loop bringing a member's
own frame back), and each such MAC is learned as being behind it.

Learned entries expire `ttl_s` after they were last refreshed; the table holds at most
`limit` of them and evicts the least recently learned first, so a bridge spraying random
source MACs costs bounded memory (and churns only the table, never derived MACs).
"""

from __future__ import annotations

from collections.abc import Collection

from .ethernet import (
    MAC_LEN,
    EthernetFrame,
    FrameError,
    address_from_mac,
    is_multicast,
    mac_for,
)

DEFAULT_TABLE_LIMIT = 4096
DEFAULT_TTL_S = 300.0


def accept_from(
    sender: int, frame: bytes, members: Collection[int], bridges: Collection[int], nwid: int
) -> bool:
    """Whether a frame received from `sender` on network `nwid` may be written to the TAP.
    Pure: it doesn't learn (see SwitchTable.accept)."""
    if sender not in members:
        return False
    try:
        eth = EthernetFrame.parse(frame)
    except FrameError:
        return False
    if is_multicast(eth.src):
        return False  # no station sends from a group address
    if eth.src == mac_for(nwid, sender):
        return True
    if sender not in bridges:
        return False
    owner = address_from_mac(nwid, eth.src)
    return owner is None or owner not in members


class SwitchTable:
    """MACs learned behind bridging members of network `nwid`, and the switching decisions.

    Args:
        nwid: the 64-bit network id (it keys the derived MACs).
        limit: most learned MACs held; the least recently learned goes first.
        ttl_s: seconds a learned MAC stays valid after it was last seen.
    """

    def __init__(
        self, nwid: int, limit: int = DEFAULT_TABLE_LIMIT, ttl_s: float = DEFAULT_TTL_S
    ) -> None:
        if limit < 1:
            raise ValueError("a switch table needs room for at least one MAC")
        self.nwid = nwid
        self.limit = limit
        self.ttl_s = ttl_s
        # mac -> (bridge address, last learned). Insertion order is learning order: learn()
        # re-inserts, so the first key is always the least recently learned.
        self._learned: dict[bytes, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._learned)

    def learn(self, mac: bytes, address: int, now: float) -> None:
        """Record that `mac` is behind the bridge `address`. Multicast MACs are ignored."""
        if len(mac) != MAC_LEN or is_multicast(mac):
            return
        self._learned.pop(mac, None)
        self._learned[mac] = (address, now)
        while len(self._learned) > self.limit:
            del self._learned[next(iter(self._learned))]

    def _learned_address(self, mac: bytes, now: float) -> int | None:
        entry = self._learned.get(mac)
        if entry is None:
            return None
        if now - entry[1] > self.ttl_s:
            del self._learned[mac]
            return None
        return entry[0]

    def lookup(self, mac: bytes, now: float) -> int | None:
        """The address behind `mac`: decoded if it is a derived MAC, else a live learned
        entry, else None. (Membership is not checked here; route() does.)"""
        derived = address_from_mac(self.nwid, mac)
        if derived is not None:
            return derived
        return self._learned_address(mac, now)

    def expire(self, now: float) -> int:
        """Drop expired entries (lookups also drop them lazily); returns how many. Call it
        from the node's tick so an idle table doesn't keep stale MACs in snapshots."""
        stale = [mac for mac, (_, seen) in self._learned.items() if now - seen > self.ttl_s]
        for mac in stale:
            del self._learned[mac]
        return len(stale)

    def learned(self, now: float) -> dict[bytes, int]:
        """Live learned MACs and the bridge each is behind, for status displays."""
        return {
            mac: address
            for mac, (address, seen) in self._learned.items()
            if now - seen <= self.ttl_s
        }

    def accept(
        self,
        sender: int,
        frame: bytes,
        members: Collection[int],
        bridges: Collection[int],
        now: float,
    ) -> bool:
        """accept_from, and if a bridge sent it from a MAC not its own, learn that MAC."""
        if not accept_from(sender, frame, members, bridges, self.nwid):
            return False
        src = bytes(frame[6:12])
        if sender in bridges and src != mac_for(self.nwid, sender):
            self.learn(src, sender, now)
        return True

    def route(
        self,
        frame: bytes,
        now: float,
        members: Collection[int],
        bridges: Collection[int],
        me: int,
        multicast_limit: int,
    ) -> list[int]:
        """The members a frame read from the local TAP goes to (see the module docstring).
        A runt frame goes nowhere."""
        try:
            eth = EthernetFrame.parse(frame)
        except FrameError:
            return []
        if is_multicast(eth.dst):
            if multicast_limit <= 0:
                return []
            first = sorted(b for b in bridges if b in members and b != me)
            chosen = set(first)
            rest = sorted(m for m in members if m != me and m not in chosen)
            return (first + rest)[:multicast_limit]
        target = address_from_mac(self.nwid, eth.dst)
        if target is None or target not in members:
            # Not a member's own MAC: maybe a host behind a bridge that is still one.
            target = self._learned_address(eth.dst, now)
            if target is not None and (target not in members or target not in bridges):
                target = None
        if target is not None:
            return [] if target == me else [target]
        return sorted(b for b in bridges if b in members and b != me)
