"""Bare UDP on the DIRECT path: how many datagrams the rig's kernel alone can move.

A userspace VPN's datagrams cross the same two NAT routers, bridges and veths as any other
UDP, on the same two cores; whatever the overlay does, it cannot beat what the kernel does
for datagrams of that size with no overlay at all. This module measures that ceiling: a
sender in pc1's namespace sends datagrams of the overlay's probed path MTU for --seconds to
home2's public address, whose router forwards the port to pc2 (DNAT), where a receiver
counts them. Both ends are Python, like overlayd, so the ceiling includes what any
Python program pays per system call, and nothing else. Two ways of sending:

* single: one `sendto` per datagram, one `recvmsg` per datagram: the data path of a
  kernel without GSO/GRO (ztui-nogso's).
* gso: one `sendmsg` with UDP_SEGMENT per run of as many datagrams as one UDP send can
  carry (at most 64), received with UDP_GRO: the system calls ztui itself makes.

The receiver reports the UDP payload it received (Gbit/s from its first datagram to its
last, so start-up and the idle wait do not count) and how many datagrams; the sender how
many it handed to the kernel, so the result also says what was lost (the routers' random
drops with --loss, and whatever a full socket buffer or a busy core dropped).

Each end is this module run as a program in its host's namespace (`python -m
overlay.bare_udp recv|send ...`), printing one JSON line. The receiver says it is ready
once bound and stops after IDLE_S without a datagram; the parent waits for both and kills
by PID whatever is still running when it leaves, also on errors. A kernel without
UDP_SEGMENT (before 4.18) or UDP_GRO (before 5.0) gives a result that says so.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
MODES = ("single", "gso")
# What overlayd asks for on its UDP socket (overlay_core/io/udp.py SOCKET_BUFFER_BYTES);
# the kernel caps it at net.core.{r,w}mem_max either way.
SOCKET_BUFFER_BYTES = 4 << 20
RECV_BUFFER_BYTES = 65536
# The receiver ends this long after its last datagram (the sender has stopped by then).
IDLE_S = 2.0
READY_TIMEOUT_S = 15.0
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


def receive(port: int, gro: bool, first_wait_s: float, idle_s: float) -> dict[str, Any]:
    """Count datagrams arriving on `port` until idle_s passes without one (or first_wait_s
    before the first); prints a ready line once bound, so the sender can start."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):  # capped by rmem_max; the default works too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    gro_on = enable_gro(sock) if gro else False
    sock.bind(("0.0.0.0", port))
    print(json.dumps({"ready": True}), flush=True)
    buf = bytearray(RECV_BUFFER_BYTES)
    datagrams = nbytes = reads = 0
    first = last = 0.0
    sock.settimeout(first_wait_s)
    with contextlib.suppress(TimeoutError):
        while True:
            n, ancdata, _flags, _addr = sock.recvmsg_into([buf], GRO_CMSG_SPACE)
            last = time.monotonic()
            if not reads:
                first = last
                sock.settimeout(idle_s)
            reads += 1
            nbytes += n
            datagrams += datagrams_in(n, gro_size(ancdata))
    sock.close()
    return {"datagrams": datagrams, "bytes": nbytes, "reads": reads,
            "seconds": last - first, "gro": gro_on}  # fmt: skip


def send(target: str, port: int, size: int, segments: int, seconds: float) -> dict[str, Any]:
    """Send `size`-byte datagrams to target:port for `seconds`, `segments` per system call
    (UDP_SEGMENT when more than one); how many the kernel took."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
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
            if exc.errno in (errno.ENOBUFS, errno.EAGAIN):  # the kernel dropped it: not sent
                name = errno.errorcode[exc.errno]
                busy[name] = busy.get(name, 0) + 1
                continue
            # EIO: a device that cannot segment; EINVAL: a run the route can't carry.
            what = "GSO send" if control else "send"
            return {"error": f"{what} failed: {exc.strerror} (errno {exc.errno})"}
        calls += 1
    sock.close()
    return {"datagrams": calls * segments, "calls": calls,
            "seconds": time.monotonic() - start, "send_errors": busy}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one end of a bare-UDP measurement")
    sub = parser.add_subparsers(dest="role", required=True)
    recv = sub.add_parser("recv")
    recv.add_argument("--port", type=int, default=PORT)
    recv.add_argument("--gro", action="store_true")
    recv.add_argument("--first-wait", type=float, required=True)
    recv.add_argument("--idle", type=float, default=IDLE_S)
    snd = sub.add_parser("send")
    snd.add_argument("target")
    snd.add_argument("--port", type=int, default=PORT)
    snd.add_argument("--size", type=int, required=True)
    snd.add_argument("--segments", type=int, default=1)
    snd.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    if args.role == "recv":
        out = receive(args.port, args.gro, args.first_wait, args.idle)
    else:
        out = send(args.target, args.port, args.size, args.segments, args.seconds)
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
    host: Host, target: str, port: int, size: int, segments: int, seconds: float,
    cwd: str, env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Run the sender to its end in host's namespace (subprocess.run kills it by its PID
    if it overruns); its report."""
    argv = _peer("send", target, "--port", str(port), "--size", str(size),
                 "--segments", str(segments), "--seconds", str(seconds))  # fmt: skip
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
    segments = gso_segments(size) if mode == "gso" else 1
    env, cwd = _peer_env(), str(BENCH_DIR)
    first_wait = seconds + 15.0  # the sender's start-up, however loaded the cores are
    recv_args = ["--port", str(port), "--first-wait", str(first_wait), "--idle", str(idle_s)]
    if mode == "gso":
        recv_args.append("--gro")
    proc = receiver.popen(
        _peer("recv", *recv_args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        cwd=cwd, env=env,
    )  # fmt: skip
    try:
        why = _wait_ready(proc)
        if why is not None:
            return summarize(mode, size, segments, {}, {"error": why})
        sent = _send(sender, target, port, size, segments, seconds, cwd, env)
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
