"""The roots file: which nodes everyone HELLOs, and where to find them.

One root per line, `#` starts a comment:

    <identity public text> <endpoint> [<endpoint> ...]
    e.g. 8056c2e21c:0:3fa0...b1 198.18.0.1:9993 [2001:db8::1]:9993

`overlayd --home DIR roots-entry --endpoint HOST:PORT` prints a node's line.

Changing the roots of a running node
------------------------------------
`replace_roots(node, entries, now)` (what `Node.set_roots` does) swaps the roots list of a
live node, for `PUT /roots`, so a service started by systemd takes new roots without a
restart. The roots list is the node's only configuration that other state hangs on (each
root has a Peer flagged `is_root`, its configured endpoints map back to it, TCP fallback
links go to it), so the swap works root by root:

- a root no longer listed is forgotten like a silent peer (its session, paths, the
  endpoint it saw us at), and its TCP fallback link is closed;
- a root newly listed gets a Peer flagged as a root and a HELLO at once (without waiting
  for the next tick), and a TCP fallback link too while the node is tunneled;
- a root listed again with other endpoints counts as both: it is contacted afresh at its
  new endpoints, since its old ones may belong to someone else by now;
- a root listed again unchanged is left alone, session and all, so handing a node the
  file it already has costs nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .effects import CloseTcp, Effect, Endpoint, Event, tcp, udp
from .identity import Identity, format_address

if TYPE_CHECKING:  # outbound.py imports RootEntry from here
    from .node import Node

# Every root is a peer the node HELLOs and keeps alive; a file listing hundreds is a
# mistake (or an attack on the API) long before it is a network.
MAX_ROOTS = 64


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
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"endpoint {text!r}: port must be 1-65535")
    return udp(host, int(port_text))


def parse_roots(text: str) -> list[RootEntry]:
    """The entries of a roots file; ValueError names the first bad line and what is wrong.

    Besides the shape of each line this refuses what can only be a mistake: more than
    MAX_ROOTS roots, one root listed twice, one endpoint given to two roots (the node
    could not tell which root answered there), and a secret identity (identity.secret
    pasted where identity.public belongs: the secret would travel and be stored)."""
    roots: list[RootEntry] = []
    line_of: dict[int, int] = {}  # root address -> its line
    endpoint_of: dict[Endpoint, int] = {}  # endpoint -> the line that listed it
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"roots file line {number}"
        if len(roots) == MAX_ROOTS:  # before parsing: each identity costs a key check
            raise ValueError(f"{where}: more than {MAX_ROOTS} roots")
        words = line.split()
        if words[0].count(":") == 3:
            raise ValueError(
                f"{where}: that is a secret identity (identity.secret); a roots file takes "
                "the root's identity.public, or the line `overlayd roots-entry` prints"
            )
        try:
            identity = Identity.from_text(words[0]).public()
            endpoints = tuple(parse_endpoint(w) for w in words[1:])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not endpoints:
            raise ValueError(f"{where}: a root needs at least one endpoint")
        first = line_of.setdefault(identity.address, number)
        if first != number:
            raise ValueError(f"{where}: root {identity.address_text} is already on line {first}")
        for endpoint in endpoints:
            other = endpoint_of.setdefault(endpoint, number)
            if other != number:
                raise ValueError(f"{where}: endpoint {endpoint} is already on line {other}")
        roots.append(RootEntry(identity, endpoints))
    return roots


def roots_text(entries: Sequence[RootEntry], header: str = "") -> str:
    """A roots file for `entries`, one line each, after `header` (comment lines)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    return "".join(line + "\n" for line in [*lines, *(e.to_text() for e in entries)])


# --------------------------------------------------------------------------- live change


def replace_roots(node: Node, entries: Sequence[RootEntry], now: float) -> list[Effect]:
    """Make `entries` the roots of `node` (see the module docstring); returns the HELLOs,
    TCP fallback changes and one "roots" event, or nothing when the roots are the same."""
    out, timers = node.outbound, node.timers
    wanted = {e.identity.address: e for e in entries if e.identity.address != out.address}
    dropped = [a for a, old in out.roots.items() if wanted.get(a) != old]
    contact = [a for a, new in wanted.items() if out.roots.get(a) != new]
    out.config.roots = list(entries)
    if not dropped and not contact:
        return []
    effects: list[Effect] = []
    # Read before dropping: dropping every root empties tcp_wanted, and a tunneled node
    # would then give the new roots no TCP link until a later tick noticed.
    tunneled = bool(timers.tcp_wanted) or out.config.force_tcp
    for address in dropped:
        effects += _drop_root(node, out.roots[address])
    moved = [a for a in contact if a in out.roots]
    out.use_roots(wanted)  # in the file's order, as at start
    if contact and tunneled:
        effects += timers.want_tcp(now)  # tunneled: the new roots get their TCP links too
    for address in contact:
        peer = out.peer(wanted[address].identity, now)
        peer.is_root = True  # it may have been an ordinary peer until now
        for endpoint in wanted[address].endpoints:  # the file vouches for these endpoints
            if (path := peer.paths.get(endpoint)) is not None:
                path.configured = True
        if peer.best_path(now) is None or peer.tx_session is None:
            effects += out.hello(peer, now, out.root_endpoints(peer))
    added = [a for a in contact if a not in moved]
    removed = [a for a in dropped if a not in moved]
    effects.append(Event("roots", _summary(len(out.roots), added, removed, moved)))
    return effects


def _drop_root(node: Node, entry: RootEntry) -> list[Effect]:
    """Forget a root that is no longer listed: its peer, where it saw us, its TCP link."""
    effects: list[Effect] = []
    address = entry.identity.address
    node.timers.forget_peer(address)
    node.outbound.observed.pop(address, None)
    for endpoint in entry.endpoints:
        link = tcp(endpoint.host, endpoint.port)
        if link in node.timers.tcp_wanted:
            node.timers.tcp_wanted.discard(link)
            effects.append(CloseTcp(link))
        node.outbound.drop_tcp_paths(link)
    return effects


def _summary(count: int, added: list[int], removed: list[int], moved: list[int]) -> str:
    parts = [f"{count} root{'' if count == 1 else 's'} in use"]
    for verb, addresses in (("added", added), ("removed", removed), ("moved", moved)):
        if addresses:
            parts.append(f"{verb} {', '.join(format_address(a) for a in addresses)}")
    return "; ".join(parts)
