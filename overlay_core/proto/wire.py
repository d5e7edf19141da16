"""Wire format: packet and fragment headers, verbs, and the payload codecs.

Packet (20-byte header, then the AEAD body):

    0   8  packet id     session packets: a per-session counter (also the nonce and the
                         replay-window index); static-key packets: 64 random bits
    8   5  destination   overlay address
    13  5  source        overlay address
    18  1  flags         bits 0-2 hop count (a relaying root increments it)
                         bit 3    FRAGMENTED: more of this packet follows in fragments
                         bits 4-5 cipher: HELLO (clear key + static AEAD), STATIC, SESSION,
                                  COOKIE (a clear reply to a HELLO, see below)
                         bit 6    COOKIE (HELLO only): a 16-byte cookie follows the clear key
                         bit 7    reserved, zero
    19  1  key id        which session key (SESSION cipher only)
    20  .  body          AEAD(verb byte + verb payload); a HELLO has its sender's 32-byte
                         Ed25519 public key in the clear first, so a stranger can check it,
                         then the cookie if bit 6 is set

The associated data is the header with the hop count and FRAGMENTED bit cleared (a root
changes the hops; fragmentation happens after sealing), plus a HELLO's clear key and cookie.

A node under load answers a HELLO from a stranger with a COOKIE packet (admission.py): the
HELLO's header with destination and source swapped and cipher COOKIE, then the 16-byte
cookie and one zero byte, 37 bytes in all, never more than the HELLO it answers. The
initiator sends its HELLO again with the cookie, which proves it receives at its address.

Fragment (any piece after the first, 21-byte header):

    0   8  packet id     of the packet it belongs to
    8   5  destination
    13  1  0xff          marks a fragment: no address starts with 0xff
    14  5  source
    19  1  number<<4 | total (total counts the head piece, so at most 15 pieces)
    20  1  hop count
    21  .  the next slice of the sealed packet
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

from .effects import Endpoint, Transport, udp

PROTOCOL_VERSION = 2  # 2: COOKIE replies and the HELLO cookie flag
HEADER_BYTES = 20
FRAGMENT_HEADER_BYTES = 21
FRAGMENT_MARKER = 0xFF
TAG_BYTES = 16
PUBLIC_KEY_BYTES = 32
MAX_FRAGMENTS = 15
MAX_HOPS = 3
HOPS_MASK = 0x07
FLAG_FRAGMENTED = 0x08
CIPHER_SHIFT = 4
CIPHER_MASK = 0x30
FLAG_COOKIE = 0x40
RESERVED_MASK = 0x80
COOKIE_BYTES = 16
COOKIE_PACKET_BYTES = 20 + COOKIE_BYTES + 1
# The flags byte of HELLO and OK(HELLO): bit 0 says the sender is a root, the others are
# features. Nodes before the features ignore every bit but bit 0, so adding one is
# compatible both ways. In a HELLO the suite bits list the session ciphers the sender
# supports; in an OK(HELLO) at most one is set, the responder's choice (none: XChaCha20).
HELLO_FLAG_ROOT = 0x01
FEATURE_AESGCM = 0x02  # session suite AES-256-GCM (crypto.Suite.AES256GCM)
FEATURE_CHACHA = 0x04  # session suite ChaCha20-Poly1305 (crypto.Suite.CHACHA20)
FEATURE_PARTIAL_CSUM = 0x08  # may be sent FRAME_PARTIAL (it finishes partial TCP checksums)
FEATURE_PUNCH = 0x10  # understands PUNCH: probes a direct path only once the peer opened its NAT
FEATURE_SUITES = FEATURE_AESGCM | FEATURE_CHACHA
# The shortest HELLO: header, the clear key, then a sealed verb byte (tag included).
HELLO_MIN_BYTES = HEADER_BYTES + PUBLIC_KEY_BYTES + TAG_BYTES + 1

# packet id, destination, source, flags, key id (the batched path packs it directly)
HEADER_STRUCT = struct.Struct("!Q5s5sBB")
_FRAGMENT = struct.Struct("!Q5sB5sBB")


class Cipher(IntEnum):
    HELLO = 0  # clear Ed25519 key of the sender, then AEAD under the static DH key
    STATIC = 1  # AEAD under the static DH key (handshake replies, errors)
    SESSION = 2  # AEAD under an ephemeral session key
    COOKIE = 3  # no AEAD: a cookie in the clear, the reply of a node under load to a HELLO


class Verb(IntEnum):
    HELLO = 1
    OK = 2
    ERROR = 3
    WHOIS = 4
    RENDEZVOUS = 5
    ECHO = 6
    PUSH_DIRECT_PATHS = 7
    USER_DATA = 8
    NETWORK_CONFIG_REQUEST = 9  # nwid (8) + our version (text)
    NETWORK_CONFIG = 10  # nwid (8) + a config signed by the controller
    FRAME = 11  # nwid (8) + an Ethernet frame
    CREDENTIALS = 12  # nwid (8) + a certificate of membership
    # nwid (8) + an Ethernet frame holding one segment of a TCP super-frame whose checksum
    # field has only the pseudo-header sum (the kernel's CHECKSUM_PARTIAL convention, see
    # offload.py). Sent only to peers whose HELLO offered FEATURE_PARTIAL_CSUM; the receiver
    # lets its TAP's offload finish the checksum, or computes it.
    FRAME_PARTIAL = 13
    # Our endpoints as the roots see them (pack_endpoints): "I have just opened my NAT
    # towards every endpoint of yours I know; probe them now" (punch.py). Sent to peers
    # whose HELLO offered FEATURE_PUNCH, through the root while there is no direct path.
    PUNCH = 14
    # A member's signed path report to its network's controller (report.py). Older nodes
    # count it as an unknown verb and drop it.
    PATH_REPORT = 15


class ErrorCode(IntEnum):
    OBJ_NOT_FOUND = 1  # WHOIS for an address the root doesn't know
    NEED_HELLO = 2  # no session with you: handshake again
    UNSUPPORTED = 3
    ACCESS_DENIED = 4  # (nwid) a private network that has not approved you
    NETWORK_NOT_FOUND = 5  # (nwid) this controller has no such network
    NEED_CREDENTIALS = 6  # (nwid) send your certificate of membership first


class MalformedError(ValueError):
    """Raised by every decoder here for bytes that don't parse. Callers count and drop."""


