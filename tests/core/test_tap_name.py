"""TAP interface names: "zt" + the 64-bit network id in 13 base32 characters.

The daemon finds its network from an interface name and an operator reads the network id
from `ip link`, so the mapping must be reversible, fit the kernel's 15-character limit and
never confuse a foreign interface for one of ours.
"""

from __future__ import annotations

import random

import pytest

from overlay_core.io.tap import nwid_from_tap_name, tap_name

EDGE_NWIDS = [0, 1, 0xFF, 0x8056C2E21C000001, 0xFFFFFFFFFF000000, (1 << 64) - 1]


def _sample_nwids() -> list[int]:
    rng = random.Random(4648)
    return EDGE_NWIDS + [rng.getrandbits(64) for _ in range(2000)]


def test_known_name() -> None:
    """The encoding is RFC 4648 base32, lowercase, unpadded: pinned so names never change
    between releases (a rename would orphan firewall rules that name the interface)."""
    assert tap_name(0x8056C2E21C000001) == "ztqblmfyq4aaaac"
    assert tap_name(0) == "ztaaaaaaaaaaaaa"
    assert tap_name((1 << 64) - 1) == "zt7777777777776"


@pytest.mark.parametrize("nwid", _sample_nwids())
def test_round_trip_and_length(nwid: int) -> None:
    """Every 64-bit id maps to a 15-character name (IFNAMSIZ - 1) that maps back to it."""
    name = tap_name(nwid)
    assert len(name) == 15
    assert name == name.lower() and name.isascii()
    assert nwid_from_tap_name(name) == nwid


def test_distinct_ids_give_distinct_names() -> None:
    """No two network ids share an interface name."""
    nwids = set(_sample_nwids())
    assert len({tap_name(n) for n in nwids}) == len(nwids)


def test_one_controllers_networks_share_a_prefix() -> None:
    """The first 8 base32 characters are exactly the 40-bit controller address, so `ip link`
    groups one controller's networks together."""
    controller = 0x8056C2E21C
    names = {tap_name(controller << 24 | number) for number in (1, 2, 0xFFFFFF)}
    assert {name[:10] for name in names} == {"ztqblmfyq4"}
    assert tap_name(0x8056C2E21D << 24 | 1)[:10] != "ztqblmfyq4"


@pytest.mark.parametrize(
    "name",
    [
        "eth0",
        "lo",
        "zt0",
        "ztqblmfyq4aaaa",  # 14 characters
        "ztqblmfyq4aaaaca",  # 16 characters
        "ztQBLMFYQ4AAAAC",  # upper case is not what we create
        "ztqblmfyq4aaa0c",  # 0 is not in the base32 alphabet
        "xxqblmfyq4aaaac",
        "ztqblmfyq4aaaad",  # last character carries a set padding bit: not canonical
        "",
    ],
)
def test_foreign_names_are_not_ours(name: str) -> None:
    """Names tap_name() cannot produce give None, never a wrong network id."""
    assert nwid_from_tap_name(name) is None


@pytest.mark.parametrize("nwid", [-1, 1 << 64])
def test_out_of_range_ids_are_refused(nwid: int) -> None:
    with pytest.raises(ValueError):
        tap_name(nwid)
