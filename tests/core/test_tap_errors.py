"""What an operator reads when a TAP cannot be set up, and how settings are validated.

The daemon shows str(TapError) as the network's PORT_ERROR, so these messages are part of
the interface: one line that says what to do. The real kernel paths are exercised in
tests/netns/test_tap.py; here the errno table and the pure parsing are pinned without root.
"""

from __future__ import annotations

import errno
import ipaddress

import pytest

from overlay_core.io.tap_contract import (
    NO_TUN_MESSAGE,
    NOT_ROOT_MESSAGE,
    TapError,
    config_error,
    open_error,
)
from overlay_core.io.tap_netlink import check_mac, parse_addresses, parse_routes

NAME = "ztqblmfyq4aaaac"


@pytest.mark.parametrize("code", [errno.EPERM, errno.EACCES])
def test_permission_errors_say_root_or_cap_net_admin(code: int) -> None:
    """EACCES (a 0600 /dev/net/tun) and EPERM (TUNSETIFF without CAP_NET_ADMIN) read the same."""
    error = open_error(code, NAME)
    assert str(error) == NOT_ROOT_MESSAGE == "creating a TAP device needs root or CAP_NET_ADMIN"
    assert error.errno == code


@pytest.mark.parametrize("code", [errno.ENOENT, errno.ENODEV, errno.ENXIO])
def test_missing_tun_device_says_how_to_get_it(code: int) -> None:
    """No /dev/net/tun node, or no tun driver behind it: modprobe, or the container flag."""
    assert str(open_error(code, NAME)) == NO_TUN_MESSAGE
    assert "modprobe tun" in NO_TUN_MESSAGE and "--device /dev/net/tun" in NO_TUN_MESSAGE


def test_name_in_use_says_how_to_clear_a_leftover() -> None:
    assert str(open_error(errno.EBUSY, NAME)) == (
        f"interface {NAME} already exists (another overlayd on this network, "
        f"or a leftover: ip link del {NAME})"
    )
    # Never advise deleting an interface that is not one of ours.
    assert "ip link del" not in str(open_error(errno.EBUSY, "eth0"))


def test_other_errors_name_the_device_and_the_cause() -> None:
    assert (
        str(open_error(errno.ENOMEM, NAME))
        == f"cannot create TAP device {NAME}: Cannot allocate memory"
    )
    assert (
        str(config_error(errno.EPERM, NAME, "set up"))
        == f"configuring {NAME} needs root or CAP_NET_ADMIN"
    )
    assert str(config_error(errno.EEXIST, NAME, "add address 10.0.0.1/24")) == (
        f"cannot add address 10.0.0.1/24 on {NAME}: File exists"
    )


def test_every_message_is_one_line() -> None:
    codes = [errno.EPERM, errno.ENOENT, errno.EBUSY, errno.EINVAL, errno.EMFILE, errno.EIO, None]
    for code in codes:
        for error in (open_error(code, NAME), config_error(code, NAME, "add route x")):
            assert "\n" not in str(error) and str(error)


def test_addresses_are_parsed_normalised_and_deduplicated() -> None:
    assert parse_addresses(["10.1.2.3/24", "fd00:0::1/64", "10.1.2.3/24"], NAME) == [
        ipaddress.ip_interface("10.1.2.3/24"),
        ipaddress.ip_interface("fd00::1/64"),
    ]


@pytest.mark.parametrize("text", ["10.1.2.300/24", "10.1.2.3/33", "fd00::1/129", "host"])
def test_bad_addresses_raise_tap_error(text: str) -> None:
    with pytest.raises(TapError, match="bad address"):
        parse_addresses([text], NAME)


def test_routes_are_parsed_like_ip_route() -> None:
    """Host bits in a target are dropped, as `ip route` does; no gateway means on-link."""
    assert parse_routes([("10.1.2.3/16", "10.9.0.1"), ("::/0", None)], NAME) == [
        (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_address("10.9.0.1")),
        (ipaddress.ip_network("::/0"), None),
    ]


def test_route_gateway_of_the_other_family_is_refused() -> None:
    with pytest.raises(TapError, match="other family"):
        parse_routes([("10.0.0.0/8", "fd00::1")], NAME)
    with pytest.raises(TapError, match="bad route"):
        parse_routes([("10.0.0.0/8", "not-an-ip")], NAME)


def test_mac_must_be_six_byte_unicast() -> None:
    check_mac(bytes.fromhex("02aabbccdd01"), NAME)
    with pytest.raises(TapError, match="6 bytes"):
        check_mac(b"\x02\xaa", NAME)
    with pytest.raises(TapError, match="multicast"):
        check_mac(bytes.fromhex("01005e000001"), NAME)
