"""Network ids, certificates of membership and the signed network config.

Flow rules live in netrules.py and the shared errors and field checks in netfields.py;
both are re-exported here, so `from overlay_core.proto.netconf import Rule, PRESETS` works.

A network id is the controller's 40-bit address and a 24-bit network number, so anyone
holding an id knows whom to ask for its config, and a config or certificate signed by any
other key is worthless. Every member asks the controller for its config (NETWORK_CONFIG_
REQUEST) and gets either a `NetworkConfig` signed by the controller or a denial.

How membership is enforced between members (nothing here reads a clock or a socket):

1. The config lists every authorized member (`members`). A member switches frames to and
   from the listed addresses; a deauthorized member vanishes from the list in the configs
   the controller pushes right after the change, which is what cuts it off within seconds.
2. A member authorized *after* my config was issued is not in my list yet. It proves its
   membership with its certificate (COM): signed by the controller, for this network and
   its address, timestamped by the controller when it issued that member's config. I
   accept it if it verifies, agrees with my own COM (timestamps within COM_MAX_DELTA_S)
   and is newer than my config (`NetworkConfig.admits`). A deauthorized member gets no new
   COM, so its last one is older than any config issued after the deauthorization.
3. Members refresh their config every CONFIG_REFRESH_S, so honest members' COMs stay within
   one refresh interval of each other. The comparison is between two controller
   timestamps, never against a member's clock: if the controller goes offline everybody's
   COMs age together and the network keeps working, as ZeroTier's does.

Signed config bytes: canonical JSON (sorted keys, no whitespace, ASCII) followed by a
64-byte Ed25519 signature over a domain prefix and the JSON. The domain prefixes keep a
signature on a config from ever passing as one on a COM, and vice versa.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .identity import ADDRESS_MASK, Identity, format_address, is_reserved_address
from .netfields import (
    BadSignatureError,
    MalformedError,
    MssPolicy,
    NetconfError,
    Route,
    ValidationError,
    check_address,
    check_bool,
    check_interface,
    check_mtu,
    check_multicast_limit,
    check_name,
    check_route,
    is_int,
)
from .netrules import PRESETS, Rule, rules_from_json

__all__ = [
    "COM_MAX_DELTA_S",
    "CONFIG_REFRESH_S",
    "MAX_CONFIG_BYTES",
    "PRESETS",
    "BadSignatureError",
    "CertificateOfMembership",
    "MalformedError",
    "MemberEntry",
    "MemberInfo",
    "MssPolicy",
    "NetconfError",
    "NetworkConfig",
    "Route",
    "Rule",
    "ValidationError",
    "controller_of",
    "format_nwid",
    "make_nwid",
    "network_number",
    "parse_nwid",
]

NWID_NUMBER_BITS = 24
NWID_NUMBER_MASK = (1 << NWID_NUMBER_BITS) - 1
# Members ask for a fresh config (and so a fresh COM) this often.
CONFIG_REFRESH_S = 60.0
# Two refresh intervals: one lost or late refresh does not split honest members, while a
# member that stops getting configs (deauthorized, or cut off from the controller) falls out
# of the window within ~2 minutes of the others refreshing, even without the members list.
COM_MAX_DELTA_S = 2 * CONFIG_REFRESH_S
# A config travels fragmented over UDP: 15 pieces of a ~1400-byte path MTU is ~21 KB, so
# 16 KB leaves room for headers and a smaller path. ~700 members fit (see the tests).
MAX_CONFIG_BYTES = 16 * 1024
SIGNATURE_BYTES = 64
# How deep arrays and objects may nest in a config's JSON. A config nests four levels
# ({"rules": [{"src_ports": [...]}]}); the margin is for settings a newer controller adds.
# Deeper text is refused before json.loads sees it: the parser recurses once per level and
# raises RecursionError (no ValueError) at about a thousand.
MAX_JSON_DEPTH = 32
# Timestamps are seconds in a float: refuse integers a float can't hold exactly.
MAX_TIMESTAMP = 2**53
CONFIG_FORMAT_VERSION = 1

_COM_DOMAIN = b"ztui-com-v1\x00"
_CONFIG_DOMAIN = b"ztui-netconf-v1\x00"


# --------------------------------------------------------------------------- network ids


def make_nwid(controller_address: int, number: int) -> int:
    if not 0 <= number <= NWID_NUMBER_MASK:
        raise ValueError(f"a network number is 0-{NWID_NUMBER_MASK}, got {number}")
    if not 0 < controller_address <= ADDRESS_MASK:
        raise ValueError("a controller address is 40 bits and not zero")
    return controller_address << NWID_NUMBER_BITS | number


def controller_of(nwid: int) -> int:
    return nwid >> NWID_NUMBER_BITS


def network_number(nwid: int) -> int:
    return nwid & NWID_NUMBER_MASK


def format_nwid(nwid: int) -> str:
    return f"{nwid:016x}"


def parse_nwid(text: str) -> int:
    norm = text.strip().lower() if isinstance(text, str) else ""
    if len(norm) != 16 or any(c not in "0123456789abcdef" for c in norm):
        raise ValueError(f"a network id is 16 hex digits, got {text!r}")
    nwid = int(norm, 16)
    if is_reserved_address(controller_of(nwid)):
        raise ValueError(f"network id {norm} names a reserved controller address")
    return nwid


# --------------------------------------------------------------------------- certificates

_COM = struct.Struct("!BQ5sd")  # format version, nwid, member address, timestamp
COM_VERSION = 1
COM_BYTES = _COM.size + SIGNATURE_BYTES


@dataclass(frozen=True, slots=True)
class CertificateOfMembership:
    """The controller's word that `address` is a member of `nwid` as of `timestamp`.

    `agrees_with` does not check signatures: verify a peer's COM (and your own, once, when
    its config arrives) before comparing.
    """

    nwid: int
    address: int
    timestamp: float  # seconds, the controller's clock
    signature: bytes

    @classmethod
    def sign(
        cls, controller: Identity, nwid: int, address: int, timestamp: float
    ) -> CertificateOfMembership:
        if controller_of(nwid) != controller.address:
            raise ValueError("only a network's own controller can sign its certificates")
        body = cls(nwid, address, timestamp, b"")._body()
        return cls(nwid, address, timestamp, controller.sign(_COM_DOMAIN + body))

    def _body(self) -> bytes:
        return _COM.pack(COM_VERSION, self.nwid, self.address.to_bytes(5, "big"), self.timestamp)

    def verify(self, controller_public: Identity) -> bool:
        return controller_of(self.nwid) == controller_public.address and controller_public.verify(
            _COM_DOMAIN + self._body(), self.signature
        )

    def agrees_with(
        self, other: CertificateOfMembership, max_delta_s: float = COM_MAX_DELTA_S
    ) -> bool:
        return self.nwid == other.nwid and abs(self.timestamp - other.timestamp) <= max_delta_s

    def to_bytes(self) -> bytes:
        return self._body() + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> CertificateOfMembership:
        if len(data) != COM_BYTES:
            raise MalformedError(f"a certificate of membership is {COM_BYTES} bytes")
        version, nwid, raw_address, timestamp = _COM.unpack_from(data)
        address = int.from_bytes(raw_address, "big")
        if version != COM_VERSION:
            raise MalformedError(f"unknown certificate format {version}")
        if is_reserved_address(address) or not (math.isfinite(timestamp) and timestamp >= 0):
            raise MalformedError("certificate has a reserved address or a bad timestamp")
        return cls(nwid, address, timestamp, bytes(data[_COM.size :]))


# --------------------------------------------------------------------------- the config


class MemberEntry(NamedTuple):
    address: int
    active_bridge: bool  # may carry frames for MACs other than its own


class MemberInfo(NamedTuple):
    """A member's name and overlay IPs as the controller's admin set them, so every member
    can show `nas (10.147.17.22)` instead of an address. Sent as the optional top-level
    "member_info" key, which members from before it ignore (unknown keys are)."""

    address: int
    name: str
    ips: tuple[str, ...]  # plain addresses


MAX_INFO_IPS = 16  # per member; the controller refuses to assign more (queries.py)


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """What a member needs to join `nwid`, issued to one member and signed by the controller."""

    nwid: int
    name: str
    revision: int  # bumped by the controller on every change; keep the newest you get
    timestamp: float  # issue time, the controller's clock
    issued_to: int
    private: bool
    mtu: int
    mss: MssPolicy
    broadcast: bool
    multicast_limit: int
    assigned_ips: tuple[str, ...]  # "10.147.17.5/24": the member's own, prefix of its subnet
    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]  # presets first, then the network's own
    members: tuple[MemberEntry, ...]  # every authorized member, sorted by address
    com: CertificateOfMembership  # for issued_to; show it to peers
    member_info: tuple[MemberInfo, ...] = ()  # names and IPs of members, by address

    def member_addresses(self) -> frozenset[int]:
        """Build once per config and keep it; `admits` on every frame would be O(members)."""
        return frozenset(m.address for m in self.members)

    def admits(
        self, address: int, com: CertificateOfMembership | None, controller_public: Identity
    ) -> bool:
        """May frames pass between this member and `address` (see the module docstring)?

        Listed members are in. Others need a COM for this network and address that verifies,
        agrees with ours and is newer than this config: they were authorized after it.
        """
        if address in self.member_addresses():
            return True
        return (
            com is not None
            and com.nwid == self.nwid
            and com.address == address
            and com.timestamp > self.timestamp
            and com.agrees_with(self.com)
            and com.verify(controller_public)
        )

    def to_json(self) -> dict[str, Any]:
        out = self._required_json()
        if self.member_info:  # absent when empty: such configs read as before it existed
            out["member_info"] = [
                [format_address(m.address), m.name, list(m.ips)] for m in self.member_info
            ]
        return out

    def _required_json(self) -> dict[str, Any]:
        return {
            "v": CONFIG_FORMAT_VERSION,
            "nwid": format_nwid(self.nwid),
            "name": self.name,
            "revision": self.revision,
            "timestamp": self.timestamp,
            "issued_to": format_address(self.issued_to),
            "private": self.private,
            "mtu": self.mtu,
            "mss": str(self.mss),
            "broadcast": self.broadcast,
            "multicast_limit": self.multicast_limit,
            "assigned_ips": list(self.assigned_ips),
            "routes": [[r.target, r.via] for r in self.routes],
            "rules": [r.to_json() for r in self.rules],
            "members": [[format_address(m.address), m.active_bridge] for m in self.members],
            "com": self.com.to_bytes().hex(),
        }

    @classmethod
    def from_json(cls, obj: object) -> NetworkConfig:
        """Check every field's type and range. Unknown top-level keys are ignored, so a newer
        controller can add settings without cutting off older members."""
        if not isinstance(obj, Mapping):
            raise MalformedError("a network config is a JSON object")
        for key in _CONFIG_KEYS:
            if key not in obj:
                raise ValidationError(key, "missing")
        if not is_int(obj["v"]) or obj["v"] != CONFIG_FORMAT_VERSION:
            raise ValidationError("v", f"unknown config format {obj['v']!r}")
        try:
            nwid = parse_nwid(obj["nwid"])
        except ValueError as exc:
            raise ValidationError("nwid", str(exc))
        issued_to = check_address(obj["issued_to"], "issued_to")
        revision, timestamp = obj["revision"], obj["timestamp"]
        if not (is_int(revision) and revision >= 0):
            raise ValidationError("revision", "must be a whole number >= 0")
        # Compared, not math.isfinite()d: that raises OverflowError on a 400-digit integer.
        if not (is_int(timestamp) or isinstance(timestamp, float)) or not (
            0 <= timestamp <= MAX_TIMESTAMP
        ):
            raise ValidationError("timestamp", "must be seconds >= 0")
        members = []
        for i, entry in enumerate(_list(obj, "members")):
            if not (isinstance(entry, list) and len(entry) == 2):
                raise ValidationError(f"members[{i}]", "a member is [address, active_bridge]")
            address = check_address(entry[0], f"members[{i}]")
            members.append(MemberEntry(address, check_bool(entry[1], f"members[{i}]")))
        if len({m.address for m in members}) != len(members):
            raise ValidationError("members", "an address is listed twice")
        com_hex = obj["com"]
        try:
            com = CertificateOfMembership.from_bytes(bytes.fromhex(com_hex))
        except (TypeError, ValueError):
            raise ValidationError("com", "not a certificate of membership")
        if com.nwid != nwid or com.address != issued_to:
            raise ValidationError("com", "certificate is for another network or member")
        return cls(
            nwid=nwid,
            name=check_name(obj["name"]),
            revision=revision,
            timestamp=float(timestamp),
            issued_to=issued_to,
            private=check_bool(obj["private"], "private"),
            mtu=check_mtu(obj["mtu"]),
            mss=MssPolicy.parse(obj["mss"]),
            broadcast=check_bool(obj["broadcast"], "broadcast"),
            multicast_limit=check_multicast_limit(obj["multicast_limit"]),
            assigned_ips=tuple(
                check_interface(ip, f"assigned_ips[{i}]")
                for i, ip in enumerate(_list(obj, "assigned_ips"))
            ),
            routes=tuple(
                check_route(r, f"routes[{i}]") for i, r in enumerate(_list(obj, "routes"))
            ),
            rules=rules_from_json(obj["rules"]),
            members=tuple(members),
            com=com,
            member_info=_names_or_none(obj.get("member_info", []), {m.address for m in members}),
        )

    def to_signed_bytes(self, controller: Identity) -> bytes:
        if controller_of(self.nwid) != controller.address:
            raise ValueError("only a network's own controller can sign its config")
        body = canonical_json(self.to_json())
        data = body + controller.sign(_CONFIG_DOMAIN + body)
        if len(data) > MAX_CONFIG_BYTES:
            raise ValueError(f"config is {len(data)} bytes, over the {MAX_CONFIG_BYTES} limit")
        return data

    @classmethod
    def from_signed_bytes(cls, data: bytes, controller_public: Identity) -> NetworkConfig:
        """Verify and decode a config from `controller_public`, the controller whose address
        is in the network id you asked for. Raises a NetconfError saying what is wrong."""
        if not SIGNATURE_BYTES < len(data) <= MAX_CONFIG_BYTES:
            raise MalformedError(f"a signed config is 65-{MAX_CONFIG_BYTES} bytes")
        body, signature = bytes(data[:-SIGNATURE_BYTES]), bytes(data[-SIGNATURE_BYTES:])
        if not controller_public.verify(_CONFIG_DOMAIN + body, signature):
            raise BadSignatureError(
                f"config signature does not verify with {controller_public.address_text}'s key"
            )
        if json_depth(body) > MAX_JSON_DEPTH:
            raise MalformedError(f"config JSON nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            obj = json.loads(body.decode("ascii"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            raise MalformedError(f"config is not JSON: {exc}")
        config = cls.from_json(obj)
        if controller_of(config.nwid) != controller_public.address:
            raise BadSignatureError(
                f"network {format_nwid(config.nwid)} belongs to controller "
                f"{format_address(controller_of(config.nwid))}, "
                f"not {controller_public.address_text}"
            )
        if not config.com.verify(controller_public):
            raise BadSignatureError("the certificate of membership does not verify")
        return config


_CONFIG_KEYS = (
    "v",
    "nwid",
    "name",
    "revision",
    "timestamp",
    "issued_to",
    "private",
    "mtu",
    "mss",
    "broadcast",
    "multicast_limit",
    "assigned_ips",
    "routes",
    "rules",
    "members",
    "com",
)


def canonical_json(obj: object) -> bytes:
    """The one byte form of a JSON value: sorted keys, no whitespace, ASCII, no NaN."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode("ascii")


