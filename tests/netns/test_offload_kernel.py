"""overlay_core.proto.offload against the kernel's own TCP segmentation, on real TAPs.

In a fresh network namespace, two TAPs hang off one Linux bridge: `zo-gso` is opened with
IFF_VNET_HDR and TUNSETOFFLOAD(CSUM|TSO4|TSO6), as the node will open its TAPs; `zo-plain`
has no offloads at all. A super-frame written into zo-gso with a GSO vnet header is
forwarded by the bridge to zo-plain, which cannot take it whole, so the kernel segments it
in software (skb_gso_segment) and completes every checksum; we read the segments from
zo-plain and compare them byte for byte with `segment()`'s. Then `coalesce()`'s output is
written into zo-gso: the kernel must accept every buffer (the write succeeds) and what comes
out of zo-plain must be the segments we started from.

How the TAPs get into the namespace without moving this process: a child started with
`ip netns exec` opens /dev/net/tun twice and passes the two descriptors back over a unix
socket (SCM_RIGHTS). A TUN file belongs to the namespace it was opened in, so TUNSETIFF
from here creates the devices there, and reads and writes work from any namespace.
The namespace (and with it the bridge and the TAPs) is deleted however the test ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from overlay_core.proto.offload import (
    NEEDS_CSUM,
    NO_OFFLOAD,
    coalesce,
    segment,
    split_vnet,
    validate,
)
from tests.core import frames
from tests.core.test_offload import (
    ACK,
    CWR,
    FIN,
    MAC_A,
    PSH,
    RST,
    SYN,
    URG,
    gso_frame,
    pattern,
    pseudo_sum,
    tcp_frame,
    udp_frame,
    with_ip_options,
)

pytestmark = pytest.mark.netns

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x1, 0x2, 0x4
GSO_TAP, PLAIN_TAP = "zo-gso", "zo-plain"
READY_TIMEOUT_S = 5.0
FRAME_TIMEOUT_S = 2.0
QUIET_S = 0.2  # after the expected frames: anything more would be an extra
MSS = {False: 1448, True: 1428}  # 1500-byte IP packets with the timestamp option

# Runs inside the namespace: no IPv6 on the new devices (no ND/MLD noise), then two TUN
# files, handed back over the inherited unix socket given as argv[1].
OPENER = """
import os, socket, sys
for conf in ("all", "default"):
    with open(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "w") as f:
        f.write("1")
