"""Which local addresses a node advertises to peers as direct paths."""

from __future__ import annotations

import pytest

from overlay_core.io.interfaces import parse_networks, select_advertised

ADDRS = ["127.0.0.1", "192.168.1.7", "10.8.0.2", "::1", "fe80::1", "2001:db8::7"]


def test_default_advertises_every_non_loopback_non_link_local_address() -> None:
    """With wildcard binds and no --advertise, loopback and link-local stay private."""
    assert select_advertised(ADDRS, ["0.0.0.0", "::"], None) == [
        "192.168.1.7",
        "10.8.0.2",
        "2001:db8::7",
    ]


def test_no_ipv6_socket_means_no_ipv6_advertised() -> None:
    """Advertising an IPv6 path we cannot answer on would only waste the peer's probes."""
    assert "2001:db8::7" not in select_advertised(ADDRS, ["0.0.0.0"], None, ipv6=False)


def test_advertise_cidrs_filter_interface_addresses() -> None:
    """--advertise keeps only addresses inside the given networks (an IP is a /32)."""
    networks = parse_networks(["192.168.0.0/16", "127.0.0.1"])
    assert select_advertised(ADDRS, ["0.0.0.0"], networks) == ["127.0.0.1", "192.168.1.7"]


def test_specific_bind_is_all_that_is_advertised() -> None:
    """Bound to one address, that is the only address the socket can answer on."""
    assert select_advertised(ADDRS, ["127.0.0.1"], None) == ["127.0.0.1"]


def test_bad_advertise_names_the_offender() -> None:
    """A typo in --advertise is reported with the text that was typed."""
    with pytest.raises(ValueError, match=r"10\.0\.0\.300"):
        parse_networks(["10.0.0.0/8", "10.0.0.300"])


def test_the_search_ceiling_follows_the_largest_interface_within_jumbo_size() -> None:
    """1500-byte links keep the 1432 the node always used; a 9000-byte LAN raises it to
    8932; loopback-sized or odd virtual MTUs are capped; no interface means the default."""
    from overlay_core.io.interfaces import phys_mtu_from

    assert phys_mtu_from([1500]) == 1432
    assert phys_mtu_from([1500, 9000]) == 8932
    assert phys_mtu_from([65536]) == 8932
    assert phys_mtu_from([1280]) == 1432  # a smaller link is found by the search
    assert phys_mtu_from([]) == 1432


def test_interface_mtus_leave_out_loopback() -> None:
    from overlay_core.io.interfaces import interface_mtus

    assert 65536 not in interface_mtus()  # lo's MTU on Linux
