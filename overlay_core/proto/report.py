"""Path reports: each member tells its network's controller how it reaches the others.

No overlay's controller knows whether its members are DIRECT with each other (tailscale's
control server never learns the path type; ZeroTier's controller sees only config
requests). Ours can, because every member already knows, per peer, the link it would use,
the latency, what kind of endpoint carries it and, when relayed, why (diagnose.py). So a
member sends its controller a `PathReport` (verb PATH_REPORT, over the session like a
config request) and the controller keeps the newest one per member (controller/reports.py).

A report from another node is signed by the member's identity, on top of the session's
AEAD, so the controller keeps evidence of what that member said; the controller's own
node, a member of its own network, hands its report over in-process, unsigned.
Binary, not JSON: an entry is 10 bytes, so 1,000 peers fit in ~10 KB, well
inside the fragmenter's 15 pieces even on a relayed 1280-byte path.

    0   1  format (1)
    1   8  network id
    9   5  reporter's address
    14  4  sequence: +1 per report from this process; the controller keeps the highest
           (a restart starts again at 1: the controller sees the uptime go back and takes it)
    18  4  uptime, seconds
    22  1  NAT mapping code (NAT_CODES: netcheck's words)
    23  1  flags: bit 0 this node reaches its roots only over TCP; bit 1 entries truncated;
           bit 2 stopped: reporting was switched off, this is the last report (no entries)
    24  .  our version (one length byte, UTF-8)
    .   2  entry count, then per entry:
             5  peer address
             1  link (LINKS: NONE, DIRECT, RELAY, TCP)
             1  endpoint kind (KINDS: unknown, lan, v4, v6, relay)
             1  relay reason (REASONS; 0 when DIRECT)
             2  latency in 0.1 ms, 0xffff unknown
    .   64 Ed25519 signature over SIGN_DOMAIN + everything above

When members send (Reporter): at most every REPORT_EVERY_S as a heartbeat (the controller
shows a member as online by the age of its last report), and at once, but no more often
than REPORT_MIN_GAP_S, when what it would say changes: a link, endpoint kind or reason of
any peer, its NAT verdict or TCP fallback. Latency alone is not a change (it moves on
every probe). A member can switch reporting off per network (`ztui set NWID report=no`);
it then sends one last report marked stopped, and one at each start while it stays off,
so the controller shows "reporting off" rather than a member gone silent.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeVar

from .effects import Endpoint
from .identity import Identity, format_address
from .netcheck import (
    MAPPING_DEPENDENT,
    MAPPING_INDEPENDENT,
    MAPPING_NONE,
    MAPPING_ONE_ROOT,
    MAPPING_UNKNOWN,
)
from .path import path_kind
from .states import Link
from .wire import MalformedError, Reader, pack_text

FORMAT = 1
SIGN_DOMAIN = b"ztui path report v1\x00"
SIGNATURE_BYTES = 64
MAX_ENTRIES = 1000
ENTRY_BYTES = 10
LATENCY_UNKNOWN = 0xFFFF
MAX_LATENCY_MS = (LATENCY_UNKNOWN - 1) / 10
MAX_REPORT_BYTES = 24 + 256 + 2 + MAX_ENTRIES * ENTRY_BYTES + SIGNATURE_BYTES
REPORT_EVERY_S = 30.0
REPORT_MIN_GAP_S = 2.0

FLAG_TCP_FALLBACK = 0x01
FLAG_TRUNCATED = 0x02
FLAG_STOPPED = 0x04

# Codes on the wire -> the words the API and console use. Append only: a code a node does
# not know reads as the first word of its table, never as a refusal of the whole report.
LINKS = (Link.NONE, Link.DIRECT, Link.RELAY, Link.TCP)
KINDS = ("unknown", "lan", "v4", "v6", "relay")
REASONS = (
    "",
    "tcp_only",  # this node reaches the roots only over TCP: UDP is blocked on its side
    "not_introduced",  # no direct endpoint of the peer learned yet
    "direct_lost",  # the direct path stopped answering
    "symmetric_local",  # this node's NAT gives a new port per destination
    "symmetric_peer",  # the roots saw the peer's NAT use several ports
    "router_answers",  # the peer's router answered our probes itself (port unreachable)
    "unreachable",  # ICMP unreachable: the peer's addresses are private or filtered
    "filtered",  # probes drew no answer and no error: a firewall drops them
)
NAT_CODES = (
    MAPPING_UNKNOWN,
    MAPPING_NONE,
    MAPPING_INDEPENDENT,
    MAPPING_DEPENDENT,
    MAPPING_ONE_ROOT,
)

_HEAD = struct.Struct("!B8s5sIIBB")
_ENTRY = struct.Struct("!5sBBBH")

# A direct path's kind (path.path_kind) in a report's words; no direct path is "relay".
_KIND_OF_PATH = {"lan": "lan", "ipv4": "v4", "ipv6": "v6", "tcp": "relay"}


def endpoint_kind(endpoint: Endpoint | None) -> str:
    """LAN, public IPv4 or IPv6 for a direct path's endpoint; relay when there is none."""
    return "relay" if endpoint is None else _KIND_OF_PATH[path_kind(endpoint)]


@dataclass(frozen=True, slots=True)
class ReportEntry:
    address: int
    link: Link
    kind: str  # one of KINDS
    reason: str  # one of REASONS, "" when none
    latency_ms: float | None

    def shape(self) -> tuple[int, str, str, str]:
        """What counts as a change worth reporting at once (latency does not)."""
        return (self.address, self.link, self.kind, self.reason)

    def to_json(self) -> dict[str, object]:
        return {
            "address": format_address(self.address),
            "link": self.link,
            "kind": self.kind,
            "reason": self.reason or None,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True, slots=True)
