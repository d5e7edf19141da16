"""The path MTU search ceiling comes from the interfaces that can carry our datagrams: a
jumbo LAN raises it, our own TAP devices (and loopback) never do. Real interfaces in a
network namespace of the test's own."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.netns
REPO = Path(__file__).resolve().parents[2]
# Runs in the namespace: holds the TAP open as overlayd does (a TAP nobody has open has no
# carrier and looks down anyway), waits until it and the veth pair are up and running, then
# asks for the MTUs. The wait matters: the kernel's linkwatch marks a new carrier's
# operstate (and so IFF_RUNNING, which psutil's isup reads) asynchronously, up to a second
# later, so asking at once raced (CI failed on it once, 2026-11-24).
PROBE = """
import fcntl, os, struct, time, psutil
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"ztmtutap", 0x0002 | 0x1000))  # TUNSETIFF
want = {"ztmtutap", "lan0", "lan1"}
deadline = time.monotonic() + 10
while not want <= {n for n, s in psutil.net_if_stats().items() if s.isup}:
    assert time.monotonic() < deadline, f"not up and running after 10 s: {psutil.net_if_stats()}"
    time.sleep(0.02)
from overlay_core.io.interfaces import interface_mtus, phys_mtu_from
mtus = interface_mtus()
print(sorted(mtus), phys_mtu_from(mtus))
"""


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture
def ns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a network namespace with a TAP and a dummy link")
    name = f"ztmtu-{secrets.token_hex(3)}"
    _sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _probe(ns: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=env,
    )
    return out.stdout.strip()


def test_a_jumbo_link_raises_the_ceiling_and_our_own_tap_does_not(ns: str) -> None:
    def ip(*argv: str) -> None:
        _sh("ip", "-n", ns, *argv)

    ip("link", "set", "lo", "up")
    ip("tuntap", "add", "dev", "ztmtutap", "mode", "tap")
    ip("link", "set", "ztmtutap", "mtu", "2800", "up")
    # A veth pair stands for the LAN card (this kernel has no dummy module); both ends
    # must be up for either to have a carrier, so both count, with the same MTU.
    ip("link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
    for end in ("lan0", "lan1"):
        ip("link", "set", end, "mtu", "1500", "up")
    assert _probe(ns) == "[1500, 1500] 1432"  # neither lo's 65536 nor the TAP's 2800
    for end in ("lan0", "lan1"):
        ip("link", "set", end, "mtu", "9000")
    assert _probe(ns) == "[9000, 9000] 8932"
