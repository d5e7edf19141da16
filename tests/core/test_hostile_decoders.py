"""Regressions from fuzzing (tests/fuzz): bytes a stranger or a hostile config can send
that made a decoder raise something other than its documented error. Each test is named
after what it protects and failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlay_core.proto import wire
from overlay_core.proto.crypto import open_
from overlay_core.proto.effects import udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.netconf import (
    _CONFIG_DOMAIN,
    MAX_JSON_DEPTH,
    MalformedError,
    MssPolicy,
    NetworkConfig,
    ValidationError,
    json_depth,
)
from overlay_core.proto.netrules import check_presets
from overlay_core.proto.node import Node, NodeConfig
from overlay_core.testing.fakenet import _seeded
from tests.core.test_netconf import make_config

DATA = Path(__file__).resolve().parent.parent / "data"
NOW = 1_700_000_000.0
LEAF_AT = udp("198.18.5.7", 41000)


def golden_root() -> Node:
    """The root of tests/core/test_golden.py, which the golden HELLO is addressed to."""
    return Node(
        Identity.generate(_seeded(11)), NodeConfig(version="0.1.0", is_root=True), _seeded(33)
    )


def test_a_hello_too_short_for_its_key_tag_and_verb_is_malformed_not_a_crash() -> None:
    """Between 37 and 68 bytes a HELLO passed parse_header, and a body shorter than an
    AEAD tag after the clear key made libsodium raise ValueError out of receive_datagram."""
    hello = (DATA / "hello.bin").read_bytes()
    root = golden_root()
    for size in range(wire.HEADER_BYTES + wire.TAG_BYTES + 1, wire.HELLO_MIN_BYTES):
        with pytest.raises(wire.MalformedError):
            wire.parse_header(hello[:size])
        assert root.receive_datagram(hello[:size], LEAF_AT, NOW) == []
    assert root.drops["malformed"] == wire.HELLO_MIN_BYTES - (
        wire.HEADER_BYTES + wire.TAG_BYTES + 1
    )
    wire.parse_header(hello[: wire.HELLO_MIN_BYTES])  # the shortest HELLO still parses


def test_open_says_none_for_a_ciphertext_shorter_than_a_tag() -> None:
    header = bytes(wire.HEADER_BYTES)
    for size in range(wire.TAG_BYTES):
        assert open_(bytes(32), header, header, bytes(size)) is None
    assert open_(bytes(32), header, header, bytes(wire.TAG_BYTES)) is None  # a wrong tag


def test_a_root_drops_a_datagram_too_short_for_the_fragment_header_it_claims() -> None:
    """20 or 21 bytes with the fragment marker at byte 13: the root's relay path read the
    hop count at byte 20 and raised IndexError."""
    root = golden_root()
    for size in (20, 21):
        data = bytes(13) + bytes([wire.FRAGMENT_MARKER]) + bytes(size - 14)
        assert not wire.is_fragment(data)
        assert wire.hops_of(data) == 0 and len(wire.with_hops(data, 1)) == size
        assert root.receive_datagram(data, LEAF_AT, NOW) == []
        assert root.receive_datagram(b"\xff" * size, LEAF_AT, NOW) == []
    assert wire.is_fragment(bytes(13) + bytes([wire.FRAGMENT_MARKER]) + bytes(8))  # 22 bytes


def test_a_signed_config_nested_too_deep_is_malformed_not_a_recursion_error() -> None:
    controller = Identity.generate(_seeded(77))
    for depth in (MAX_JSON_DEPTH + 1, 5000):
        body = b'{"v":' + b"[" * depth + b"]" * depth + b"}"
        signed = body + controller.sign(_CONFIG_DOMAIN + body)
        with pytest.raises(MalformedError, match="nests deeper"):
            NetworkConfig.from_signed_bytes(signed, controller.public())
    body = b'{"v":' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    with pytest.raises(ValidationError):  # parsed, then refused for what it says
        NetworkConfig.from_signed_bytes(
            body + controller.sign(_CONFIG_DOMAIN + body), controller.public()
        )


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert json_depth(b"1") == 0
    assert json_depth(b'{"a":[[1],{"b":[]}]}') == 4
    assert json_depth(b'["[[[[", "\\"[[["]') == 1
    assert json_depth(b'"' + b'\\"' * 5000) == 0  # unterminated: one linear pass


def test_a_config_timestamp_too_large_for_a_float_is_a_validation_error() -> None:
    """A 400-digit timestamp made math.isfinite raise OverflowError."""
    controller = Identity.generate(_seeded(77))
    obj = make_config(controller, 0x0102030405).to_json()
    obj["timestamp"] = 10**400
    with pytest.raises(ValidationError, match="timestamp"):
        NetworkConfig.from_json(obj)


def test_an_mss_policy_of_thousands_of_digits_is_a_validation_error() -> None:
    """int() refuses more than 4300 digits with a plain ValueError."""
    with pytest.raises(ValidationError, match="mss"):
        MssPolicy.parse("fixed:" + "9" * 5000)
    assert MssPolicy.parse("fixed:01400") == MssPolicy("fixed", 1400)


def test_preset_names_that_are_not_text_are_a_validation_error() -> None:
    """A list as a preset name made the PRESETS lookup raise TypeError (unhashable)."""
    with pytest.raises(ValidationError, match=r"presets\[0\]"):
        check_presets([["block-dhcp"]])