sock = socket.socket(fileno=int(sys.argv[1]))
socket.send_fds(sock, [b"tun"], [os.open("/dev/net/tun", os.O_RDWR) for _ in range(2)])
"""


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def _ip(ns: str, *args: str) -> None:
    proc = _sh("ip", "-n", ns, *args)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr}"


@dataclass
class Taps:
    ns: str
    gso: int  # fd of zo-gso: vnet header on every read and write
    plain: int  # fd of zo-plain: bare frames

    def read_plain(self, count: int) -> list[bytes]:
        """Frames from zo-plain sent by our test MAC (others skipped): `count` of them,
        then QUIET_S more to catch extras; fewer if the deadline passes first."""
        got: list[bytes] = []
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        quiet_until: float | None = None
        while True:
            now = time.monotonic()
            if len(got) >= count and quiet_until is None:
                quiet_until = now + QUIET_S
            end = quiet_until if quiet_until is not None else deadline
            if now >= end:
                return got
            ready, _, _ = select.select([self.plain], [], [], end - now)
            if not ready:
                continue
            try:
                frame = os.read(self.plain, 70000)
            except BlockingIOError:
                continue
            if frame[6:12] == MAC_A:
                got.append(frame)

    def write_gso(self, buffer: bytes) -> None:
        assert os.write(self.gso, buffer) == len(buffer)


def _bridge_ports_forwarding(ns: str) -> bool:
    proc = _sh("bridge", "-n", ns, "-j", "link", "show")
    if proc.returncode != 0:  # an older `bridge` without -n: ask from inside
        proc = _sh("ip", "netns", "exec", ns, "bridge", "-j", "link", "show")
    ports = {p["ifname"]: p.get("state") for p in json.loads(proc.stdout or "[]")}
    return all(ports.get(name) == "forwarding" for name in (GSO_TAP, PLAIN_TAP))


@pytest.fixture
def taps() -> Iterator[Taps]:
    ns = "ztoff-" + secrets.token_hex(3)
    fds: list[int] = []
    created = _sh("ip", "netns", "add", ns)
    assert created.returncode == 0, created.stderr
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with ours, theirs:
            opener = subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, "-c", OPENER, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert opener.returncode == 0, opener.stderr
            _, fds, _, _ = socket.recv_fds(ours, 16, 2)
        assert len(fds) == 2
        gso, plain = fds
        ifreq = struct.pack("16sH22x", GSO_TAP.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        fcntl.ioctl(gso, TUNSETIFF, ifreq)
        fcntl.ioctl(gso, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        fcntl.ioctl(
            plain, TUNSETIFF, struct.pack("16sH22x", PLAIN_TAP.encode(), IFF_TAP | IFF_NO_PI)
        )
        for fd in fds:
            os.set_blocking(fd, False)
        _ip(ns, "link", "add", "br0", "type", "bridge", "stp_state", "0")
        for name in (GSO_TAP, PLAIN_TAP):
            _ip(ns, "link", "set", name, "master", "br0")
            _ip(ns, "link", "set", name, "up")
        _ip(ns, "link", "set", "br0", "up")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _bridge_ports_forwarding(ns):
            assert time.monotonic() < deadline, "bridge ports never reached forwarding"
            time.sleep(0.05)
        yield Taps(ns, gso, plain)
    finally:
        for fd in fds:
            os.close(fd)
        _sh("ip", "netns", "del", ns)
    assert ns not in _sh("ip", "netns", "list").stdout


def _diff(ours: list[bytes], kernels: list[bytes]) -> str:
    """Where the first differing segment differs, for the assertion message."""
    if len(ours) != len(kernels):
        return f"{len(ours)} segments from segment(), {len(kernels)} from the kernel"
    for i, (a, b) in enumerate(zip(ours, kernels, strict=True)):
        if a != b:
            at = [j for j in range(min(len(a), len(b))) if a[j] != b[j]][:8]
            return f"segment {i} (len {len(a)} vs {len(b)}) differs at offsets {at}"
    return "equal"


@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
@pytest.mark.parametrize("flags", [ACK | PSH, ACK | PSH | FIN | CWR], ids=["ack-psh", "fin-cwr"])
def test_the_kernel_segments_a_super_frame_as_segment_does(
    taps: Taps, v6: bool, flags: int
) -> None:
    mss = MSS[v6]
    header, frame = gso_frame(pattern(20 * mss + 333), mss, v6=v6, flags=flags, ip_id=0xFFF8)
    ours = segment(header, frame)
    assert len(ours) == 21
    taps.write_gso(header.pack() + frame)
    kernels = taps.read_plain(len(ours))
    assert all(frames.frame_checksums_ok(f) for f in kernels)
    assert kernels == ours, _diff(ours, kernels)


@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
def test_the_kernel_accepts_what_coalesce_writes(taps: Taps, v6: bool) -> None:
    mss = MSS[v6]
    header, frame = gso_frame(pattern(30 * mss + 77), mss, v6=v6, flags=ACK | PSH)
    segments = segment(header, frame, full_checksum=False)  # as a peer would send them
    pure_ack = tcp_frame(v6=v6, ports=(5201, 40000), seq=77, ack=1000)  # another flow
    padded_ack = tcp_frame(v6=v6, ports=(5202, 40000), options=b"")
    udp = udp_frame()
    arrived = [*segments[:10], pure_ack, *segments[10:], udp, padded_ack + b"\0" * 6]
    written = coalesce(arrived)
    parts = [split_vnet(b) for b in written]
    for part in parts:
        validate(*part)
    assert [(h.gso_type, h.gso_size) for h, _ in parts] == [
        (header.gso_type, mss),
        (0, 0),
        (0, 0),
        (0, 0),
    ]
    assert parts[1][0].flags == NEEDS_CSUM and written[2] == NO_OFFLOAD + udp
    for buffer in written:
        taps.write_gso(buffer)
    expected = [*segment(header, frame), pure_ack, udp, padded_ack]
    kernels = taps.read_plain(len(expected))
    assert kernels == expected, _diff(expected, kernels)


def test_lone_tcp_frames_of_every_shape_get_their_checksum_from_the_kernel(taps: Taps) -> None:
    """coalesce writes every TCP frame it does not merge as NEEDS_CSUM with the pseudo-header
    sum in the field, whatever the peer put there; the kernel must complete it right."""
    shapes = [
        tcp_frame(flags=SYN, options=frames.LINUX_SYN_OPTIONS),
        tcp_frame(v6=True, flags=SYN | ACK, options=frames.LINUX_SYN_OPTIONS),
        tcp_frame(pattern(11), flags=FIN | ACK | PSH),
        tcp_frame(flags=RST, options=b""),
        tcp_frame(pattern(100), flags=ACK | URG, ports=(1, 2)),
        with_ip_options(tcp_frame(pattern(1001), ports=(3, 4))),
        tcp_frame(pattern(1400), v6=True, ports=(5, 6)),
    ]
    for checksum in ("full", "pseudo", "zero"):
        sent = [_with_checksum(frame, checksum) for frame in shapes]
        written = coalesce(sent)
        assert [split_vnet(b)[0].flags for b in written] == [NEEDS_CSUM] * len(shapes)
        for buffer in written:
            taps.write_gso(buffer)
        kernels = taps.read_plain(len(shapes))
        assert kernels == shapes, _diff(shapes, kernels)


def _with_checksum(frame: bytes, kind: str) -> bytes:
    """`frame` (full checksum) with its TCP checksum field as a peer might have sent it."""
    if kind == "full":
        return frame
    l4 = 54 if frame[12:14] == b"\x86\xdd" else 14 + (frame[14] & 15) * 4
    value = 0 if kind == "zero" else pseudo_sum(frame)
    return frame[: l4 + 16] + struct.pack("!H", value) + frame[l4 + 18 :]