def addr_bytes(address: int) -> bytes:
    return address.to_bytes(5, "big")


def addr_int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


# --------------------------------------------------------------------------- headers


@dataclass(frozen=True, slots=True)
class Header:
    packet_id: int
    dest: int
    source: int
    hops: int
    fragmented: bool
    cipher: Cipher
    key_id: int
    cookie: bool = False  # a HELLO carrying a cookie after its clear key

    def pack(self) -> bytes:
        flags = (
            (self.hops & HOPS_MASK)
            | (FLAG_FRAGMENTED if self.fragmented else 0)
            | (int(self.cipher) << CIPHER_SHIFT)
            | (FLAG_COOKIE if self.cookie else 0)
        )
        return HEADER_STRUCT.pack(
            self.packet_id, addr_bytes(self.dest), addr_bytes(self.source), flags, self.key_id
        )


def is_fragment(data: bytes) -> bool:
    """A fragment: the marker at byte 13 and room for a fragment header and one byte.

    A shorter datagram with the marker is no fragment (nor a packet: parse_header refuses
    it), and saying so keeps hops_of, source_of and with_hops total on every datagram of
    HEADER_BYTES or more, which a root runs before anything is authenticated.
    """
    return len(data) > FRAGMENT_HEADER_BYTES and data[13] == FRAGMENT_MARKER


def parse_header(data: bytes) -> Header:
    if len(data) < HEADER_BYTES + TAG_BYTES + 1:
        raise MalformedError("packet too short")
    packet_id, dest, source, flags, key_id = HEADER_STRUCT.unpack_from(data)
    if flags & RESERVED_MASK:
        raise MalformedError("reserved flag bits set")
    cipher = Cipher((flags & CIPHER_MASK) >> CIPHER_SHIFT)
    if flags & FLAG_COOKIE and cipher is not Cipher.HELLO:
        raise MalformedError("cookie flag on a packet that is not a HELLO")
    if cipher is Cipher.HELLO and len(data) < (
        HELLO_MIN_BYTES + (COOKIE_BYTES if flags & FLAG_COOKIE else 0)
    ):
        raise MalformedError("HELLO too short for its clear key and a sealed verb")
    return Header(
        packet_id,
        addr_int(dest),
        addr_int(source),
        flags & HOPS_MASK,
        bool(flags & FLAG_FRAGMENTED),
        cipher,
        key_id,
        bool(flags & FLAG_COOKIE),
    )


