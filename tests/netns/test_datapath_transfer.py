"""System tests of the batched data path: 200 MB over TCP through the overlay, byte-exact.

Real `overlayd`s behind real NATs (overlay_core/lab/world.py): pc1 behind home1, pc2
behind home2, a root and a controller on the "internet". A sender in pc1 writes 200 MB of
seeded random bytes to a receiver in pc2 over the overlay; both hash what they moved, and
the hashes must match. What varies, one test each:

* offloads on both sides (TAP TSO + UDP GSO/GRO), clean and with 1% random loss on both
  home routers (iptables `statistic`: this kernel has no netem), which a single lost
  datagram in the wrong design would turn into a stall;
* mixed peers: pc2 on `--offload off` (a kernel or version without offloads, so it never
  takes FRAME_PARTIAL: pc1 must finish every checksum for it), both directions;
* no UDP offloads on either side (`--offload tap`, a 4.4 kernel's data path: TAP offloads,
  sendmmsg / recvmmsg instead of GSO / GRO), at 1% loss, both directions;
* relayed through the root (the routers drop UDP between the homes), and through a root
  on `--offload tap`;
* a 1280-byte underlay (a fresh world), where segments must fit a small path MTU.

Everything is torn down by the world (namespaces, processes by PID, homes).
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from overlay_core.lab.netns import Site, unavailable_reason
from overlay_core.lab.world import OverlayNode, OverlayWorld

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
]

SIZE = 200 * 1024 * 1024
PORT = 5301
POOL = "10.147.17.0/24"
TRANSFER_TIMEOUT_S = 240.0

RECEIVER = """
import hashlib, socket, sys
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
server.settimeout(60)
print("ready", flush=True)
conn, _ = server.accept()
conn.settimeout(60)
digest, size = hashlib.sha256(), 0
while data := conn.recv(1 << 20):
    digest.update(data)
    size += len(data)
conn.close()
print(size, digest.hexdigest(), flush=True)
"""

SENDER = """
import hashlib, random, socket, sys
target, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng, digest, sent = random.Random(size), hashlib.sha256(), 0
sock = socket.create_connection((target, port), timeout=60)
while sent < size:
    chunk = rng.randbytes(min(1 << 20, size - sent))
    sock.sendall(chunk)
    digest.update(chunk)
    sent += len(chunk)
