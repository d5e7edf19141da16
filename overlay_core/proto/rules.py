"""Flow rules of a network, evaluated on Ethernet frames.

A network's config carries an ordered list of rules. Each rule names an action ("accept" or
"drop") and up to five conditions; a rule matches a frame when every condition it sets
matches (a rule that sets none matches every frame). Rules are tried in order and the first
match decides: a matching "drop" drops the frame, a matching "accept" accepts it and ends
evaluation; a frame no rule matches is accepted. The same rules apply to frames we send and
frames we receive, so either end of a link can enforce them.

Conditions:
    ethertype    the frame's ethertype, after one VLAN tag
    ip_protocol  IPv4 protocol / IPv6 upper-layer protocol (after extension headers)
    src_ports    inclusive (low, high) range of the TCP/UDP/SCTP source port; a rule with
    dst_ports    a port range only matches those, in the first (or only) IP fragment
    icmp_type    ICMP type for IPv4 frames, ICMPv6 type for IPv6 frames

A condition the frame can't answer (ports of an ARP frame, ICMP type of a truncated packet,
anything of a runt) doesn't match. That keeps evaluation total over arbitrary bytes, and
makes these rules network hygiene ("don't carry DHCP across a bridged site"), not a
firewall: a later IPv4/IPv6 fragment carries no ports and passes port rules, although its
first fragment, which does, is dropped.

"Either port" is two rules: drop src_ports=(67, 68), then drop dst_ports=(67, 68).

The rule data type lives with the network config (netconf.Rule); this module depends only
on the `RuleLike` shape, so configs and tests can hand in any object with those attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from .ethernet import EthernetFrame, FrameError, IpView

ACTIONS = ("accept", "drop")


class RuleLike(Protocol):
    """The attributes RuleSet reads (read-only, so a frozen dataclass satisfies it)."""

    @property
    def name(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def ethertype(self) -> int | None: ...
    @property
    def ip_protocol(self) -> int | None: ...
    @property
    def src_ports(self) -> tuple[int, int] | None: ...
    @property
    def dst_ports(self) -> tuple[int, int] | None: ...
    @property
    def icmp_type(self) -> int | None: ...


def _check_ports(name: str, ports: tuple[int, int] | None) -> None:
    if ports is not None and not (0 <= ports[0] <= ports[1] <= 0xFFFF):
        raise ValueError(f"rule {name!r}: port range {ports} is not low <= high in 0..65535")


def _needs_ip(rule: RuleLike) -> bool:
    return (
        rule.ip_protocol is not None
        or rule.src_ports is not None
        or rule.dst_ports is not None
        or rule.icmp_type is not None
    )


class _Compiled(NamedTuple):
    # A rule's conditions as plain locals for the per-frame loop (attribute access on
    # arbitrary RuleLike objects costs more than the comparisons themselves).
    drop: bool
    ethertype: int | None
    ip_protocol: int | None
    src_ports: tuple[int, int] | None
    dst_ports: tuple[int, int] | None
    icmp_type: int | None


class RuleSet:
    """The compiled rules of one network.

    Args:
        rules: in evaluation order; validated here (unknown action or bad port range raise
            ValueError), so a bad config fails when it is applied, not on the first frame.
    """

    def __init__(self, rules: Sequence[RuleLike]) -> None:
        for rule in rules:
            if rule.action not in ACTIONS:
                raise ValueError(f"rule {rule.name!r}: action must be accept or drop")
            _check_ports(rule.name, rule.src_ports)
            _check_ports(rule.name, rule.dst_ports)
        self.rules: tuple[RuleLike, ...] = tuple(rules)
        self.counters: list[int] = [0] * len(self.rules)
        """Frames dropped by each rule, by index."""
        self._compiled = tuple(
            _Compiled(
                r.action == "drop",
                r.ethertype,
                r.ip_protocol,
                r.src_ports,
                r.dst_ports,
                r.icmp_type,
            )
            for r in self.rules
        )
        # Parsing the IP header costs more than the rest of evaluation; skip it for rule
        # sets that only look at ethertypes (and for the common empty set).
        self._needs_ip = any(_needs_ip(rule) for rule in self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def evaluate(self, frame: bytes) -> int | None:
        """The index of the drop rule that drops `frame` (its counter is incremented), or
        None if the frame is accepted. Never raises for any bytes."""
        if not self.rules:
            return None
        # What the frame can't tell us stays None, and None equals no condition value, so
        # conditions on unparseable or absent fields don't match. IpView already leaves
        # ports None unless TCP/UDP/SCTP, and icmp_type None unless the protocol is the
        # ICMP of the frame's IP version, which is exactly the matching rule here.
        ethertype = protocol = src_port = dst_port = icmp_type = None
        try:
            eth = EthernetFrame.parse(frame)
            ethertype = eth.ethertype
            if self._needs_ip:
                ip = IpView.parse(frame, eth)
                protocol, src_port, dst_port = ip.protocol, ip.src_port, ip.dst_port
                icmp_type = ip.icmp_type
        except FrameError:
            pass
        for index, rule in enumerate(self._compiled):
            if rule.ethertype is not None and rule.ethertype != ethertype:
                continue
            if rule.ip_protocol is not None and rule.ip_protocol != protocol:
                continue
            if rule.src_ports is not None and (
                src_port is None or not rule.src_ports[0] <= src_port <= rule.src_ports[1]
            ):
                continue
            if rule.dst_ports is not None and (
                dst_port is None or not rule.dst_ports[0] <= dst_port <= rule.dst_ports[1]
            ):
                continue
            if rule.icmp_type is not None and rule.icmp_type != icmp_type:
                continue
            if not rule.drop:
                return None
            self.counters[index] += 1
            return index
        return None
