"""Flow-rule evaluation (overlay_core.proto.rules) on real frames."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

import pytest

from overlay_core.proto.rules import RuleLike, RuleSet
from tests.core import frames


@dataclass(frozen=True, slots=True)
class Rule:
    """Stands in for netconf.Rule: any object with these attributes is RuleLike."""

    name: str
    action: str = "drop"
    ethertype: int | None = None
    ip_protocol: int | None = None
    src_ports: tuple[int, int] | None = None
    dst_ports: tuple[int, int] | None = None
    icmp_type: int | None = None


# "Either port" is spelled as two rules, one per direction.
BLOCK_DHCP = [
    Rule("dhcp4-src", ip_protocol=17, src_ports=(67, 68)),
    Rule("dhcp4-dst", ip_protocol=17, dst_ports=(67, 68)),
    Rule("dhcp6-src", ip_protocol=17, src_ports=(546, 547)),
    Rule("dhcp6-dst", ip_protocol=17, dst_ports=(546, 547)),
]
BLOCK_RA = [Rule("ra", ethertype=0x86DD, icmp_type=134)]

ARP = frames.arp_request(frames.HOST_A, "10.0.0.1", "10.0.0.2")
DISCOVER = frames.dhcp_discover(frames.HOST_A)
OFFER = frames.dhcp_offer(frames.HOST_B, frames.HOST_A)
RA = frames.router_advertisement(frames.HOST_A)
PING = frames.icmp_echo_v4(frames.HOST_A, frames.HOST_B)
SYN = frames.syn_v4()
DHCP6_SOLICIT = frames.ethernet(
    bytes.fromhex("333300010002"), frames.HOST_A, 0x86DD,
    frames.ipv6("fe80::2", "ff02::1:2", 17, frames.udp("fe80::2", "ff02::1:2", 546, 547, b"\x01abc")),
)  # fmt: skip
DNS = frames.ethernet(
    frames.HOST_B, frames.HOST_A, 0x0800,
    frames.ipv4("10.0.0.1", "10.0.0.2", 17, frames.udp("10.0.0.1", "10.0.0.2", 5353, 53, b"q")),
)  # fmt: skip


def test_a_frozen_dataclass_satisfies_rulelike() -> None:
    """The Protocol is read-only, so netconf's frozen dataclass (mimicked here) type-checks
    as RuleLike."""
    rule: RuleLike = Rule("x")
    assert RuleSet([rule]).rules == (rule,)


def test_block_dhcp_preset_drops_both_directions_and_counts() -> None:
    """block-dhcp drops a discover (68->67, caught by the src rule), an offer (67->68) and
    a DHCPv6 solicit (546->547); DNS, ARP, pings and TCP pass. Counters count drops per rule."""
    rules = RuleSet(BLOCK_DHCP)
    assert rules.evaluate(DISCOVER) == 0
    assert rules.evaluate(OFFER) == 0
    assert rules.evaluate(DHCP6_SOLICIT) == 2
    for frame in (DNS, ARP, PING, SYN, RA):
        assert rules.evaluate(frame) is None
    assert rules.counters == [2, 0, 1, 0]


def test_each_direction_rule_alone() -> None:
    """A dst-port rule matches on the destination port only, a src-port rule on the source
    only: the discover (68->67) hits dst 67..67 but not src 67..67."""
    assert RuleSet([Rule("d", dst_ports=(67, 67))]).evaluate(DISCOVER) == 0
    assert RuleSet([Rule("s", src_ports=(67, 67))]).evaluate(DISCOVER) is None
    assert RuleSet([Rule("both", src_ports=(68, 68), dst_ports=(67, 67))]).evaluate(DISCOVER) == 0
    assert (
        RuleSet([Rule("both", src_ports=(68, 68), dst_ports=(68, 68))]).evaluate(DISCOVER) is None
    )


def test_port_ranges_are_inclusive() -> None:
    """Both ends of a range match; one past either end doesn't."""
    assert RuleSet([Rule("r", dst_ports=(53, 60))]).evaluate(DNS) == 0
    assert RuleSet([Rule("r", dst_ports=(40, 53))]).evaluate(DNS) == 0
    assert RuleSet([Rule("r", dst_ports=(54, 60))]).evaluate(DNS) is None
    assert RuleSet([Rule("r", dst_ports=(40, 52))]).evaluate(DNS) is None


