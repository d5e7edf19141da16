"""The roots file: which nodes everyone HELLOs, and where to find them.

One root per line, `#` starts a comment:

    <identity public text> <endpoint> [<endpoint> ...]
    e.g. 8056c2e21c:0:3fa0...b1 198.18.0.1:9993 [2001:db8::1]:9993

`overlayd --home DIR roots-entry --endpoint HOST:PORT` prints a node's line.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .effects import Endpoint, udp
from .identity import Identity


@dataclass(frozen=True, slots=True)
class RootEntry:
    identity: Identity
    endpoints: tuple[Endpoint, ...]

    def to_text(self) -> str:
        return " ".join([self.identity.to_public_text(), *(str(e) for e in self.endpoints)])


def parse_endpoint(text: str) -> Endpoint:
    """Parse `HOST:PORT` or `[V6HOST]:PORT` into a UDP endpoint; ValueError says what's wrong."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"endpoint {text!r}: IPv6 endpoints look like [2001:db8::1]:9993")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"endpoint {text!r}: expected HOST:PORT")
        if ":" in host:
            raise ValueError(f"endpoint {text!r}: put IPv6 hosts in brackets, [HOST]:PORT")
    try:
        # Literal addresses only: resolving names would block the event loop, and a
        # roots file is meant to pin where the roots are.
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"endpoint {text!r}: {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"endpoint {text!r}: port must be 1-65535")
    return udp(host, int(port_text))


def parse_roots(text: str) -> list[RootEntry]:
    roots: list[RootEntry] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        try:
            identity = Identity.from_text(words[0]).public()
            endpoints = tuple(parse_endpoint(w) for w in words[1:])
        except ValueError as exc:
            raise ValueError(f"roots file line {number}: {exc}") from None
        if not endpoints:
            raise ValueError(f"roots file line {number}: a root needs at least one endpoint")
        roots.append(RootEntry(identity, endpoints))
    return roots
