"""Errors and field checks shared by the network config codec and the controller.

The controller checks an admin's input with the same functions a member uses to check a
config it received, so "mtu: must be 1280-9000" reads the same in `ztui` and in a log.
Every check returns the normalised value or raises `ValidationError(field, rule)`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal, NamedTuple, cast

from .identity import is_reserved_address

MIN_MTU = 1280  # IPv6 minimum link MTU
MAX_MTU = 9000  # jumbo frames
MIN_MSS = 536  # RFC 9293 default MSS; clamping below it breaks hosts that assume it
MAX_FIXED_MSS = MAX_MTU - 40  # IPv4 and TCP headers without options
MAX_NAME_CHARS = 64
MAX_MULTICAST_LIMIT = 4096


class NetconfError(ValueError):
    """Base of the config and controller errors; a ValueError, so callers may catch either."""


class MalformedError(NetconfError):
    """Bytes or JSON that do not parse. Callers count and drop."""


class BadSignatureError(NetconfError):
    """The signature does not verify, or the signer is not the network's controller."""


class ValidationError(NetconfError):
    """A field with a value outside its rule; str() reads like "mtu: must be 1280-9000"."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def is_int(value: object) -> bool:
    """A JSON integer: bool is an int subclass in Python, but `true` is not a port number."""
    return isinstance(value, int) and not isinstance(value, bool)


def ascii_int(text: str, max_digits: int = 9) -> int | None:
    """`text` as a whole number if it is 1 to `max_digits` ASCII digits, else None.

    str.isdigit() alone says yes to "²" (which int() refuses with a ValueError) and to
    "١٤٠٠" (which int() reads as 1400), and int() refuses more than 4300 digits with a
    ValueError too: text from a request is held to plain, short digits first."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


@dataclass(frozen=True, slots=True)
class MssPolicy:
    """TCP MSS clamping in the data path, written "off", "auto" or "fixed:N" everywhere
    (database, API, config JSON), so one string says it all and typos fail loudly.

    auto clamps SYNs to what the path MTU allows; fixed:N clamps to at most N (the data path
    still lowers it for the frame's family and the network MTU); off leaves SYNs alone.
    """

    mode: Literal["off", "auto", "fixed"]
    value: int = 0  # the clamp for "fixed"; 0 otherwise

    @classmethod
    def parse(cls, text: object, field: str = "mss") -> MssPolicy:
        if text == "off" or text == "auto":
            return cls(text)
        if isinstance(text, str) and text.startswith("fixed:"):
            value = ascii_int(text[len("fixed:") :])
            if value is not None and MIN_MSS <= value <= MAX_FIXED_MSS:
                return cls("fixed", value)
        raise ValidationError(
            field, f'must be "off", "auto" or "fixed:N" with N {MIN_MSS}-{MAX_FIXED_MSS}'
        )

    def __str__(self) -> str:
        return f"fixed:{self.value}" if self.mode == "fixed" else self.mode


def printable(text: str) -> str:
    """`text` with every non-printable character (a tab, a no-break space, an ESC that
    starts a terminal escape) as "?", for what ends up on terminals and in logs."""
    return "".join(c if c.isprintable() else "?" for c in text)


def check_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
        raise ValidationError(field, f"must be text of at most {MAX_NAME_CHARS} characters")
    return value


def check_mtu(value: object, field: str = "mtu") -> int:
    if not (is_int(value) and MIN_MTU <= cast(int, value) <= MAX_MTU):
        raise ValidationError(field, f"must be {MIN_MTU}-{MAX_MTU}")
    return cast(int, value)


def check_multicast_limit(value: object, field: str = "multicast_limit") -> int:
    if not (is_int(value) and 0 <= cast(int, value) <= MAX_MULTICAST_LIMIT):
        raise ValidationError(field, f"must be 0-{MAX_MULTICAST_LIMIT}")
    return cast(int, value)


def check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, "must be true or false")
    return value


class Route(NamedTuple):
    target: str  # a network in CIDR form, host bits zero
    via: str | None  # a gateway address of the same family; None: on the virtual LAN


def check_route(value: object, field: str = "route") -> Route:
    """A route from "10.0.0.0/24", ["10.0.0.0/24", gateway or None] or a Route."""
    target, via = value, None
    if isinstance(value, list | tuple) and len(value) == 2:
        target, via = value
    if not isinstance(target, str) or not (via is None or isinstance(via, str)):
        raise ValidationError(field, 'a route is "CIDR" or [CIDR, gateway or null]')
    net = check_network(target, field)
    if via is None:
        return Route(str(net), None)
    try:
        gateway = ipaddress.ip_address(via)
    except ValueError:
        raise ValidationError(field, f"gateway {via!r} is not an IP address")
    if gateway.version != net.version:
        raise ValidationError(field, "the gateway must be the same IP version as the target")
    return Route(str(net), str(gateway))


def check_network(text: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR with its host bits zero; "10.0.0.1/24" is refused with the likely intent."""
    if "/" not in text:
        raise ValidationError(field, f"{text!r} is not a network like 10.147.17.0/24")
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        pass
    try:
        meant = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValidationError(field, f"{text!r} is not a network like 10.147.17.0/24")
    raise ValidationError(field, f"{text!r} has host bits set; did you mean {meant}?")


def check_interface(value: object, field: str) -> str:
    """An assigned address with its prefix length, "10.147.17.5/24", normalised."""
    try:
        if not isinstance(value, str) or "/" not in value:
            raise ValueError(value)
        return str(ipaddress.ip_interface(value))
    except ValueError:
        raise ValidationError(field, "an assigned address is like 10.147.17.5/24")


def check_address(value: object, field: str) -> int:
    """A node address in its 10-hex-digit text form."""
    text = value if isinstance(value, str) else ""
    if len(text) != 10 or any(c not in "0123456789abcdef" for c in text):
        raise ValidationError(field, "an address is 10 lowercase hex digits")
    address = int(text, 16)
    if is_reserved_address(address):
        raise ValidationError(field, f"{text} is a reserved address")
    return address