def test_block_ra_preset_drops_only_router_advertisements() -> None:
    """block-ra drops ICMPv6 type 134 and nothing else: not ICMPv4 pings, not DHCPv6."""
    rules = RuleSet(BLOCK_RA)
    assert rules.evaluate(RA) == 0
    for frame in (PING, DHCP6_SOLICIT, ARP, DISCOVER):
        assert rules.evaluate(frame) is None
    assert rules.counters == [1]


def test_icmp_type_follows_the_ethertype() -> None:
    """icmp_type=8 matches an IPv4 echo request (ICMP) but would not match an ICMPv6 type
    8; icmp_type=134 without an ethertype still only matches ICMPv6."""
    assert RuleSet([Rule("echo", icmp_type=8)]).evaluate(PING) == 0
    assert RuleSet([Rule("ra", icmp_type=134)]).evaluate(RA) == 0
    assert RuleSet([Rule("ra-as-v4", icmp_type=134, ethertype=0x0800)]).evaluate(RA) is None
    assert RuleSet([Rule("wrong-proto", icmp_type=134, ip_protocol=17)]).evaluate(RA) is None


def test_ports_only_match_tcp_and_udp() -> None:
    """A port rule never matches ICMP or ARP, whatever bytes sit where ports would be."""
    rules = RuleSet([Rule("all-ports", src_ports=(0, 65535))])
    assert rules.evaluate(PING) is None
    assert rules.evaluate(ARP) is None
    assert rules.evaluate(SYN) == 0


def test_ports_match_sctp_too() -> None:
    """netconf allows port rules on SCTP, whose header starts with ports like TCP/UDP's."""
    sctp = frames.ethernet(
        frames.HOST_B,
        frames.HOST_A,
        0x0800,
        frames.ipv4("10.0.0.1", "10.0.0.2", 132, struct.pack("!HHII", 3868, 3868, 0, 0)),
    )
    assert RuleSet([Rule("diameter", ip_protocol=132, dst_ports=(3868, 3868))]).evaluate(sctp) == 0


def test_first_match_wins_and_accept_stops_evaluation() -> None:
    """An accept before a drop lets the frame through without counting; order matters."""
    accept_dns_first = RuleSet(
        [Rule("dns", "accept", dst_ports=(53, 53)), Rule("udp", ip_protocol=17)]
    )
    assert accept_dns_first.evaluate(DNS) is None
    assert accept_dns_first.evaluate(DISCOVER) == 1
    assert accept_dns_first.counters == [0, 1]
    drop_first = RuleSet([Rule("udp", ip_protocol=17), Rule("dns", "accept", dst_ports=(53, 53))])
    assert drop_first.evaluate(DNS) == 0


def test_ethertype_rules_and_empty_rules() -> None:
    """An ethertype rule drops ARP (through a VLAN tag too); no rules accept everything;
    a rule with no conditions matches every frame, even a runt."""
    rules = RuleSet([Rule("no-arp", ethertype=0x0806)])
    assert rules.evaluate(ARP) == 0
    tagged_arp = ARP[:12] + struct.pack("!HH", 0x8100, 9) + ARP[12:]
    assert rules.evaluate(tagged_arp) == 0
    assert rules.evaluate(SYN) is None
    assert RuleSet([]).evaluate(ARP) is None
    assert RuleSet([Rule("everything")]).evaluate(b"\x01") == 0
    assert rules.evaluate(b"\x01") is None


def test_invalid_rules_are_refused_up_front() -> None:
    """Unknown actions and inverted or out-of-range port ranges raise ValueError at
    construction."""
    with pytest.raises(ValueError, match="action"):
        RuleSet([Rule("x", action="reject")])
    with pytest.raises(ValueError, match="port range"):
        RuleSet([Rule("x", dst_ports=(68, 67))])
    with pytest.raises(ValueError, match="port range"):
        RuleSet([Rule("x", src_ports=(0, 70000))])


def test_evaluation_never_raises_on_junk() -> None:
    """Random and truncated frames never raise; IP conditions on unparseable frames don't
    match."""
    rules = RuleSet([*BLOCK_DHCP, *BLOCK_RA, Rule("arp", ethertype=0x0806, action="accept")])
    rng = random.Random(7)
    samples = [DISCOVER, OFFER, RA, DHCP6_SOLICIT, ARP, SYN]
    for frame in samples:
        for cut in range(len(frame) + 1):
            rules.evaluate(frame[:cut])
    for _ in range(5000):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        rules.evaluate(bytes(data[: rng.randrange(len(data) + 1)]))
        rules.evaluate(rng.randbytes(rng.randrange(70)))
    # A discover cut inside its UDP header can't be matched on ports.
    assert rules.evaluate(DISCOVER[: 14 + 20 + 3]) is None