# A JSON string (its closing quote optional, so an unterminated one ends the scan in one
# pass instead of backtracking) or a bracket.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def json_depth(text: bytes) -> int:
    """How deep arrays and objects nest in JSON text, brackets inside strings not counted;
    0 for a scalar. Linear in the text. For text that isn't JSON the number means nothing,
    but json.loads refuses such text anyway."""
    depth = deepest = 0
    for token in _JSON_TOKENS.findall(text):
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _names_or_none(value: object, members: set[int]) -> tuple[MemberInfo, ...]:
    """The names, or none when any entry breaks a rule: names are for show, so a bad one
    (a newer controller's, a careless one's) costs the names, never the config."""
    try:
        return _member_info(value, members)
    except ValidationError:
        return ()


def _member_info(value: object, members: set[int]) -> tuple[MemberInfo, ...]:
    """The optional "member_info" list: [address, name, [ip, ...]] per listed member.
    Names end up on terminals, so one with a control character (an escape sequence) is
    refused like any other malformed field."""
    if not isinstance(value, list):
        raise ValidationError("member_info", "must be a list")
    out: list[MemberInfo] = []
    named: set[int] = set()
    for i, entry in enumerate(value):
        field = f"member_info[{i}]"
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], list)):
            raise ValidationError(field, "an entry is [address, name, [ips]]")
        address = check_address(entry[0], field)
        if address not in members or address in named:
            raise ValidationError(field, "names an address not listed, or twice")
        named.add(address)
        name = check_name(entry[1], field)
        if not name.isprintable():
            raise ValidationError(field, "a name holds no control characters")
        if len(entry[2]) > MAX_INFO_IPS:
            raise ValidationError(field, f"at most {MAX_INFO_IPS} IPs")
        ips = []
        for ip in entry[2]:
            try:
                if not isinstance(ip, str):  # ip_address(5) would be 0.0.0.5
                    raise TypeError
                ips.append(str(ipaddress.ip_address(ip)))
            except (TypeError, ValueError):
                raise ValidationError(field, f"{ip!r} is not an IP address") from None
        out.append(MemberInfo(address, name, tuple(ips)))
    return tuple(out)


def _refuse_constant(name: str) -> Any:
    raise MalformedError(f"{name} is not allowed in a config")


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj[key]
    if not isinstance(value, list):
        raise ValidationError(key, "must be a list")
    return value
