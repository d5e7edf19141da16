"""Flow rules of a virtual network, as data: what the controller stores and signs.

Evaluating rules against frames is the data path's job (another module). The semantics it
must implement:

* A rule matches a frame when every match that is set matches (AND); unset matches are
  wildcards. `src_ports`/`dst_ports` are inclusive ranges.
* `ip_protocol` is IPv4's protocol field or IPv6's final next header, after skipping
  extension headers; a frame that is not IP never matches a rule with `ip_protocol`.
* A network's rules are tried in order and the first match decides; no match accepts.
* Presets come first, so a network's own "accept" cannot reopen what a preset drops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .ethernet import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_UDP,
    PORT_PROTOCOLS,
)
from .netfields import MAX_NAME_CHARS, ValidationError, is_int

_ICMP_PROTOCOLS = frozenset({IPPROTO_ICMP, IPPROTO_ICMPV6})

RuleAction = Literal["accept", "drop"]
_MATCHES = ("ethertype", "ip_protocol", "src_ports", "dst_ports", "icmp_type")


@dataclass(frozen=True, slots=True)
class Rule:
    """One flow rule (see the module docstring for how a list of them is evaluated).

    Ports need ip_protocol TCP, UDP or SCTP and icmp_type needs ICMP or ICMPv6, so a rule
    can never quietly mean something other than what it says.
    """

    action: RuleAction
    name: str = ""
    ethertype: int | None = None
    ip_protocol: int | None = None
    src_ports: tuple[int, int] | None = None
    dst_ports: tuple[int, int] | None = None
    icmp_type: int | None = None

    def check(self, where: str = "rule") -> None:
        """Raise ValidationError naming `<where>.<field>` for the first field out of range."""
        if self.action not in ("accept", "drop"):
            raise ValidationError(f"{where}.action", 'must be "accept" or "drop"')
        if not isinstance(self.name, str) or len(self.name) > MAX_NAME_CHARS:
            raise ValidationError(f"{where}.name", f"must be text of at most {MAX_NAME_CHARS}")
        et, proto = self.ethertype, self.ip_protocol
        if et is not None and not (is_int(et) and 0x0600 <= et <= 0xFFFF):
            # Below 0x0600 the field is an 802.3 length, not a type.
            raise ValidationError(f"{where}.ethertype", "must be 0x0600-0xffff (1536-65535)")
        if proto is not None:
            if not (is_int(proto) and 0 <= proto <= 255):
                raise ValidationError(f"{where}.ip_protocol", "must be 0-255")
            if et not in (None, ETHERTYPE_IPV4, ETHERTYPE_IPV6):
                raise ValidationError(f"{where}.ip_protocol", "needs ethertype IPv4 or IPv6")
        for name in ("src_ports", "dst_ports"):
            ports = getattr(self, name)
            if ports is None:
                continue
            if not (
                isinstance(ports, tuple)
                and len(ports) == 2
                and all(is_int(p) and 0 <= p <= 65535 for p in ports)
                and ports[0] <= ports[1]
            ):
                raise ValidationError(f"{where}.{name}", "ports are 0-65535, low <= high")
            if proto not in PORT_PROTOCOLS:
                raise ValidationError(f"{where}.{name}", "needs ip_protocol TCP, UDP or SCTP")
        if self.icmp_type is not None:
            if not (is_int(self.icmp_type) and 0 <= self.icmp_type <= 255):
                raise ValidationError(f"{where}.icmp_type", "must be 0-255")
            if proto not in _ICMP_PROTOCOLS:
                raise ValidationError(f"{where}.icmp_type", "needs ip_protocol ICMP or ICMPv6")

    def to_json(self) -> dict[str, Any]:
        """Unset matches are left out; port ranges are [low, high]."""
        out: dict[str, Any] = {"action": self.action, "name": self.name}
        for key in _MATCHES:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, obj: object, where: str = "rule") -> Rule:
        """Parse and check one rule. Unknown keys are refused: ignoring an unknown match
        would widen the rule, so a drop would drop more or an accept accept more."""
        if not isinstance(obj, Mapping):
            raise ValidationError(where, "a rule is an object")
        for key in obj:
            if key not in ("action", "name", *_MATCHES):
                raise ValidationError(f"{where}.{key}", "unknown rule field")
        matches: dict[str, Any] = {key: obj.get(key) for key in _MATCHES}
        for key in ("src_ports", "dst_ports"):
            ports = matches[key]
            if is_int(ports):  # a single port: 53 means 53-53
                matches[key] = (ports, ports)
            elif isinstance(ports, list):
                matches[key] = tuple(ports)
            elif ports is not None:
                raise ValidationError(f"{where}.{key}", "ports are 0-65535, low <= high")
        rule = cls(obj.get("action"), obj.get("name", ""), **matches)  # type: ignore[arg-type]
        rule.check(where)
        return rule


def rules_from_json(obj: object, field: str = "rules") -> tuple[Rule, ...]:
    if not isinstance(obj, list):
        raise ValidationError(field, "must be a list of rules")
    return tuple(Rule.from_json(item, f"{field}[{i}]") for i, item in enumerate(obj))


def check_rules(rules: object, field: str = "rules") -> tuple[Rule, ...]:
    """Rule objects or their JSON, checked, as a tuple."""
    if isinstance(rules, str | bytes | Mapping) or not hasattr(rules, "__iter__"):
        raise ValidationError(field, "must be a list of rules")
    out = []
    for i, rule in enumerate(rules):
        if isinstance(rule, Rule):
            rule.check(f"{field}[{i}]")
        else:
            rule = Rule.from_json(rule, f"{field}[{i}]")
        out.append(rule)
    return tuple(out)


def _udp_both_ways(name: str, ethertype: int, low: int, high: int) -> tuple[Rule, ...]:
    return (
        Rule("drop", name, ethertype, IPPROTO_UDP, dst_ports=(low, high)),
        Rule("drop", name, ethertype, IPPROTO_UDP, src_ports=(low, high)),
    )


# For bridged sites: each site keeps its own DHCP server and routers to itself.
# block-ra also drops router solicitations (133): they exist only to draw RAs, which this
# preset drops anyway, so carrying them just makes the far site's routers answer into the
# drop rule. Redirects (137) are left alone: routers send them only for on-link next hops.
PRESETS: dict[str, tuple[Rule, ...]] = {
    "block-dhcp": _udp_both_ways("block-dhcp", ETHERTYPE_IPV4, 67, 68)
    + _udp_both_ways("block-dhcp", ETHERTYPE_IPV6, 546, 547),
    "block-ra": (
        Rule("drop", "block-ra", ETHERTYPE_IPV6, IPPROTO_ICMPV6, icmp_type=134),
        Rule("drop", "block-ra", ETHERTYPE_IPV6, IPPROTO_ICMPV6, icmp_type=133),
    ),
}


def check_presets(names: object, field: str = "presets") -> tuple[str, ...]:
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise ValidationError(field, "must be a list of preset names")
    out: list[str] = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in PRESETS:  # a list is unhashable
            known = ", ".join(sorted(PRESETS))
            raise ValidationError(f"{field}[{i}]", f"unknown preset {name!r} (known: {known})")
        if name not in out:
            out.append(name)
    return tuple(out)


def preset_rules(names: tuple[str, ...]) -> tuple[Rule, ...]:
    return tuple(rule for name in names for rule in PRESETS[name])
