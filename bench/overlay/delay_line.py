"""A delay line for the bench rig: every IP packet routed into TUN `dl0` comes out of TUN
`dl1` DELAY_MS later, in order, to be routed on by the kernel.

    python3 delay_line.py DELAY_MS

Run inside a router's namespace by bench/overlay/wan.py, which routes the packets in and
out. This kernel has no netem, which is how one would add delay with `tc`; the Python
forwarder is the part that can be written in a page. It prints "ready" once both TUNs
exist, and on SIGTERM or SIGINT one JSON line of what it did, then exits; the TUNs go
with it. It holds at most MAX_HELD packets (a TCP line at the rates this forwarder can
carry holds a few thousand at 20 ms) and counts what it had to drop beyond that, so a
delay line that fell behind says so rather than looking like loss.
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
READS_PER_WAKEUP = 256
MAX_PACKET = 65536
MAX_HELD = 100_000


def open_tun(name: str) -> int:
    """A non-blocking L3 TUN without packet-info header, created in this namespace."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Stop(Exception):
    pass


def _stop(*_: object) -> None:
    raise Stop


def run(delay_s: float) -> dict[str, int]:
    rx, tx = open_tun("dl0"), open_tun("dl1")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("ready", flush=True)
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    counts = {"forwarded": 0, "dropped_full": 0, "write_errors": 0, "most_held": 0}
    poll = select.poll()
    poll.register(rx, select.POLLIN)
    try:
        while True:
            now = time.monotonic()
            while held and held[0][0] <= now:
                try:
                    os.write(tx, held.popleft()[1])
                    counts["forwarded"] += 1
                except OSError:  # e.g. a full dl1 queue: counted, the line goes on
                    counts["write_errors"] += 1
            timeout = max(0.0, (held[0][0] - now) * 1000) if held else None
            if not poll.poll(timeout):
                continue
            due = time.monotonic() + delay_s
            for _ in range(READS_PER_WAKEUP):
                try:
                    packet = os.read(rx, MAX_PACKET)
                except BlockingIOError:
                    break
                if len(held) >= MAX_HELD:
                    counts["dropped_full"] += 1
                    continue
                held.append((due, packet))
            counts["most_held"] = max(counts["most_held"], len(held))
    except Stop:
        return counts


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 delay_line.py DELAY_MS", file=sys.stderr)
        return 2
    counts = run(float(argv[1]) / 1000)
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
