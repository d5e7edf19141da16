"""Bare UDP on the DIRECT path: how many datagrams the rig's kernel alone can move.

A userspace VPN's datagrams cross the same two NAT routers, bridges and veths as any other
UDP, on the same two cores; whatever the overlay does, it cannot beat what the kernel does
for datagrams of that size with no overlay at all. This module measures that ceiling: a
sender in pc1's namespace sends datagrams of the overlay's probed path MTU for --seconds to
home2's public address, whose router forwards the port to pc2 (DNAT), where a receiver
counts them. Both ends are Python, like overlayd, so the ceiling includes what any
Python program pays per system call, and nothing else. Three ways of sending, one for each
data path overlayd has:

* single: one `sendto` per datagram, one `recvmsg` per datagram: overlayd with
  `--offload off`, every datagram its own system call at both ends.
* mmsg: one `sendmmsg` per run of as many datagrams as a GSO send carries (the same
  runs as gso, so the two compare), received with `recvmmsg` on a non-blocking socket
  woken by poll, both through overlay_core/io/udp_mmsg.py: overlayd with `--offload tap`
  (ztui-nogso in the bench), the calls it makes on kernels before 4.18 (a NAS's 4.4),
  which have neither UDP GSO nor GRO. The kernel still routes every datagram on its own;
  only the calls are fewer.
* gso: one `sendmsg` with UDP_SEGMENT per run of as many datagrams as one UDP send can
  carry (at most 64), received with UDP_GRO: the system calls ztui makes by default.

The receiver reports the UDP payload it received (Gbit/s from its first datagram to its
last, so start-up and the idle wait do not count) and how many datagrams; the sender how
many it handed to the kernel, so the result also says what was lost (the routers' random
drops with --loss, and whatever a full socket buffer or a busy core dropped).

Each end is this module run as a program in its host's namespace (`python -m
overlay.bare_udp recv|send ...`), printing one JSON line. The receiver says it is ready
once bound and stops after IDLE_S without a datagram; the parent waits for both and kills
by PID whatever is still running when it leaves, also on errors. A kernel without
UDP_SEGMENT (before 4.18) or UDP_GRO (before 5.0), or a C library or kernel without
sendmmsg / recvmmsg, gives a result that says so.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overlay_core.io.udp_mmsg import Batcher, sockaddr
from overlay_core.io.udp_offload import (
    GRO_CMSG_SPACE,
    MAX_GSO_BYTES,
    MAX_SEGMENTS,
    enable_gro,
    gro_size,
    gso_control,
    probe_gso,
)

if TYPE_CHECKING:
    from overlay_core.lab.netns import Host

PORT = 5299
MODES = ("single", "mmsg", "gso")
# What overlayd asks for on its UDP socket (overlay_core/io/udp.py SOCKET_BUFFER_BYTES);
# the kernel caps it at net.core.{r,w}mem_max either way.
SOCKET_BUFFER_BYTES = 4 << 20
RECV_BUFFER_BYTES = 65536
# The receiver ends this long after its last datagram (the sender has stopped by then).
IDLE_S = 2.0
READY_TIMEOUT_S = 15.0
NO_MMSG = "no sendmmsg / recvmmsg here (C library or kernel)"
# The peers run as `python -m overlay.bare_udp` from bench/, with the repository on the
# path for overlay_core, whatever the caller's working directory.
BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
PEER_MODULE = "overlay.bare_udp"


# ---- pure parts --------------------------------------------------------------------------


def gso_segments(size: int) -> int:
    """Datagrams of `size` bytes per UDP_SEGMENT send: as many as one UDP send can carry,
    at most the kernel's 64 (overlay_core/io/udp_offload.py, the limits ztui sends by)."""
    if size <= 0:
        raise ValueError(f"datagram size must be positive, not {size}")
    return max(1, min(MAX_SEGMENTS, MAX_GSO_BYTES // size))


def segments_for(mode: str, size: int) -> int:
    """Datagrams per send call in `mode`: mmsg sends the runs gso does, so the two compare."""
    return 1 if mode == "single" else gso_segments(size)


def datagrams_in(nbytes: int, segment: int) -> int:
    """How many datagrams one receive returned: a coalesced (GRO) read of `nbytes` holds
    full `segment`-byte datagrams and maybe one shorter last one; a plain read holds one."""
    if segment <= 0 or nbytes <= segment:
        return 1
    return (nbytes + segment - 1) // segment


def summarize(
    mode: str, size: int, segments: int, sent: dict[str, Any], got: dict[str, Any]
) -> dict[str, Any]:
    """One measurement's result from the sender's and the receiver's reports."""
    result: dict[str, Any] = {"mode": mode, "datagram_bytes": size, "datagrams_per_send": segments}
    if "error" in sent:
        return {**result, "error": f"sender: {sent['error']}"}
    if "error" in got:
        return {**result, "error": f"receiver: {got['error']}"}
    sent_n, received = int(sent["datagrams"]), int(got["datagrams"])
    span = float(got["seconds"])
    result.update(
        sent=sent_n,
        # Sends the kernel took: sent / calls is the run it really took per call (mmsg's
        # can fall short of datagrams_per_send when the kernel takes part of a run).
        calls=int(sent["calls"]),
        received=received,
        loss_pct=round(100.0 * (sent_n - received) / sent_n, 3) if sent_n else None,
        sent_gbit_per_s=round(sent_n * size * 8 / float(sent["seconds"]) / 1e9, 4)
        if sent["seconds"]
        else None,
        receive_gro=bool(got["gro"]),
        seconds=round(span, 2),
    )
    if sent.get("send_errors"):
        result["send_errors"] = sent["send_errors"]
    if received < 2 or span <= 0:
        result["error"] = f"receiver got {received} datagrams of the {sent_n} sent"
        return result
    result["gbit_per_s"] = round(int(got["bytes"]) * 8 / span / 1e9, 4)
    if mode == "gso" and not got["gro"]:
        result["note"] = "no UDP_GRO on the receiver (kernel < 5.0): one datagram per recvmsg"
    return result


# ---- the two programs (run in the hosts' namespaces) --------------------------------------


def receive(port: int, mode: str, first_wait_s: float, idle_s: float) -> dict[str, Any]:
    """Count datagrams arriving on `port` until idle_s passes without one (or first_wait_s
    before the first); prints a ready line once bound, so the sender can start. gso turns
    UDP_GRO on; mmsg reads with recvmmsg (count_received with _mmsg_reader)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):  # capped by rmem_max; the default works too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    gro_on = enable_gro(sock) if mode == "gso" else False
    sock.bind(("0.0.0.0", port))
    # Non-blocking, waiting in poll only when nothing is left, as overlayd reads: a socket
    # timeout would make CPython poll before every recvmsg, a call per datagram more.
    sock.setblocking(False)
    if mode == "mmsg":
        batcher = Batcher.open(sock)
        if batcher is None:
            sock.close()
            return {"error": NO_MMSG}  # before the ready line: the parent reports it
        print(json.dumps({"ready": True}), flush=True)
        try:
            counts = count_received(sock, _mmsg_reader(batcher), first_wait_s, idle_s)
        finally:
            batcher.close()
            sock.close()
        return {**counts, "gro": False}
    print(json.dumps({"ready": True}), flush=True)
    try:
        counts = count_received(sock, _plain_reader(sock), first_wait_s, idle_s)
    finally:
        sock.close()
    return {**counts, "gro": gro_on}


Reader = Callable[[], tuple[int, int]]


def _plain_reader(sock: socket.socket) -> Reader:
    """One recvmsg: (datagrams, bytes), a GRO read counted as the datagrams it holds."""
    buf = bytearray(RECV_BUFFER_BYTES)

    def read() -> tuple[int, int]:
        n, ancdata, _flags, _addr = sock.recvmsg_into([buf], GRO_CMSG_SPACE)
        return datagrams_in(n, gro_size(ancdata)), n

    return read


def _mmsg_reader(batcher: Batcher) -> Reader:
    """One recvmmsg: (datagrams, bytes)."""

    def read() -> tuple[int, int]:
        got = batcher.receive()
        return len(got), sum(len(payload) for payload, _source in got)

    return read


def count_received(
    sock: socket.socket, read: Reader, first_wait_s: float, idle_s: float
) -> dict[str, Any]:
    """Call `read` on non-blocking `sock` until it finds nothing (BlockingIOError), then
    poll: up to first_wait_s for the first datagram, idle_s for each later one."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    wait_ms = first_wait_s * 1000
    datagrams = nbytes = reads = 0
    first = last = 0.0
    while True:
        try:
            got, size = read()
        except (BlockingIOError, InterruptedError):
            if not poller.poll(wait_ms):
                break
            continue
        last = time.monotonic()
        if not reads:
            first = last
            wait_ms = idle_s * 1000
        reads += 1
        datagrams += got
        nbytes += size
    return {"datagrams": datagrams, "bytes": nbytes, "reads": reads, "seconds": last - first}


def send(
    target: str, port: int, size: int, segments: int, seconds: float, mode: str
) -> dict[str, Any]:
    """Send `size`-byte datagrams to target:port for `seconds`, `segments` per system call
    (UDP_SEGMENT in gso, sendmmsg in mmsg); how many the kernel took."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        if mode == "mmsg":
            return _send_mmsg(sock, target, port, size, segments, seconds)
        return _send_plain(sock, target, port, size, segments if mode == "gso" else 1, seconds)


def _busy(exc: OSError, busy: dict[str, int]) -> bool:
    """Count a send the kernel dropped for want of room (not sent; the sender goes on);
    False for any other error, which ends the measurement."""
    if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
        return False
    name = errno.errorcode[exc.errno]
    busy[name] = busy.get(name, 0) + 1
    return True


def _send_plain(
    sock: socket.socket, target: str, port: int, size: int, segments: int, seconds: float
) -> dict[str, Any]:
    """single (one sendto a datagram) and gso (one UDP_SEGMENT sendmsg a run)."""
    if segments > 1 and not probe_gso(sock):
        return {"error": "this kernel has no UDP_SEGMENT (GSO, Linux 4.18+)"}
    payload = bytes(size * segments)
    control = gso_control(size) if segments > 1 else []
    # Unconnected, an address on every send, as overlayd's one socket for all its peers.
    dst = (target, port)
    calls = 0
    busy: dict[str, int] = {}
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        try:
            if control:
                sock.sendmsg([payload], control, 0, dst)
            else:
                sock.sendto(payload, dst)
        except OSError as exc:
            if _busy(exc, busy):
                continue
            # EIO: a device that cannot segment; EINVAL: a run the route can't carry.
            what = "GSO send" if control else "send"
            return {"error": f"{what} failed: {exc.strerror} (errno {exc.errno})"}
        calls += 1
    return {"datagrams": calls * segments, "calls": calls,
            "seconds": time.monotonic() - start, "send_errors": busy}  # fmt: skip


def _send_mmsg(
    sock: socket.socket, target: str, port: int, size: int, segments: int, seconds: float
) -> dict[str, Any]:
    """mmsg: each run of `segments` datagrams with one Batcher.send (sendmmsg), as
    overlayd's sender without GSO; a call the kernel takes only part of is followed by
    one for the rest, so every run goes out whole unless time runs out."""
    batcher = Batcher.open(sock)
    if batcher is None:
        return {"error": NO_MMSG}
    raw = sockaddr(socket.AF_INET, target, port)
    if raw is None:
        batcher.close()
        return {"error": f"not an IPv4 address: {target!r}"}
    run = [bytes(size)] * segments
    datagrams = calls = 0
    busy: dict[str, int] = {}
    start = time.monotonic()
    end = start + seconds
    try:
        while time.monotonic() < end:
            taken = 0
            while taken < segments:
                try:
                    taken += batcher.send(raw, run[taken:] if taken else run)
                except OSError as exc:
                    if not _busy(exc, busy):
                        return {"error": f"sendmmsg failed: {exc.strerror} (errno {exc.errno})"}
                    if time.monotonic() >= end:  # a buffer that stays full can't hold us
                        break
                    continue
                calls += 1
            datagrams += taken
    finally:
        batcher.close()
    return {"datagrams": datagrams, "calls": calls,
            "seconds": time.monotonic() - start, "send_errors": busy}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one end of a bare-UDP measurement")
    sub = parser.add_subparsers(dest="role", required=True)
    recv = sub.add_parser("recv")
    recv.add_argument("--port", type=int, default=PORT)
    recv.add_argument("--mode", choices=MODES, default="single")
    recv.add_argument("--first-wait", type=float, required=True)
    recv.add_argument("--idle", type=float, default=IDLE_S)
    snd = sub.add_parser("send")
    snd.add_argument("target")
    snd.add_argument("--port", type=int, default=PORT)
    snd.add_argument("--size", type=int, required=True)
    snd.add_argument("--segments", type=int, default=1)
    snd.add_argument("--mode", choices=MODES, default="single")
    snd.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    if args.role == "recv":
        out = receive(args.port, args.mode, args.first_wait, args.idle)
    else:
        out = send(args.target, args.port, args.size, args.segments, args.seconds, args.mode)
    print(json.dumps(out), flush=True)
    return 0


# ---- the parent ---------------------------------------------------------------------------


def _peer(role: str, *args: str) -> list[str]:
    return [sys.executable, "-m", PEER_MODULE, role, *args]


def _peer_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO_DIR) + (os.pathsep + path if path else "")}


def _last_json(stdout: str, stderr: str, who: str) -> dict[str, Any]:
    """The JSON line a peer printed last, or an error with the tail of what it said."""
    lines = stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1]) if lines else None
    except ValueError:
        out = None
    if not isinstance(out, dict):
        return {"error": f"{who} said nothing usable: {(stderr or stdout).strip()[-300:]}"}
    return out


def _wait_ready(proc: subprocess.Popen[Any]) -> str | None:
    """None once the receiver prints its ready line; else why not."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
    if not ready:
        return f"receiver not ready within {READY_TIMEOUT_S:g} s"
    line = proc.stdout.readline()
    if '"ready"' in line:
        return None
    _, err = _finish(proc, 5)
    with contextlib.suppress(ValueError):  # it may have said why it can't measure (NO_MMSG)
        said = json.loads(line)
        if isinstance(said, dict) and "error" in said:
            return str(said["error"])
    return f"receiver failed to start: {(err or line).strip()[-300:]}"


def _finish(proc: subprocess.Popen[Any], timeout: float) -> tuple[str, str]:
    """Wait for a peer, killing it (its PID) after `timeout`; what it printed."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    assert proc.stdout is not None and proc.stderr is not None
    return proc.stdout.read(), proc.stderr.read()


def _send(
    host: Host, target: str, port: int, size: int, segments: int, seconds: float, mode: str,
    cwd: str, env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Run the sender to its end in host's namespace (subprocess.run kills it by its PID
    if it overruns); its report."""
    argv = _peer("send", target, "--port", str(port), "--size", str(size),
                 "--segments", str(segments), "--seconds", str(seconds),
                 "--mode", mode)  # fmt: skip
    try:
        proc = host.run(argv, timeout=seconds + 30, cwd=cwd, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {seconds + 30:g} s"}
    return _last_json(proc.stdout, proc.stderr, "sender")


def measure_bare_udp(
    sender: Host,
    receiver: Host,
    target: str,
    *,
    size: int,
    seconds: float,
    mode: str,
    port: int = PORT,
    idle_s: float = IDLE_S,
) -> dict[str, Any]:
    """One bare-UDP measurement (see the module docstring): sender's namespace to
    target:port, received in the receiver's, which ends idle_s after the last datagram;
    the result, with "error" if it failed."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    segments = segments_for(mode, size)
    env, cwd = _peer_env(), str(BENCH_DIR)
    first_wait = seconds + 15.0  # the sender's start-up, however loaded the cores are
    recv_args = ["--port", str(port), "--first-wait", str(first_wait), "--idle", str(idle_s),
                 "--mode", mode]  # fmt: skip
    proc = receiver.popen(
        _peer("recv", *recv_args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        cwd=cwd, env=env,
    )  # fmt: skip
    try:
        why = _wait_ready(proc)
        if why is not None:
            return summarize(mode, size, segments, {}, {"error": why})
        sent = _send(sender, target, port, size, segments, seconds, mode, cwd, env)
        # A sender that failed sends nothing more: don't wait out the receiver's first wait.
        timeout = 0.5 if "error" in sent else first_wait + idle_s + 10
        out, err = _finish(proc, timeout)
        got = _last_json(out, err, "receiver")
        return summarize(mode, size, segments, sent, got)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
