"""Pure tests of IPv4 pools: parsing, deterministic assignment, prefixes, hand-picked IPs."""

from __future__ import annotations

import ipaddress
import re

import pytest

from overlay_core.controller.pools import (
    PoolsFullError,
    check_member_ip,
    check_pools,
    parse_pool,
    pick_address,
    prefix_length,
)
from overlay_core.proto.netconf import Route, ValidationError


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def test_cidr_pool_skips_network_and_broadcast() -> None:
    """A /24 hands out .1 to .254; a /31 and a /32 have no network or broadcast address."""
    pool = parse_pool("10.147.17.0/24")
    assert (pool.usable_first, pool.usable_last, pool.size) == (
        ip("10.147.17.1"),
        ip("10.147.17.254"),
        254,
    )
    assert parse_pool("10.0.0.0/30").size == 2
    assert parse_pool("10.0.0.0/31").size == 2
    assert parse_pool("10.0.0.7/32").size == 1


def test_range_pool_is_on_its_covering_subnet() -> None:
    """A range puts members on the smallest CIDR covering it, and skips that subnet's
    network and broadcast addresses only if the range includes them."""
    pool = parse_pool("10.147.17.10 - 10.147.17.99")
    assert pool.text == "10.147.17.10-10.147.17.99"
    assert pool.prefixlen == 25 and pool.size == 90
    whole = parse_pool("10.0.0.0-10.0.1.255")
    assert whole.prefixlen == 23 and whole.size == 510


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("10.0.0.1/24", "host bits set; did you mean 10.0.0.0/24?"),
        ("banana", "is not a network"),
        ("10.0.0.9-10.0.0.1", "starts after it ends"),
        ("10.0.0.1-banana", "is not a range"),
        ("fd00::/64", "IPv4 only"),
        ("10.0.0.0/33", "is not a network"),
    ],
)
def test_bad_pools_are_refused_with_the_reason(text: str, reason: str) -> None:
    """Each bad pool names its position in the list and what is wrong with it."""
    with pytest.raises(ValidationError) as caught:
        check_pools(["10.1.0.0/16", text])
    assert caught.value.field == "pools[1]"
    assert reason in caught.value.rule


def test_assignment_is_deterministic_and_probes_linearly() -> None:
    """The same member starts at the same place; if that is taken, the next free address
    (wrapping) is chosen; the network and broadcast addresses are never chosen."""
    pools = (parse_pool("10.147.17.0/24"),)
    first = pick_address(pools, 0x1234567890, set())
    assert pick_address(pools, 0x1234567890, set()) == first
    second = pick_address(pools, 0x1234567890, {int(first)})
    assert int(second) == (
        int(first) + 1 if int(first) < ip("10.147.17.254") else ip("10.147.17.1")
    )
    taken = {ip("10.147.17.1"), ip("10.147.17.2"), ip("10.147.17.3")}
    tiny = (parse_pool("10.147.17.0/29"),)  # .1-.6
    got = {int(pick_address(tiny, a, taken)) for a in range(1, 200)}
    assert got <= {ip("10.147.17.4"), ip("10.147.17.5"), ip("10.147.17.6")}


def test_full_pools_raise_a_clear_error() -> None:
    """When every pool is used up the error names each pool and says what to do; a later
    pool with room is used before giving up."""
    pools = (parse_pool("10.0.0.0/30"), parse_pool("10.0.1.0/30"))
    taken = {ip("10.0.0.1"), ip("10.0.0.2")}
    assert str(pick_address(pools, 42, taken)).startswith("10.0.1.")
    taken |= {ip("10.0.1.1"), ip("10.0.1.2")}
    with pytest.raises(PoolsFullError) as caught:
        pick_address(pools, 42, taken)
    assert str(caught.value) == (
        "pools: all pools are full (10.0.0.0/30: 2 of 2 taken, 10.0.1.0/30: 2 of 2 taken);"
        " add a pool or assign an address by hand"
    )


def test_prefix_comes_from_on_link_route_then_pool() -> None:
    """An assigned address gets the prefix of the most specific on-link route holding it,
    else of its pool's subnet, else a host prefix."""
    pools = (parse_pool("10.147.17.0/24"),)
    routes = (Route("10.147.0.0/16", None), Route("192.168.0.0/16", "10.147.17.1"))
    assert prefix_length(ipaddress.ip_address("10.147.17.5"), pools, routes) == 16
    assert prefix_length(ipaddress.ip_address("10.147.17.5"), pools, ()) == 24
    assert prefix_length(ipaddress.ip_address("192.168.3.3"), pools, routes) == 32
    assert prefix_length(ipaddress.ip_address("fd00::5"), (), (Route("fd00::/64", None),)) == 64


def test_hand_picked_ips_must_lie_in_a_pool_or_route() -> None:
    """An admin's IP is refused outside every pool and route target (the message lists
    them) and when it is its subnet's network or broadcast address."""
    pools = (parse_pool("10.147.17.0/24"),)
    routes = (Route("fd00::/64", None),)
    assert str(check_member_ip("10.147.17.9", "ips[0]", pools, routes)) == "10.147.17.9"
    assert str(check_member_ip("fd00::9", "ips[0]", pools, routes)) == "fd00::9"
    with pytest.raises(
        ValidationError,
        match=r"ips\[0\]: 10.9.9.9 is outside every pool and route of this network \(10.147.17.0/24, fd00::/64\)",
    ):
        check_member_ip("10.9.9.9", "ips[0]", pools, routes)
    with pytest.raises(ValidationError, match=re.escape("broadcast address of 10.147.17.0/24")):
        check_member_ip("10.147.17.255", "ips[0]", pools, routes)
    with pytest.raises(ValidationError, match="not an IP address"):
        check_member_ip("10.147.17.9/24", "ips[0]", pools, routes)