def pack_cookie_reply(hello_header: Header, source: int, cookie: bytes) -> bytes:
    """A COOKIE packet answering `hello_header` (see the module docstring)."""
    header = Header(hello_header.packet_id, hello_header.source, source, 0, False, Cipher.COOKIE, 0)
    return header.pack() + cookie + b"\x00"


def parse_cookie_reply(data: bytes) -> tuple[Header, bytes]:
    """The header and cookie of a COOKIE packet; MalformedError for anything else."""
    if len(data) != COOKIE_PACKET_BYTES:
        raise MalformedError("cookie reply of the wrong size")
    header = parse_header(data)
    if header.cipher is not Cipher.COOKIE or data[-1] != 0:
        raise MalformedError("not a cookie reply")
    return header, data[HEADER_BYTES : HEADER_BYTES + COOKIE_BYTES]


def associated_data(header_bytes: bytes) -> bytes:
    """Header bytes with the fields a relay or the fragmenter may change zeroed."""
    return (
        header_bytes[:18]
        + bytes([header_bytes[18] & ~(HOPS_MASK | FLAG_FRAGMENTED)])
        + (header_bytes[19:HEADER_BYTES])
    )


def with_hops(data: bytes, hops: int) -> bytes:
    """The same packet or fragment with its hop count replaced (what a relay does)."""
    if is_fragment(data):
        return data[:20] + bytes([hops & HOPS_MASK]) + data[21:]
    flags = (data[18] & ~HOPS_MASK) | (hops & HOPS_MASK)
    return data[:18] + bytes([flags]) + data[19:]


def hops_of(data: bytes) -> int:
    return data[20] & HOPS_MASK if is_fragment(data) else data[18] & HOPS_MASK


def dest_of(data: bytes) -> int:
    return addr_int(data[8:13])


def source_of(data: bytes) -> int:
    return addr_int(data[14:19] if is_fragment(data) else data[13:18])


# --------------------------------------------------------------------------- fragments


@dataclass(frozen=True, slots=True)
class Fragment:
    packet_id: int
    dest: int
    source: int
    number: int
    total: int
    hops: int
    data: bytes


def parse_fragment(data: bytes) -> Fragment:
    if len(data) <= FRAGMENT_HEADER_BYTES:
        raise MalformedError("fragment too short")
    packet_id, dest, marker, source, counts, hops = _FRAGMENT.unpack_from(data)
    number, total = counts >> 4, counts & 0x0F
    if marker != FRAGMENT_MARKER or not 0 < number < total or hops & ~HOPS_MASK:
        raise MalformedError("bad fragment numbering")
    return Fragment(
        packet_id,
        addr_int(dest),
        addr_int(source),
        number,
        total,
        hops,
        data[FRAGMENT_HEADER_BYTES:],
    )


def fragment_packet(packet: bytes, max_datagram: int) -> list[bytes]:
    """Split a sealed packet into datagrams of at most `max_datagram` bytes.

    The head keeps the packet header with FRAGMENTED set; the rest get fragment headers.
    Raises ValueError if it would take more than MAX_FRAGMENTS pieces.
    """
    if len(packet) <= max_datagram:
        return [packet]
    piece = max_datagram - FRAGMENT_HEADER_BYTES
    rest = packet[max_datagram:]
    total = 1 + (len(rest) + piece - 1) // piece
    if total > MAX_FRAGMENTS:
        raise ValueError(f"packet of {len(packet)} bytes needs {total} fragments")
    head = packet[:18] + bytes([packet[18] | FLAG_FRAGMENTED]) + packet[19:max_datagram]
    out = [head]
    packet_id, dest, source = packet[0:8], packet[8:13], packet[13:18]
    hops = packet[18] & HOPS_MASK
    for number in range(1, total):
        chunk = rest[(number - 1) * piece : number * piece]
        out.append(
            packet_id
            + dest
            + bytes([FRAGMENT_MARKER])
            + source
            + bytes([(number << 4) | total, hops])
            + chunk
        )
    return out


# --------------------------------------------------------------------------- payload codecs


