"""The MTU/MSS calculator's arithmetic matches what the data path really does."""

from __future__ import annotations

import pytest

from console import mtu
from overlay_core.proto import mss as proto_mss
from overlay_core.proto import netfields, vnet, wire


def test_constants_mirror_the_protocol() -> None:
    """The console may not import proto, so it copies these numbers; this pins them."""
    assert mtu.FRAME_OVERHEAD_BYTES == vnet.FRAME_OVERHEAD == 45
    assert mtu.ETHERNET_HEADER_BYTES == vnet.ETHERNET_HEADER
    assert mtu.FRAGMENT_HEADER_BYTES == wire.FRAGMENT_HEADER_BYTES
    assert mtu.MAX_DATAGRAMS == wire.MAX_FRAGMENTS
    assert (mtu.MIN_MTU, mtu.MAX_MTU) == (netfields.MIN_MTU, netfields.MAX_MTU)
    assert (mtu.MIN_MSS, mtu.MAX_MSS) == (netfields.MIN_MSS, netfields.MAX_FIXED_MSS)


@pytest.mark.parametrize("frame", [100, 1387, 1388, 2814, 5000, 9014])
def test_datagram_count_matches_fragmentation(frame: int) -> None:
    """datagrams_for agrees with wire.fragment_packet on a 1432-byte path."""
    packet = bytes(frame + mtu.FRAME_OVERHEAD_BYTES)
    assert mtu.datagrams_for(frame, 1432) == len(wire.fragment_packet(packet, 1432))


def test_auto_mss_matches_the_clamp() -> None:
    """auto MSS = the IP packet that fits one datagram minus IP and TCP headers."""
    largest = min(2800, 1432 - vnet.FRAME_OVERHEAD - vnet.ETHERNET_HEADER)
    assert mtu.auto_mss(1432, 2800, ipv6=False) == proto_mss.mss_for(largest, ipv6=False) == 1333
    assert mtu.auto_mss(1432, 2800, ipv6=True) == proto_mss.mss_for(largest, ipv6=True) == 1313


def test_the_sentence_from_the_brief() -> None:
    path = mtu.TightestPath(1432, "9e7948bd3f", "192.168.1.20:9993")
    assert mtu.mtu_sentence(2800, path) == (
        "2800: frames up to 2800 bytes; each crosses this 1432-byte path as 3 datagrams"
    )
    assert "one datagram" in mtu.mtu_sentence(1280, path)
    assert "1333" in mtu.mss_sentence("auto", 2800, path)


def test_arithmetic_shows_each_step() -> None:
    lines = mtu.arithmetic_lines(mtu.TightestPath(1432, "9e7948bd3f", "192.168.1.20:9993"), 2800)
    text = "\n".join(lines)
    for piece in (
        "path MTU 1432",
        "header 20",
        "verb 1",
        "network id 8",
        "AEAD tag 16",
        "= 1387",
        "1373",
        "MSS 1333",
        "MSS 1313",
    ):
        assert piece in text


@pytest.mark.parametrize(
    ("text", "value"), [("", None), ("default", None), ("1280", 1280), (" 9000 ", 9000)]
)
def test_check_mtu_accepts(text: str, value: int | None) -> None:
    assert mtu.check_mtu(text) == value


@pytest.mark.parametrize("text", ["1279", "9001", "abc", "-5", "1500.5"])
def test_check_mtu_refuses_with_the_daemons_words(text: str) -> None:
    with pytest.raises(ValueError, match="mtu: must be 1280-9000"):
        mtu.check_mtu(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("auto", "auto"),
        ("OFF", "off"),
        ("1360", "fixed:1360"),
        ("fixed:600", "fixed:600"),
        ("", None),
    ],
)
def test_check_mss(text: str, value: str | None) -> None:
    assert mtu.check_mss(text) == value


def test_check_mss_refuses() -> None:
    with pytest.raises(ValueError, match="mss: must be"):
        mtu.check_mss("100")
