"""IPv4 address pools: parsing, deterministic auto-assignment, and prefix lengths.

A pool is a CIDR ("10.147.17.0/24") or an inclusive range ("10.147.17.10-10.147.17.99").
Members are put on a subnet: the CIDR itself, or for a range the smallest CIDR covering it;
that subnet's network and broadcast addresses are never handed out (except in /31 and /32,
which have none, RFC 3021).

Assignment is deterministic, like ZeroTier's: a member starts probing at an offset taken
from a hash of its address, then walks linearly (wrapping) to the first free address. The
same member on a fresh database always lands on the same IP, and members rarely collide, so
an IP tends to stay put if a network is rebuilt.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from overlay_core.proto.netfields import Route, ValidationError, check_network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PoolsFullError(ValidationError):
    """Every pool of a network is used up; names the pools and what to do."""


@dataclass(frozen=True, slots=True)
class Pool:
    text: str  # normalised, as stored
    first: int  # the range as integers, inclusive
    last: int
    prefixlen: int  # of the subnet its members are on

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network((self.first, self.prefixlen), strict=False)

    @property
    def usable_first(self) -> int:
        net = self.subnet
        skip = self.prefixlen <= 30 and self.first == int(net.network_address)
        return self.first + 1 if skip else self.first

    @property
    def usable_last(self) -> int:
        net = self.subnet
        skip = self.prefixlen <= 30 and self.last == int(net.broadcast_address)
        return self.last - 1 if skip else self.last

    @property
    def size(self) -> int:
        return max(0, self.usable_last - self.usable_first + 1)

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, ipaddress.IPv4Address) and self.first <= int(ip) <= self.last


def parse_pool(text: object, field: str = "pool") -> Pool:
    if not isinstance(text, str):
        raise ValidationError(field, 'a pool is "10.147.17.0/24" or "10.147.17.1-10.147.17.254"')
    if "-" in text:
        low, _, high = text.partition("-")
        try:
            first = ipaddress.ip_address(low.strip())
            last = ipaddress.ip_address(high.strip())
        except ValueError:
            raise ValidationError(field, f"{text!r} is not a range like 10.0.0.1-10.0.0.254")
        if first.version != 4 or last.version != 4:
            raise ValidationError(field, "pools are IPv4 only; assign IPv6 addresses by hand")
        if int(first) > int(last):
            raise ValidationError(field, f"{text!r} starts after it ends")
        return Pool(f"{first}-{last}", int(first), int(last), _covering_prefix(first, last))
    net = check_network(text, field)
    if net.version != 4:
        raise ValidationError(field, "pools are IPv4 only; assign IPv6 addresses by hand")
    # Never empty: a subnet of /30 or wider keeps two addresses, /31 and /32 skip none.
    return Pool(str(net), int(net.network_address), int(net.broadcast_address), net.prefixlen)


def check_pools(values: object, field: str = "pools") -> tuple[Pool, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValidationError(field, "must be a list of pools")
    pools = tuple(parse_pool(v, f"{field}[{i}]") for i, v in enumerate(values))
    if len({p.text for p in pools}) != len(pools):
        raise ValidationError(field, "a pool is listed twice")
    return pools


def _covering_prefix(first: ipaddress.IPv4Address, last: ipaddress.IPv4Address) -> int:
    a, b = int(first), int(last)
    prefix = 32
    while prefix > 0 and (a >> (32 - prefix)) != (b >> (32 - prefix)):
        prefix -= 1
    return prefix


def hash_offset(member_address: int, size: int) -> int:
    """Where in a pool of `size` addresses a member starts probing."""
    digest = hashlib.blake2b(member_address.to_bytes(5, "big"), digest_size=8, person=b"ztui-pool")
    return int.from_bytes(digest.digest(), "big") % size


def pick_address(
    pools: Sequence[Pool], member_address: int, taken: AbstractSet[int]
) -> ipaddress.IPv4Address:
    """The first free address for this member, trying pools in order.

    `taken` holds every IPv4 already assigned in the network, as integers. Raises
    PoolsFullError naming each pool's use when none has room.
    """
    for pool in pools:
        used = sum(1 for ip in taken if pool.usable_first <= ip <= pool.usable_last)
        if used >= pool.size:
            continue  # full: don't walk it
        start = hash_offset(member_address, pool.size)
        for step in range(pool.size):  # ends within used + 1 steps: something is free
            candidate = pool.usable_first + (start + step) % pool.size
            if candidate not in taken:
                return ipaddress.IPv4Address(candidate)
    if not pools:
        raise PoolsFullError("pools", "this network has no pools; assign an address by hand")
    detail = ", ".join(f"{p.text}: {p.size} of {p.size} taken" for p in pools)
    raise PoolsFullError(
        "pools", f"all pools are full ({detail}); add a pool or assign an address by hand"
    )


def prefix_length(ip: IPAddress, pools: Sequence[Pool], routes: Sequence[Route]) -> int:
    """The prefix a member's address is configured with: the most specific on-link route
    containing it (what the kernel will treat as the LAN), else its pool's subnet, else a
    host prefix (a route via a gateway says the network is *behind* someone, not here)."""
    on_link = [
        net.prefixlen
        for net in (ipaddress.ip_network(r.target) for r in routes if r.via is None)
        if ip in net
    ]
    if on_link:
        return max(on_link)
    for pool in pools:
        if ip in pool:
            return pool.prefixlen
    return ip.max_prefixlen


def check_member_ip(
    value: object, field: str, pools: Sequence[Pool], routes: Sequence[Route]
) -> IPAddress:
    """An address typed by an admin: inside a pool or route target of the network, and not
    the network or broadcast address of the subnet it would be configured on."""
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValidationError(field, f"{value!r} is not an IP address like 10.147.17.5")
    inside_route = any(ip in ipaddress.ip_network(r.target) for r in routes)
    if not inside_route and not any(ip in pool for pool in pools):
        known = [p.text for p in pools] + [r.target for r in routes]
        where = ", ".join(known) if known else "none defined"
        raise ValidationError(
            field, f"{ip} is outside every pool and route of this network ({where})"
        )
    prefix = prefix_length(ip, pools, routes)
    subnet = ipaddress.ip_network((ip, prefix), strict=False)
    if (
        ip.version == 4
        and prefix <= 30
        and ip in (subnet.network_address, subnet.broadcast_address)
    ):
        kind = "network" if ip == subnet.network_address else "broadcast"
        raise ValidationError(field, f"{ip} is the {kind} address of {subnet}")
    return ip