class Reader:
    """Bounds-checked cursor; every short read raises MalformedError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise MalformedError("payload truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "big")

    def address(self) -> int:
        return addr_int(self.take(5))

    def text(self) -> str:
        try:
            return self.take(self.u8()).decode()
        except UnicodeDecodeError:
            raise MalformedError("bad text") from None

    def endpoint(self) -> Endpoint | None:
        family = self.u8()
        if family == 0:
            return None
        if family == 4:
            host = str(ipaddress.IPv4Address(self.take(4)))
        elif family == 6:
            host = str(ipaddress.IPv6Address(self.take(16)))
        else:
            raise MalformedError("bad endpoint family")
        return udp(host, self.u16())

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def done(self) -> None:
        if self.pos != len(self.data):
            raise MalformedError("trailing bytes")


def pack_text(text: str) -> bytes:
    raw = text.encode()[:255]
    return bytes([len(raw)]) + raw


def pack_endpoint(endpoint: Endpoint | None) -> bytes:
    """UDP endpoints only; anything else (TCP, None, a name) encodes as 'unknown'."""
    if endpoint is None or endpoint.transport is not Transport.UDP:
        return b"\x00"
    try:
        ip = ipaddress.ip_address(endpoint.host)
    except ValueError:
        return b"\x00"
    family = b"\x04" if ip.version == 4 else b"\x06"
    return family + ip.packed + endpoint.port.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class Hello:
    """HELLO and OK(HELLO) share a shape: who I am, my ephemeral key, where I see you."""

    protocol: int
    version: str
    is_root: bool
    timestamp_ms: int  # sender's clock in a HELLO; the HELLO's, echoed, in an OK
    ephemeral: bytes
    observed: Endpoint | None  # the other side's physical address as the sender sees it
    features: int = 0  # FEATURE_* bits: the flags byte without HELLO_FLAG_ROOT

    def pack(self) -> bytes:
        flags = (HELLO_FLAG_ROOT if self.is_root else 0) | (self.features & 0xFE)
        return (
            bytes([self.protocol, flags])
            + pack_text(self.version)
            + self.timestamp_ms.to_bytes(8, "big")
            + self.ephemeral
            + pack_endpoint(self.observed)
        )

    @classmethod
    def parse(cls, reader: Reader) -> Hello:
        protocol, flags = reader.u8(), reader.u8()
        version = reader.text()
        timestamp = reader.u64()
        ephemeral = reader.take(PUBLIC_KEY_BYTES)
        observed = reader.endpoint()
        return cls(
            protocol,
            version,
            bool(flags & HELLO_FLAG_ROOT),
            timestamp,
            ephemeral,
            observed,
            flags & ~HELLO_FLAG_ROOT,
        )


@dataclass(frozen=True, slots=True)
class Echo:
    """ECHO and OK(ECHO): a probe id, the sender's send time, where the replier saw us."""

    echo_id: int
    timestamp_us: int
    observed: Endpoint | None = None

    def pack(self) -> bytes:
        return (
            self.echo_id.to_bytes(4, "big")
            + self.timestamp_us.to_bytes(8, "big")
            + pack_endpoint(self.observed)
        )

    @classmethod
    def parse(cls, reader: Reader) -> Echo:
        return cls(reader.u32(), reader.u64(), reader.endpoint())


# An ECHO request is padded to the size of the largest OK(ECHO) that can answer it (verb,
# packet id, echo id, time, an IPv6 endpoint), so answering one never sends more bytes to
# its source than came from there. HELLOs get the same margin over OK(HELLO).
ECHO_REQUEST_BYTES = 1 + 8 + 4 + 8 + 19
HELLO_PADDING_BYTES = 16


def echo_request(echo_id: int, timestamp_us: int) -> bytes:
    payload = Echo(echo_id, timestamp_us).pack()
    return payload + bytes(max(0, ECHO_REQUEST_BYTES - len(payload)))


def pack_ok(in_re: Verb, in_re_packet_id: int, payload: bytes) -> bytes:
    return bytes([in_re]) + in_re_packet_id.to_bytes(8, "big") + payload


def pack_error(in_re: Verb, in_re_packet_id: int, code: ErrorCode, detail: bytes = b"") -> bytes:
    return bytes([in_re]) + in_re_packet_id.to_bytes(8, "big") + bytes([code]) + detail


MAX_PUSHED_ENDPOINTS = 16  # a PUSH_DIRECT_PATHS names at most this many; more is ignored


def pack_endpoints(endpoints: list[Endpoint]) -> bytes:
    packed = [pack_endpoint(e) for e in endpoints[:MAX_PUSHED_ENDPOINTS]]
    return bytes([len(packed)]) + b"".join(packed)


def parse_endpoints(reader: Reader) -> list[Endpoint]:
    out = []
    for _ in range(reader.u8()):
        endpoint = reader.endpoint()
        if endpoint is not None:
            out.append(endpoint)
    return out