class PathReport:
    nwid: int
    member: int
    sequence: int
    uptime_s: int
    nat: str  # one of NAT_CODES
    tcp_fallback: bool
    truncated: bool
    version: str
    entries: tuple[ReportEntry, ...]
    stopped: bool = False  # reporting switched off: the last report, without entries

    def body(self) -> bytes:
        """The signed part (everything but the signature)."""
        flags = (
            (FLAG_TCP_FALLBACK if self.tcp_fallback else 0)
            | (FLAG_TRUNCATED if self.truncated else 0)
            | (FLAG_STOPPED if self.stopped else 0)
        )
        parts = [
            _HEAD.pack(
                FORMAT,
                self.nwid.to_bytes(8, "big"),
                self.member.to_bytes(5, "big"),
                self.sequence & 0xFFFFFFFF,
                min(max(0, self.uptime_s), 0xFFFFFFFF),
                _code(NAT_CODES, self.nat),
                flags,
            ),
            pack_text(self.version),
            len(self.entries).to_bytes(2, "big"),
        ]
        for e in self.entries:
            parts.append(
                _ENTRY.pack(
                    e.address.to_bytes(5, "big"),
                    _code(LINKS, e.link),
                    _code(KINDS, e.kind),
                    _code(REASONS, e.reason),
                    _latency_code(e.latency_ms),
                )
            )
        return b"".join(parts)

    def sign(self, identity: Identity) -> bytes:
        """The report as sent: body and the member's signature over it."""
        if identity.address != self.member:
            raise ValueError("a report is signed by the member it is about")
        if len(self.entries) > MAX_ENTRIES:
            raise ValueError(f"a report holds at most {MAX_ENTRIES} entries")
        body = self.body()
        return body + identity.sign(SIGN_DOMAIN + body)

    @classmethod
    def from_signed(cls, data: bytes, member: Identity) -> PathReport:
        """Parse and verify a signed report from `member`. MalformedError says why not;
        the size is checked before anything else is read, the signature before the
        entries are decoded."""
        if not _HEAD.size + 1 + 2 + SIGNATURE_BYTES <= len(data) <= MAX_REPORT_BYTES:
            raise MalformedError(f"a path report is at most {MAX_REPORT_BYTES} bytes")
        body, signature = data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]
        if not member.verify(SIGN_DOMAIN + body, signature):
            raise MalformedError("path report signature does not verify")
        reader = Reader(body)
        fmt, nwid, address, sequence, uptime, nat, flags = _HEAD.unpack(reader.take(_HEAD.size))
        if fmt != FORMAT:
            raise MalformedError(f"unknown path report format {fmt}")
        if int.from_bytes(address, "big") != member.address:
            raise MalformedError("path report names another member")
        version = reader.text()
        if not version.isprintable():  # it is shown on terminals (`ztui paths`)
            raise MalformedError("path report version has control characters")
        count = reader.u16()
        if count > MAX_ENTRIES or len(body) - reader.pos != count * ENTRY_BYTES:
            raise MalformedError("path report entry count does not match its length")
        entries = []
        seen: set[int] = set()
        for _ in range(count):
            peer, link, kind, reason, latency = _ENTRY.unpack(reader.take(ENTRY_BYTES))
            peer_address = int.from_bytes(peer, "big")
            if peer_address in seen or peer_address == member.address:
                raise MalformedError("path report lists a peer twice, or itself")
            seen.add(peer_address)
            entries.append(
                ReportEntry(
                    peer_address,
                    _word(LINKS, link),
                    _word(KINDS, kind),
                    _word(REASONS, reason),
                    None if latency == LATENCY_UNKNOWN else latency / 10,
                )
            )
        return cls(
            nwid=int.from_bytes(nwid, "big"),
            member=member.address,
            sequence=sequence,
            uptime_s=uptime,
            nat=_word(NAT_CODES, nat),
            tcp_fallback=bool(flags & FLAG_TCP_FALLBACK),
            truncated=bool(flags & FLAG_TRUNCATED),
            version=version,
            entries=tuple(entries),
            stopped=bool(flags & FLAG_STOPPED),
        )

    def shape(self) -> tuple[object, ...]:
        return (self.nat, self.tcp_fallback, tuple(e.shape() for e in self.entries))

    def to_json(self) -> dict[str, object]:
        """What the controller stores (and the API serves), without the signature."""
        return {
            "sequence": self.sequence,
            "uptime_s": self.uptime_s,
            "nat": self.nat,
            "tcp_fallback": self.tcp_fallback,
            "truncated": self.truncated,
            "version": self.version,
            "stopped": self.stopped,
            "peers": [e.to_json() for e in self.entries],
        }


W = TypeVar("W", bound=str)


def _code(table: tuple[W, ...], word: W) -> int:
    try:
        return table.index(word)
    except ValueError:
        raise ValueError(f"{word!r} is not one of {', '.join(table)}") from None


def _word(table: tuple[W, ...], code: int) -> W:
    return table[code] if code < len(table) else table[0]


def _latency_code(ms: float | None) -> int:
    if ms is None or ms != ms or ms < 0:  # NaN compares unequal to itself
        return LATENCY_UNKNOWN
    return round(min(ms, MAX_LATENCY_MS) * 10)
