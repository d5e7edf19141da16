"""The batched data path on loopback, and its parts, measured in one process.

Two members a and b of one network are built on the FakeNet (overlay_core.testing) the
way tests/core/test_datapath.py's Pair builds them: a controller approves both, each
opens its TAP with offloads (Node.port_opened(nwid, True)) and offers partial checksums,
and a first frame each way sets up a confirmed session, a confirmed direct path (its MTU
searched) and the credentials. Then the FakeNet is left alone, its clock standing still
(nothing expires, no timer runs), and the two nodes are driven directly:

- `proto_cost`: a.receive_frames([vnet header + one TCPv4 super-frame]) -> the datagrams
  of its SendMany -> b.receive_datagrams(all of them, one batch) -> DeliverFrames; each
  side timed on its own, no sockets.
- `overlay_sockets`: the same, with a's datagrams sent through a real UdpSockets on
  127.0.0.1 (`send_many`: UDP GSO when offload=True, else sendmmsg, or one sendto each
  with batch=False) to b's, whose on_batch (recvmmsg reads, GRO runs when offload=True)
  hands them to b.receive_datagrams, as the daemon does. b is told they come from a's
  FakeNet endpoint, the path it knows (as if a NAT were in between).
- `bare_gso`: a socket pair with the same offloads and no overlay: sendmsg with
  UDP_SEGMENT, recvmsg on a UDP_GRO socket, the datagrams counted, not even split.

Pacing: a super-frame (or a GSO send of the bare pair) goes out only while fewer than
WINDOW_SUPER_FRAMES of them are in flight (sent, not yet read), else the receive buffer
overflows and the numbers measure that. A run that stops moving for STALL_S writes what
is in flight off as lost and goes on.

The super-frame is what Linux hands a TAP with TSO: IPv4, TCP with the timestamp option,
NEEDS_CSUM with the pseudo-header sum in the checksum field, gso_size = the MSS that makes
each segment's datagram exactly the path MTU (what MSS clamping gives a TCP connection
over the overlay), as many segments as fit 64 KB of IP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overlay_core.controller import Controller
from overlay_core.io.udp import MAX_READS_PER_WAKEUP, SOCKET_BUFFER_BYTES, UdpSockets
from overlay_core.io.udp_offload import (
    GRO_CMSG_SPACE,
    MAX_GSO_BYTES,
    enable_gro,
    gro_size,
    gso_control,
    probe_gso,
)
from overlay_core.proto.effects import DeliverFrames, Effect, Endpoint, SendMany, udp
from overlay_core.proto.ethernet import mac_for
from overlay_core.proto.node import Node, NodeConfig
from overlay_core.proto.offload import (
    GSO_NONE,
    GSO_TCPV4,
    NEEDS_CSUM,
    VNET_HDR_BYTES,
    VnetHeader,
)
from overlay_core.testing.fakenet import FakeNet, Host

LOOPBACK = "127.0.0.1"
# Super-frames (or bare GSO sends) in flight at most: ~4 x 64 KB, far below the 4 MB
# socket buffers, enough to keep both ends busy.
WINDOW_SUPER_FRAMES = 4
STALL_S = 0.5
# Super-frames through the proto alone before timing starts (caches, allocator).
WARMUP = 50
# What a datagram adds to a TCP segment's payload: packet header (20), verb (1), network
# id (8), AEAD tag (16); Ethernet (14), IPv4 (20), TCP with timestamps (32).
SEGMENT_OVERHEAD = 20 + 1 + 8 + 16 + 14 + 20 + 32
IP_A, IP_B = bytes([10, 147, 17, 1]), bytes([10, 147, 17, 2])
TCP_HEADER = 32
HEADERS = 14 + 20 + TCP_HEADER  # of every segment: Ethernet, IPv4, TCP
# NOP, NOP, timestamps: what Linux puts on every data segment.
TS_OPTIONS = b"\x01\x01" + struct.pack("!BBII", 8, 10, 0x01020304, 0x0A0B0C0D)
_VNET = struct.Struct("=BBHHHH")


# ---- frames ------------------------------------------------------------------------------


def _sum(data: bytes) -> int:
    """Ones'-complement sum of 16-bit words (even length), mod 0xFFFF."""
    return int.from_bytes(data, "big") % 0xFFFF


