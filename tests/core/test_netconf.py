"""Pure tests of network ids, certificates of membership, rules and the signed config."""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import pytest

from overlay_core.proto import netconf
from overlay_core.proto.identity import Identity
from overlay_core.proto.netconf import (
    COM_MAX_DELTA_S,
    MAX_CONFIG_BYTES,
    PRESETS,
    BadSignatureError,
    CertificateOfMembership,
    MalformedError,
    MemberEntry,
    MssPolicy,
    NetworkConfig,
    Route,
    Rule,
    ValidationError,
    canonical_json,
    controller_of,
    format_nwid,
    make_nwid,
    network_number,
    parse_nwid,
)
from overlay_core.proto.netrules import rules_from_json

NOW = 1_700_000_000.5


def make_config(controller: Identity, member: int, **changes: object) -> NetworkConfig:
    nwid = make_nwid(controller.address, 7)
    timestamp = float(changes.pop("timestamp", NOW))  # type: ignore[arg-type]
    config = NetworkConfig(
        nwid=nwid,
        name="home",
        revision=3,
        timestamp=timestamp,
        issued_to=member,
        private=True,
        mtu=2800,
        mss=MssPolicy("auto"),
        broadcast=True,
        multicast_limit=32,
        assigned_ips=("10.147.17.5/24", "fd00::5/64"),
        routes=(Route("10.147.17.0/24", None), Route("192.168.1.0/24", "10.147.17.1")),
        rules=PRESETS["block-dhcp"] + (Rule("accept", "ssh", 0x0800, 6, dst_ports=(22, 22)),),
        members=(MemberEntry(member, False), MemberEntry(0x1122334455, True)),
        com=CertificateOfMembership.sign(controller, nwid, member, timestamp),
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- network ids


def test_nwid_is_controller_address_and_number(alice: Identity) -> None:
    """A network id is the controller's 40-bit address above a 24-bit number, shown as 16
    lowercase hex digits, and parses back."""
    nwid = make_nwid(alice.address, 0xABCDEF)
    assert controller_of(nwid) == alice.address
    assert network_number(nwid) == 0xABCDEF
    text = format_nwid(nwid)
    assert text == f"{alice.address:010x}abcdef" and len(text) == 16
    assert parse_nwid(text) == nwid
    assert parse_nwid(f"  {text.upper()} ") == nwid


@pytest.mark.parametrize(
    "text",
    ["", "123", "8056c2e21c00000", "8056c2e21c0000011", "8056c2e21c00000g", "0x56c2e21c000001"],
)
def test_parse_nwid_rejects_anything_but_16_hex_digits(text: str) -> None:
    """Wrong length or non-hex digits are refused with the rule in the message."""
    with pytest.raises(ValueError, match="a network id is 16 hex digits"):
        parse_nwid(text)


def test_parse_nwid_rejects_reserved_controller() -> None:
    """A network id whose controller part is a reserved address names no controller."""
    with pytest.raises(ValueError, match="reserved controller"):
        parse_nwid("0000000000000001")


def test_make_nwid_bounds(alice: Identity) -> None:
    """Numbers are 24 bits."""
    with pytest.raises(ValueError, match="network number"):
        make_nwid(alice.address, 1 << 24)


# --------------------------------------------------------------------------- certificates


def test_com_signs_verifies_and_round_trips(alice: Identity, bob: Identity) -> None:
    """A COM from the network's controller verifies with the controller's public identity
    and survives its binary encoding."""
    nwid = make_nwid(alice.address, 1)
    com = CertificateOfMembership.sign(alice, nwid, bob.address, NOW)
    assert com.verify(alice.public())
    data = com.to_bytes()
    assert len(data) == netconf.COM_BYTES
    assert CertificateOfMembership.from_bytes(data) == com


def test_com_forgeries_fail(alice: Identity, bob: Identity, mallory: Identity) -> None:
    """Another key cannot sign for alice's network, and a COM edited after signing (newer
    timestamp, other member) no longer verifies."""
    nwid = make_nwid(alice.address, 1)
    with pytest.raises(ValueError, match="own controller"):
        CertificateOfMembership.sign(mallory, nwid, bob.address, NOW)
    com = CertificateOfMembership.sign(alice, nwid, bob.address, NOW)
    assert not com.verify(mallory.public())
    assert not dataclasses.replace(com, timestamp=NOW + 1000).verify(alice.public())
    assert not dataclasses.replace(com, address=mallory.address).verify(alice.public())


def test_com_from_bytes_rejects_junk(alice: Identity, bob: Identity) -> None:
    """Wrong length, unknown format and non-finite timestamps are MalformedError (a
    ValueError)."""
    data = CertificateOfMembership.sign(alice, make_nwid(alice.address, 1), bob.address, NOW)
    raw = data.to_bytes()
    for junk in (b"", raw[:-1], raw + b"\0", b"\2" + raw[1:]):
        with pytest.raises(MalformedError):
            CertificateOfMembership.from_bytes(junk)
    nan = raw[:14] + struct.pack("!d", math.nan) + raw[22:]
    with pytest.raises(ValueError):
        CertificateOfMembership.from_bytes(nan)


def test_com_agreement_window(alice: Identity, bob: Identity, mallory: Identity) -> None:
    """Two COMs agree when they are for the same network and their controller timestamps
    are at most COM_MAX_DELTA_S (two refresh intervals) apart, in either order."""
    nwid = make_nwid(alice.address, 1)
    mine = CertificateOfMembership.sign(alice, nwid, bob.address, NOW)

    def theirs(t: float, n: int = nwid) -> CertificateOfMembership:
        return CertificateOfMembership.sign(alice, n, mallory.address, t)

    assert COM_MAX_DELTA_S == 120.0
    assert mine.agrees_with(theirs(NOW + 119))
    assert mine.agrees_with(theirs(NOW - COM_MAX_DELTA_S))
    assert not mine.agrees_with(theirs(NOW + COM_MAX_DELTA_S + 0.5))
    assert not theirs(NOW + COM_MAX_DELTA_S + 0.5).agrees_with(mine)
    assert not mine.agrees_with(theirs(NOW, make_nwid(alice.address, 2)))
    assert mine.agrees_with(theirs(NOW + 300), max_delta_s=600)


# --------------------------------------------------------------------------- rules


def test_block_dhcp_preset_drops_both_directions_of_both_dhcps() -> None:
    """block-dhcp drops UDP to or from 67-68 over IPv4 and 546-547 over IPv6."""
    got = {
        (r.action, r.ethertype, r.ip_protocol, r.src_ports, r.dst_ports)
        for r in PRESETS["block-dhcp"]
    }
    assert got == {
        ("drop", 0x0800, 17, None, (67, 68)),
        ("drop", 0x0800, 17, (67, 68), None),
        ("drop", 0x86DD, 17, None, (546, 547)),
        ("drop", 0x86DD, 17, (546, 547), None),
    }


def test_block_ra_preset_drops_advertisements_and_solicitations() -> None:
    """block-ra drops ICMPv6 router advertisements (134) and solicitations (133)."""
    got = {(r.action, r.ethertype, r.ip_protocol, r.icmp_type) for r in PRESETS["block-ra"]}
    assert got == {("drop", 0x86DD, 58, 134), ("drop", 0x86DD, 58, 133)}
    for rules in PRESETS.values():
        for rule in rules:
            rule.check()


def test_rule_json_round_trip() -> None:
    """Rules encode with unset matches left out and decode to the same rule; a single port
    is shorthand for a one-port range."""
    for rule in (*PRESETS["block-dhcp"], *PRESETS["block-ra"], Rule("accept", "all")):
        assert Rule.from_json(json.loads(json.dumps(rule.to_json()))) == rule
    assert Rule.from_json({"action": "drop", "ip_protocol": 6, "dst_ports": 22}).dst_ports == (
        22,
        22,
    )
    assert Rule("drop", "x").to_json() == {"action": "drop", "name": "x"}


@pytest.mark.parametrize(
    ("rule", "field", "reason"),
    [
        (
            {"action": "drop", "ip_protocol": 17, "dst_ports": [68, 67]},
            "dst_ports",
            "ports are 0-65535, low <= high",
        ),
        (
            {"action": "drop", "ip_protocol": 17, "src_ports": [0, 70000]},
            "src_ports",
            "ports are 0-65535, low <= high",
        ),
        (
            {"action": "drop", "dst_ports": [22, 22]},
            "dst_ports",
            "needs ip_protocol TCP, UDP or SCTP",
        ),
        (
            {"action": "drop", "ip_protocol": 6, "icmp_type": 8},
            "icmp_type",
            "needs ip_protocol ICMP or ICMPv6",
        ),
        ({"action": "drop", "ethertype": 100}, "ethertype", "must be 0x0600-0xffff"),
        (
            {"action": "drop", "ethertype": 0x0806, "ip_protocol": 6},
            "ip_protocol",
            "needs ethertype IPv4 or IPv6",
        ),
        ({"action": "drop", "ip_protocol": True}, "ip_protocol", "must be 0-255"),
        ({"action": "reject"}, "action", 'must be "accept" or "drop"'),
        ({"action": "drop", "vlan": 4}, "vlan", "unknown rule field"),
    ],
)
def test_rule_validation_names_rule_and_field(
    rule: dict[str, object], field: str, reason: str
) -> None:
    """A bad rule in a list is reported as rules[i].<field>: <rule>, so an admin knows which
    rule and which part of it to fix."""
    rules = [{"action": "accept"}, {"action": "accept"}, rule]
    with pytest.raises(ValidationError) as caught:
        rules_from_json(rules)
    assert caught.value.field == f"rules[2].{field}"
    assert reason in caught.value.rule
    assert str(caught.value).startswith(f"rules[2].{field}: ")


def test_mss_policy_text_forms() -> None:
    """MSS policy is one string: off, auto or fixed:N with N 536-8960."""
    for text in ("off", "auto", "fixed:1400", "fixed:536"):
        assert str(MssPolicy.parse(text)) == text
    for bad in ("fixed", "fixed:", "fixed:100", "fixed:99999", "fixed:1e3", "on", 1400, None):
        with pytest.raises(ValidationError, match='mss: must be "off", "auto" or "fixed:N"'):
            MssPolicy.parse(bad)


# --------------------------------------------------------------------------- configs


def test_config_signed_round_trip(alice: Identity, bob: Identity) -> None:
    """A config signed by its controller decodes, checked, to an equal config; the bytes
    are canonical JSON (sorted keys, no whitespace) plus a 64-byte signature."""
    config = make_config(alice, bob.address)
    data = config.to_signed_bytes(alice)
    assert data == config.to_signed_bytes(alice)
    body = data[:-64]
    assert body == canonical_json(json.loads(body)) and b" " not in body
    assert NetworkConfig.from_signed_bytes(data, alice.public()) == config


def test_tampered_config_is_rejected(alice: Identity, bob: Identity) -> None:
    """Any changed byte of the JSON or of the signature fails verification."""
    data = bytearray(make_config(alice, bob.address).to_signed_bytes(alice))
    for index in (10, len(data) - 70, len(data) - 1):
        tampered = bytearray(data)
        tampered[index] ^= 0x01
        with pytest.raises(BadSignatureError):
            NetworkConfig.from_signed_bytes(bytes(tampered), alice.public())
    edited = bytes(data).replace(b'"mtu":2800', b'"mtu":2801')
    with pytest.raises(BadSignatureError):
        NetworkConfig.from_signed_bytes(edited, alice.public())


def test_config_from_the_wrong_controller_is_rejected(
    alice: Identity, bob: Identity, mallory: Identity
) -> None:
    """A config only counts if signed by the controller whose address is in its network
    id: checking alice's config with mallory's key fails, and mallory signing a config for
    alice's network is refused even though her signature itself is fine."""
    data = make_config(alice, bob.address).to_signed_bytes(alice)
    with pytest.raises(BadSignatureError):
        NetworkConfig.from_signed_bytes(data, mallory.public())
    with pytest.raises(ValueError, match="own controller"):
        make_config(alice, bob.address).to_signed_bytes(mallory)
    body = canonical_json(make_config(alice, bob.address).to_json())
    forged = body + mallory.sign(netconf._CONFIG_DOMAIN + body)
    with pytest.raises(BadSignatureError, match=f"belongs to controller {alice.address_text}"):
        NetworkConfig.from_signed_bytes(forged, mallory.public())


def _signed(controller: Identity, obj: object) -> bytes:
    body = canonical_json(obj)
    return body + controller.sign(netconf._CONFIG_DOMAIN + body)


def test_config_fields_are_checked_after_the_signature(alice: Identity, bob: Identity) -> None:
    """Even a correctly signed config is refused, with the field named, when a value is out
    of range, missing, or the COM inside is for someone else."""
    good = make_config(alice, bob.address).to_json()
    cases: list[tuple[dict[str, object], str]] = [
        ({"mtu": 1000}, "mtu: must be 1280-9000"),
        ({"mss": "fixed:1"}, "mss: "),
        ({"assigned_ips": ["10.147.17.5"]}, "assigned_ips[0]: "),
        ({"routes": [["10.147.17.1/24", None]]}, "routes[0]: "),
        ({"members": [["zz", False]]}, "members[0]: "),
        ({"private": 1}, "private: must be true or false"),
        ({"revision": -1}, "revision: "),
        ({"nwid": "12"}, "nwid: a network id is 16 hex digits"),
        ({"issued_to": "1122334455"}, "com: certificate is for another network or member"),
        ({"rules": [{"action": "drop", "dst_ports": [1, 2]}]}, "rules[0].dst_ports: "),
    ]
    for change, message in cases:
        with pytest.raises(ValidationError) as caught:
            NetworkConfig.from_signed_bytes(_signed(alice, {**good, **change}), alice.public())
        assert str(caught.value).startswith(message), (change, caught.value)
    missing = {k: v for k, v in good.items() if k != "routes"}
    with pytest.raises(ValidationError, match="routes: missing"):
        NetworkConfig.from_signed_bytes(_signed(alice, missing), alice.public())


def test_config_junk_is_malformed(alice: Identity) -> None:
    """Too short, too long, or signed bytes that are not JSON: MalformedError."""
    for junk in (b"", b"x" * 64, b"x" * (MAX_CONFIG_BYTES + 1)):
        with pytest.raises(MalformedError):
            NetworkConfig.from_signed_bytes(junk, alice.public())
    not_json = b"\xff{" + alice.sign(netconf._CONFIG_DOMAIN + b"\xff{")
    with pytest.raises(MalformedError):
        NetworkConfig.from_signed_bytes(not_json, alice.public())
    nan = b'{"timestamp":NaN}'
    with pytest.raises(MalformedError):
        NetworkConfig.from_signed_bytes(
            nan + alice.sign(netconf._CONFIG_DOMAIN + nan), alice.public()
        )


def test_unknown_config_keys_are_ignored(alice: Identity, bob: Identity) -> None:
    """A newer controller may add settings; an older member still accepts the config."""
    config = make_config(alice, bob.address)
    data = _signed(alice, {**config.to_json(), "zz_future": {"x": 1}})
    assert NetworkConfig.from_signed_bytes(data, alice.public()) == config


def test_config_with_200_members_fits_in_16_kb(alice: Identity, bob: Identity) -> None:
    """A 200-member network with presets and routes stays under 16 KB (it travels
    fragmented over UDP); the encoder refuses to produce more than MAX_CONFIG_BYTES."""
    members = tuple(MemberEntry(0x1000000000 + i * 7919, i % 10 == 0) for i in range(200))
    big = make_config(
        alice,
        bob.address,
        members=members,
        rules=PRESETS["block-dhcp"] + PRESETS["block-ra"],
        name="n" * 64,
    )
    data = big.to_signed_bytes(alice)
    assert len(data) < 16 * 1024
    assert NetworkConfig.from_signed_bytes(data, alice.public()).members == members
    huge = dataclasses.replace(
        big, members=tuple(MemberEntry(0x1000000000 + i, False) for i in range(1000))
    )
    with pytest.raises(ValueError, match="limit"):
        huge.to_signed_bytes(alice)


def test_admits_listed_members_and_newer_certificates(
    alice: Identity, bob: Identity, mallory: Identity
) -> None:
    """Frames pass with listed members; an unlisted peer needs a valid COM for this
    network newer than my config (authorized after it) and within the agreement window.
    A deauthorized member's last COM predates the config that dropped it, so it fails."""
    mine = make_config(alice, bob.address)  # lists bob and 1122334455
    key = alice.public()
    nwid = mine.nwid
    assert mine.admits(0x1122334455, None, key)

    def com(t: float, address: int = mallory.address) -> CertificateOfMembership:
        return CertificateOfMembership.sign(alice, nwid, address, t)

    assert mine.admits(mallory.address, com(NOW + 5), key)  # authorized after my config
    assert not mine.admits(mallory.address, None, key)
    assert not mine.admits(mallory.address, com(NOW - 5), key)  # dropped before my config
    assert not mine.admits(mallory.address, com(NOW + COM_MAX_DELTA_S + 1), key)
    assert not mine.admits(mallory.address, com(NOW + 5, bob.address), key)  # someone else's
    forged = dataclasses.replace(com(NOW + 5), signature=bytes(64))
    assert not mine.admits(mallory.address, forged, key)