sock.shutdown(socket.SHUT_WR)
sock.recv(1)  # the receiver closes once it has read everything
print(sent, digest.hexdigest(), flush=True)
"""


class Pair:
    """Two members of one network behind two home NATs, with a root."""

    def __init__(self, world: OverlayWorld, underlay_mtu: int | None) -> None:
        self.world = world
        self.root = world.add_roots(1)[0]
        world.add_controller("ctl")
        self.pc1 = world.add_home("home1", "pc1", underlay_mtu=underlay_mtu)
        self.pc2 = world.add_home("home2", "pc2", underlay_mtu=underlay_mtu)
        self.nwid = world.create_network("xfer", pools=[POOL], mtu=2800, mss="auto")
        world.bring_up(self.nwid, [self.pc1, self.pc2])
        self.ip = {n.name: world.overlay_ip(n, self.nwid) for n in (self.pc1, self.pc2)}
        self.wait_link("DIRECT")

    def wait_link(self, link: str, timeout: float = 30.0) -> None:
        self.world.wait_link(self.pc1, self.pc2, link, timeout)
        self.world.wait_link(self.pc2, self.pc1, link, timeout)

    def set_offload(self, node: OverlayNode, mode: str) -> None:
        """Restart `node` (same home: same identity and networks) with --offload mode."""
        args = [a for a in node.args]
        if "--offload" in args:
            at = args.index("--offload")
            del args[at : at + 2]
        node.args = [*args, "--offload", mode]
        node.restart()
        self.world.wait_addressed(node, self.nwid, 20.0)

    def site(self, node: OverlayNode) -> Site:
        assert node.site is not None
        return node.site

    def transfer(self, sender: OverlayNode, receiver: OverlayNode) -> dict[str, Any]:
        """SIZE bytes from sender to receiver over the overlay; both sides' (size, sha256)."""
        rx = receiver.host.popen(
            [sys.executable, "-c", RECEIVER, str(PORT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
            tx = sender.host.run(
                [sys.executable, "-c", SENDER, self.ip[receiver.name], str(PORT), str(SIZE)],
                timeout=TRANSFER_TIMEOUT_S,
            )
            out, err = rx.communicate(timeout=30)
        finally:
            if rx.poll() is None:
                rx.kill()
                rx.wait(10)
        assert tx.returncode == 0, f"sender failed: {tx.stderr[-2000:]}"
        sent = tx.stdout.split()
        got = out.split()
        return {"sent": (int(sent[0]), sent[1]), "received": (int(got[0]), got[1]), "err": err}

    def check(self, sender: OverlayNode, receiver: OverlayNode) -> None:
        result = self.transfer(sender, receiver)
        assert result["sent"][0] == SIZE
        assert result["received"] == result["sent"], result


@contextlib.contextmanager
def router_rules(rules: Sequence[tuple[Site, list[str]]]) -> Iterator[None]:
    """iptables FORWARD rules on the home routers for the duration of the block."""
    added: list[tuple[Site, list[str]]] = []
    try:
        for site, spec in rules:
            site.run(["iptables", "-I", "FORWARD", *spec], check=True)
            added.append((site, spec))
        yield
    finally:
        for site, spec in reversed(added):
            site.run(["iptables", "-D", "FORWARD", *spec])


def loss(sites: Sequence[Site], pct: float) -> list[tuple[Site, list[str]]]:
    """Random drops on each router's WAN side, both ways: `pct` end to end per direction."""
    p = 1.0 - math.sqrt(1.0 - pct / 100.0)
    return [
        (site, [way, Site.WAN_IF, "-m", "statistic", "--mode", "random",
                "--probability", f"{p:.8f}", "-j", "DROP"])
        for site in sites
        for way in ("-i", "-o")
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with OverlayWorld() as world:
        yield Pair(world, None)


def test_offloads_both_sides(pair: Pair) -> None:
    pair.check(pair.pc1, pair.pc2)
    # pc1's TAP handed out TCP super-frames (TSO), not one 1.4 KB frame per read
    ports = pair.pc1.network(pair.nwid)["port_counters"]  # type: ignore[index]
    assert ports["bytes_read"] > 3000 * ports["frames_read"], ports


def test_offloads_at_one_percent_loss(pair: Pair) -> None:
    with router_rules(loss([pair.site(pair.pc1), pair.site(pair.pc2)], 1.0)):
        pair.check(pair.pc1, pair.pc2)


def test_mixed_peers_one_without_offloads(pair: Pair) -> None:
    pair.set_offload(pair.pc2, "off")
    try:
        pair.wait_link("DIRECT")
        pair.check(pair.pc1, pair.pc2)
        pair.check(pair.pc2, pair.pc1)
    finally:
        pair.set_offload(pair.pc2, "auto")
    pair.wait_link("DIRECT")


def io_counter(node: OverlayNode, name: str) -> int:
    """One of the daemon's socket-level counters, from its /metrics."""
    prefix = f'ztui_io_counter_total{{name="{name}"}} '
    for line in node.metrics().splitlines():
        if line.startswith(prefix):
            return int(float(line[len(prefix) :]))
    return 0


def test_batched_syscalls_without_udp_offloads(pair: Pair) -> None:
    for node in (pair.pc1, pair.pc2):
        pair.set_offload(node, "tap")
    try:
        pair.wait_link("DIRECT")
        with router_rules(loss([pair.site(pair.pc1), pair.site(pair.pc2)], 1.0)):
            pair.check(pair.pc1, pair.pc2)
            pair.check(pair.pc2, pair.pc1)
        for node in (pair.pc1, pair.pc2):
            # the segments went out by sendmmsg and came in by recvmmsg, never by GSO/GRO
            assert io_counter(node, "udp_mmsg_sends") > SIZE // (64 * 1500)
            assert io_counter(node, "udp_mmsg_reads") > 0
            assert io_counter(node, "udp_gso_sends") == io_counter(node, "udp_gro_reads") == 0
    finally:
        for node in (pair.pc1, pair.pc2):
            pair.set_offload(node, "auto")
    pair.wait_link("DIRECT")


def no_direct(pair: Pair) -> list[tuple[Site, list[str]]]:
    """Each home router drops UDP to and from the other home: only the root can relay."""
    one, other = pair.site(pair.pc1), pair.site(pair.pc2)
    return [
        (site, ["-p", "udp", flag, peer.addr, "-j", "DROP"])
        for site, peer in ((one, other), (other, one))
        for flag in ("-d", "-s")
    ]


def test_relayed_through_the_root(pair: Pair) -> None:
    with router_rules(no_direct(pair)):
        pair.wait_link("RELAY", 40.0)
        before = pair.root.status()["counters"].get("relayed_packets", 0)
        pair.check(pair.pc1, pair.pc2)
        relayed = pair.root.status()["counters"].get("relayed_packets", 0) - before
        assert relayed > SIZE // 1500  # it did cross the root


def test_relayed_by_a_root_without_udp_offloads(pair: Pair) -> None:
    """The root on `--offload tap` (a 4.4 kernel): what it relays comes in by recvmmsg and
    goes on by sendmmsg, in runs, and arrives whole."""
    args = [a for a in pair.root.args]
    pair.root.args = [*args, "--offload", "tap"]
    pair.root.restart()
    try:
        with router_rules(no_direct(pair)):
            pair.wait_link("RELAY", 40.0)
            before = io_counter(pair.root, "udp_mmsg_sends")
            pair.check(pair.pc2, pair.pc1)
            assert io_counter(pair.root, "udp_mmsg_sends") - before > SIZE // (64 * 1500)
            assert io_counter(pair.root, "udp_gso_sends") == 0
    finally:
        pair.root.args = args
        pair.root.restart()
    pair.wait_link("DIRECT")


def test_small_underlay() -> None:
    with OverlayWorld() as world:
        small = Pair(world, 1280)
        small.check(small.pc1, small.pc2)