def tcp_read(macs: tuple[bytes, bytes], payload: bytes, mss: int, seq: int = 1000) -> bytes:
    """One TAP read: virtio_net_hdr + an IPv4 TCP frame from macs[1] to macs[0] carrying
    `payload` (ACK|PSH), as the kernel hands it over: NEEDS_CSUM, the checksum field
    holding the pseudo-header sum; GSO_TCPV4 with gso_size `mss` when it is longer."""
    tcp_len = TCP_HEADER + len(payload)
    ip_len = 20 + tcp_len
    if ip_len > 0xFFFF:
        raise ValueError(f"{len(payload)} bytes of payload don't fit one IPv4 packet")
    pseudo = (_sum(IP_A + IP_B) + 6 + tcp_len) % 0xFFFF or 0xFFFF
    tcp = struct.pack("!HHIIBBHHH", 40000, 5201, seq, 1, (TCP_HEADER // 4) << 4, 0x18, 502, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", pseudo) + tcp[18:] + TS_OPTIONS
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0x1234, 0x4000, 64, 6, 0, IP_A, IP_B)
    ip = ip[:10] + struct.pack("!H", -_sum(ip) % 0xFFFF) + ip[12:]
    frame = macs[0] + macs[1] + b"\x08\x00" + ip + tcp + payload
    gso = len(payload) > mss
    header = VnetHeader(
        NEEDS_CSUM, GSO_TCPV4 if gso else GSO_NONE, HEADERS, mss if gso else 0, 34, 16
    )
    return header.pack() + frame


def largest_payload(mss: int) -> int:
    """The payload of the largest super-frame of whole `mss` segments (64 KB of IP)."""
    return (0xFFFF - 20 - TCP_HEADER) // mss * mss


# ---- the two members ---------------------------------------------------------------------


class Members:
    """A root, a controller and two public members a and b of one approved network, TAPs
    opened with offloads, partial checksums offered; when built, a and b have a confirmed
    session both ways and a confirmed direct path whose MTU search has finished."""

    def __init__(self, tmp: Path) -> None:
        self.net = net = FakeNet()
        net.add_host("root0", root=True)
        ctl = net.add_host("ctl")
        controller = ctl.controller = Controller(ctl.node.identity, tmp / "controller.db")
        self.a = a = net.add_host("a", config=NodeConfig(partial_csum=True))
        self.b = b = net.add_host("b", config=NodeConfig(partial_csum=True))
        net.run(2)
        record = controller.create_network("bench", pools=["10.147.17.0/24"], now=net.now)
        self.nwid = nwid = int(record.to_json()["nwid"], 16)
        for host in (a, b):
            net.call(host, host.node.join(nwid, net.now))
            net.call(host, host.node.port_opened(nwid, True))
        net.run(2)
        for host in (a, b):
            controller.authorize(nwid, host.address, net.now)
        net.run(1)
        for src, dst in ((a, b), (b, a)):  # sessions, credentials, the switch learns
            hello = tcp_read((self.mac(dst), self.mac(src)), b"hello", 1000)
            net.call(src, src.node.receive_frames(nwid, [hello], net.now))
            net.run(0.5)
        if not net.run_until(lambda: self._ready(a, b) and self._ready(b, a), 60):
            raise RuntimeError("the two members never got a confirmed direct path")
        net.run(1)  # anything the last handshake step sent has arrived
        self.now = net.now
        peer = a.node.peers[b.address]
        path = peer.best_path(self.now)
        session = peer.tx_session
        assert path is not None and session is not None
        self.path_mtu = path.mtu
        self.suite = session.suite.name
        self.mss = self.path_mtu - SEGMENT_OVERHEAD

    def _ready(self, host: Host, other: Host) -> bool:
        peer = host.node.peers[other.address]
        path = peer.best_path(self.net.now)
        session = peer.tx_session
        return (
            session is not None
            and session.confirmed
            and path is not None
            and path.endpoint == other.endpoint
            and path.confirmed
            and path.mtu_searched is not None
        )

    def mac(self, host: Host) -> bytes:
        return mac_for(self.nwid, host.address)

    @property
    def sender(self) -> Node:
        return self.a.node

    @property
    def receiver(self) -> Node:
        return self.b.node

    def super_frame(self, payload_bytes: int) -> bytes:
        """A TAP read of a: a TCPv4 super-frame of `payload_bytes` to b, MSS segments."""
        payload = os.urandom(payload_bytes)
        return tcp_read((self.mac(self.b), self.mac(self.a)), payload, self.mss)

    def datagrams(self, effects: list[Effect]) -> list[bytes]:
        """The datagrams of a's answer to one super-frame: one SendMany to b, nothing else
        (the steady state; anything else means the setup is not what was meant)."""
        if len(effects) != 1 or not isinstance(effects[0], SendMany):
            raise RuntimeError(f"a sent {effects!r:.300}, not one SendMany")
        effect = effects[0]
        if effect.endpoint != self.b.endpoint:
            raise RuntimeError(f"a sent to {effect.endpoint}, not to b directly")
        return effect.datagrams


# ---- counting what b delivers ------------------------------------------------------------


@dataclass(slots=True)
class Delivered:
    """What b handed on: datagrams it was given, TAP writes, TCP segments and payload in
    them (a GSO write counts its gso_size pieces), anything else it returned."""

    datagrams: int = 0
    writes: int = 0
    segments: int = 0
    payload: int = 0
    other: int = 0
    last: float = 0.0

    def add(self, effects: list[Effect]) -> None:
        for effect in effects:
            if not isinstance(effect, DeliverFrames):
                self.other += 1
                continue
            for buf in effect.frames:
                _flags, _gso, hdr_len, gso_size, _start, _offset = _VNET.unpack_from(buf)
                self.writes += 1
                if not hdr_len:  # NO_OFFLOAD: no TCP segment of ours
                    self.other += 1
                    continue
                payload = len(buf) - VNET_HDR_BYTES - hdr_len
                self.payload += payload
                self.segments += -(-payload // gso_size) if gso_size else 1


# ---- the proto alone ---------------------------------------------------------------------


def proto_cost(members: Members, raw: bytes, count: int) -> dict[str, Any]:
    """Super-frames through a.receive_frames and b.receive_datagrams, no sockets."""
    a, b, nwid, now = members.sender, members.receiver, members.nwid, members.now
    source = members.a.endpoint
    send_s = receive_s = 0.0
    delivered = Delivered()
    per_frame = 0
    clock = time.perf_counter
    for i in range(WARMUP + count):
        t0 = clock()
        effects = a.receive_frames(nwid, [raw], now)
        t1 = clock()
        datagrams = members.datagrams(effects)
        t2 = clock()
        out = b.receive_datagrams(datagrams, source, now)
        t3 = clock()
        if i >= WARMUP:
            send_s += t1 - t0
            receive_s += t3 - t2
            delivered.add(out)
            per_frame = len(datagrams)
    seconds = send_s + receive_s
    return {
        "super_frames": count,
        "datagrams_per_super_frame": per_frame,
        "send_us_per_super_frame": 1e6 * send_s / count,
        "receive_us_per_super_frame": 1e6 * receive_s / count,
        "total_us_per_super_frame": 1e6 * seconds / count,
        "super_frames_per_s": count / seconds,
        "datagrams_per_s": count * per_frame / seconds,
        "gbit_per_s": delivered.payload * 8 / seconds / 1e9,
        "segments_delivered": delivered.segments,
        "payload_delivered": delivered.payload,
        "tap_writes": delivered.writes,
        "other_effects": delivered.other,
    }


# ---- pacing --------------------------------------------------------------------------------


async def _pace(in_flight: Callable[[], int], limit: int) -> bool:
    """Let the loop run until in_flight() <= limit; False if it stopped moving for STALL_S."""
    last = in_flight()
    if last <= limit:
        return True
    since = time.perf_counter()
    while True:
        await asyncio.sleep(0)
        now_in_flight = in_flight()
        if now_in_flight <= limit:
            return True
        if now_in_flight != last:
            last, since = now_in_flight, time.perf_counter()
        elif time.perf_counter() - since > STALL_S:
            return False


# ---- the overlay over real sockets ---------------------------------------------------------


async def overlay_sockets(
    members: Members, raw: bytes, count: int, offload: bool, batch: bool = True
) -> dict[str, Any]:
    """`count` super-frames: a.receive_frames -> UdpSockets -> b.receive_datagrams.
    `offload`, `batch`: UdpSockets.open's (GSO/GRO; sendmmsg/recvmmsg where not)."""
    a, b, nwid, now = members.sender, members.receiver, members.nwid, members.now
    source = members.a.endpoint
    rx = Delivered()
    stray = 0

    def on_b(datagrams: list[bytes], _source: Endpoint) -> None:
        rx.datagrams += len(datagrams)
        rx.add(b.receive_datagrams(datagrams, source, now))
        rx.last = time.perf_counter()

    def on_a(datagrams: list[bytes], _source: Endpoint) -> None:
        nonlocal stray
        stray += len(datagrams)

    b_socks = await UdpSockets.open([LOOPBACK], 0, on_batch=on_b, offload=offload, batch=batch)
    a_socks = await UdpSockets.open([LOOPBACK], 0, on_batch=on_a, offload=offload, batch=batch)
    try:
        target = udp(LOOPBACK, b_socks.port)
        sent = written_off = per_frame = 0
        stalls = 0

        def in_flight() -> int:
            return sent - rx.datagrams - written_off

        start = time.perf_counter()
        for _ in range(count):
            datagrams = members.datagrams(a.receive_frames(nwid, [raw], now))
            per_frame = len(datagrams)
            a_socks.send_many(target, datagrams)
            sent += per_frame
            if not await _pace(in_flight, (WINDOW_SUPER_FRAMES - 1) * per_frame):
                stalls += 1
                written_off = sent - rx.datagrams
        await _pace(in_flight, 0)
        seconds = (rx.last or time.perf_counter()) - start
        counters = {k: v for k, v in (a_socks.counters + b_socks.counters).items() if v}
        offloads = a_socks.offloads | {"gro": b_socks.offloads["gro"]}
    finally:
        a_socks.close()
        b_socks.close()
    payload_sent = count * (len(raw) - VNET_HDR_BYTES - HEADERS)
    segments_sent = count * -(-(len(raw) - VNET_HDR_BYTES - HEADERS) // members.mss)
    return {
        "offload_requested": offload,
        "offloads": offloads,
        "super_frames": count,
        "sent": sent,
        "received": rx.datagrams,
        "loss_pct": 100.0 * (sent - rx.datagrams) / sent,
        "segments_sent": segments_sent,
        "segments_delivered": rx.segments,
        "segment_loss_pct": 100.0 * (segments_sent - rx.segments) / segments_sent,
        "payload_sent": payload_sent,
        "payload_delivered": rx.payload,
        "tap_writes": rx.writes,
        "tap_writes_per_super_frame": rx.writes / count,
        "other_effects": rx.other,
        "stalls": stalls,
        "seconds": seconds,
        "packets_per_s": rx.datagrams / seconds,
        "super_frames_per_s": rx.segments * count / segments_sent / seconds,
        "gbit_per_s": rx.payload * 8 / seconds / 1e9,
        "socket_counters": counters,
    }


# ---- bare UDP with GSO and GRO ---------------------------------------------------------------


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
    sock.setblocking(False)
    sock.bind((LOOPBACK, 0))
    return sock


async def bare_gso(sends: int, size: int) -> dict[str, Any]:
    """`sends` sendmsg calls of as many `size`-byte datagrams as one GSO send carries,
    read with GRO; no overlay, datagrams counted from the read lengths."""
    segments = min(64, MAX_GSO_BYTES // size)
    rx_sock, tx_sock = _socket(), _socket()
    gro, gso = enable_gro(rx_sock), probe_gso(tx_sock)
    base = {"size": size, "segments_per_send": segments, "gso": gso, "gro": gro}
    if not (gro and gso):
        rx_sock.close()
        tx_sock.close()
        return base | {"available": False}
    loop = asyncio.get_running_loop()
    view = memoryview(bytearray(65536))
    received = reads = 0
    last = 0.0

    def readable() -> None:
        nonlocal received, reads, last
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                n, ancdata, _flags, _addr = rx_sock.recvmsg_into([view], GRO_CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            got = gro_size(ancdata) if ancdata else 0
            received += -(-n // got) if got else 1
            reads += 1
        last = time.perf_counter()

    loop.add_reader(rx_sock.fileno(), readable)
    try:
        target = rx_sock.getsockname()
        payload = os.urandom(size * segments)
        control = gso_control(size)
        sent = written_off = dropped = stalls = 0

        def in_flight() -> int:
            return sent - received - written_off

        start = time.perf_counter()
        for _ in range(sends):
            try:
                tx_sock.sendmsg([payload], control, 0, target)
            except (BlockingIOError, InterruptedError):
                dropped += segments
            sent += segments
            if not await _pace(in_flight, (WINDOW_SUPER_FRAMES - 1) * segments):
                stalls += 1
                written_off = sent - received
        await _pace(in_flight, 0)
        seconds = (last or time.perf_counter()) - start
    finally:
        loop.remove_reader(rx_sock.fileno())
        rx_sock.close()
        tx_sock.close()
    return base | {
        "available": True,
        "sends": sends,
        "sent": sent,
        "received": received,
        "send_dropped_full": dropped,
        "loss_pct": 100.0 * (sent - received) / sent,
        "reads": reads,
        "datagrams_per_read": received / reads if reads else 0.0,
        "stalls": stalls,
        "seconds": seconds,
        "packets_per_s": received / seconds,
        "gbit_per_s": received * size * 8 / seconds / 1e9,
    }


# ---- all of it -------------------------------------------------------------------------------


async def measure(super_frames: int, bare_size: int) -> dict[str, Any]:
    """Every measurement of this module, in one run (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="ztbb") as tmp:
        members = Members(Path(tmp))
        payload = largest_payload(members.mss)
        raw = members.super_frame(payload)
        setup = {
            "suite": members.suite,
            "path_mtu": members.path_mtu,
            "mss": members.mss,
            "payload_per_super_frame": payload,
            "segments_per_super_frame": payload // members.mss,
            "window_super_frames": WINDOW_SUPER_FRAMES,
        }
        proto = proto_cost(members, raw, super_frames)
        with_offload = await overlay_sockets(members, raw, super_frames, offload=True)
        without = await overlay_sockets(members, raw, super_frames, offload=False)
        singly = await overlay_sockets(members, raw, super_frames, offload=False, batch=False)
    # 16 times the bytes of an overlay run: GSO is that much faster, a short run is noise.
    sends = 16 * super_frames * payload // (bare_size * min(64, MAX_GSO_BYTES // bare_size))
    bare = await bare_gso(sends, bare_size)
    return {
        "setup": setup,
        "proto": proto,
        "overlay_gso_gro": with_offload,
        "overlay_no_offload": without,
        "overlay_singly": singly,
        "bare_gso_gro": bare,
    }
