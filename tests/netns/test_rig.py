"""The network-namespace rig builds the world the system tests rely on, and removes it.

One rig (internet, two public hosts, two NAT sites with one host each, both sites on the
same 10.1.0.0/24 like real homes) is shared by the connectivity tests; tests that change a
site's NAT behaviour put it back. Lifecycle tests build their own small rigs.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from overlay_core.lab.netns import (
    Host,
    Rig,
    Site,
    cleanup_leftovers,
    list_namespaces,
    unavailable_reason,
)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
]

PY = sys.executable
PORT = 9999

UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
print("ready", flush=True)
try:
    data, (ip, port) = s.recvfrom(2048)
    print(ip, port, flush=True)
except TimeoutError:
    print("timeout", flush=True)
"""

UDP_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[3])))
for _ in range(3):  # a few copies: the first may race the ARP resolution
    s.sendto(b"hi", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.1)
"""

TCP_SERVER = """
import socket, sys
s = socket.create_server(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
print("ready", flush=True)
try:
    conn, (ip, port) = s.accept()
    print(ip, port, flush=True)
except TimeoutError:
    print("timeout", flush=True)
"""

TCP_CLIENT = """
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
"""


class World:
    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.pub1 = rig.add_public_host("pub1")
        self.pub2 = rig.add_public_host("pub2")
        self.home1 = rig.add_nat_site("home1")
        self.home2 = rig.add_nat_site("home2", lan_cidr="10.1.0.0/24")
        self.nas = self.home1.add_host("nas")
        self.laptop = self.home2.add_host("laptop")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with Rig() as rig:
        yield World(rig)


def _serve(host: Host, script: str, timeout_s: float = 3.0) -> subprocess.Popen[str]:
    """Start a one-shot server in `host` and wait until it listens."""
    proc = host.popen(
        [PY, "-c", script, str(PORT), str(timeout_s)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _result(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=10)
    return out.strip()


def _udp_seen_from(client: Host, server: Host, src_port: int) -> str:
    """Send UDP from client:src_port to server; what source the server saw, or 'timeout'."""
    proc = _serve(server, UDP_SERVER)
    client.run([PY, "-c", UDP_CLIENT, server.addr, str(PORT), str(src_port)], check=True)
    return _result(proc)


def test_public_hosts_reach_each_other_over_ipv4_and_ipv6(world: World) -> None:
    """Public hosts share one flat internet, dual-stack."""
    assert world.pub2.addr6 is not None
    assert world.pub1.run(["ping", "-c1", "-W2", world.pub2.addr]).returncode == 0
    assert world.pub1.run(["ping", "-6", "-c1", "-W2", world.pub2.addr6]).returncode == 0


def test_home_host_pings_public_host(world: World) -> None:
    """A host behind NAT reaches the internet through its router."""
    for host in (world.nas, world.laptop):
        proc = host.run(["ping", "-c1", "-W2", world.pub1.addr])
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_udp_from_home_is_masqueraded(world: World) -> None:
    """The public host sees the router's public address as source (MASQUERADE), and with
    the default NAT the source port is preserved."""
    seen = _udp_seen_from(world.nas, world.pub1, src_port=41000)
    assert seen == f"{world.home1.addr} 41000"


def test_random_fully_rewrites_source_ports(world: World) -> None:
    """With --random-fully the NAT picks a random port: at least one of three differs
    (all three kept by chance has probability ~1e-14)."""
    rig, site = world.rig, world.home2
    rig.set_nat_random_fully(site, True)
    try:
        assert site.random_fully
        seen = [_udp_seen_from(world.laptop, world.pub2, p) for p in (41001, 41002, 41003)]
        assert all(s.split()[0] == site.addr for s in seen), seen
        assert [s.split()[1] for s in seen] != ["41001", "41002", "41003"]
    finally:
        rig.set_nat_random_fully(site, False)
    assert _udp_seen_from(world.laptop, world.pub2, 41004) == f"{site.addr} 41004"


def test_block_udp_drops_udp_but_tcp_connects(world: World) -> None:
    """block_udp stops UDP at the router while TCP still gets through; unblocking
    restores UDP."""
    rig, site = world.rig, world.home1
    rig.block_udp(site, True)
    try:
        assert site.udp_blocked
        assert _udp_seen_from(world.nas, world.pub1, 41010) == "timeout"
        proc = _serve(world.pub1, TCP_SERVER)
        world.nas.run([PY, "-c", TCP_CLIENT, world.pub1.addr, str(PORT)], check=True)
        assert _result(proc).split()[0] == site.addr
    finally:
        rig.block_udp(site, False)
    assert _udp_seen_from(world.nas, world.pub1, 41011) == f"{site.addr} 41011"


def test_block_udp_at_creation() -> None:
    """add_nat_site(block_udp=True) builds a site whose UDP is dropped from the start."""
    with Rig() as rig:
        pub = rig.add_public_host("pub")
        site = rig.add_nat_site("home", block_udp=True)
        host = site.add_host("pc")
        assert _udp_seen_from(host, pub, 41020) == "timeout"


def test_link_mtu_shrinks_path_mtu(world: World) -> None:
    """set_link_mtu on a site's WAN: DF packets over it get 'fragmentation needed' from the
    router, smaller ones pass; restoring the MTU (and forgetting the learned PMTU) restores
    the path."""
    rig, site, nas, pub = world.rig, world.home1, world.nas, world.pub1
    rig.set_link_mtu(site, 1400)
    try:
        big = nas.run(["ping", "-M", "do", "-s", "1400", "-c1", "-W2", pub.addr])
        assert big.returncode != 0 and "mtu = 1400" in big.stdout, big.stdout
        small = nas.run(["ping", "-M", "do", "-s", "1300", "-c1", "-W2", pub.addr])
        assert small.returncode == 0, small.stdout
    finally:
        rig.set_link_mtu(site, 1500)
    # nas learned the smaller path MTU from the ICMP (cached ~10 min, like any host).
    nas.run(["ip", "route", "flush", "cache"], check=True)
    assert nas.run(["ping", "-M", "do", "-s", "1400", "-c1", "-W2", pub.addr]).returncode == 0


# --------------------------------------------------------------------------------------
# Lifecycle


def _dead(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _rig_namespaces(prefix: str) -> list[str]:
    return [ns for ns in list_namespaces() if ns.startswith(prefix + "-")]


def _small_world(rig: Rig) -> tuple[Host, Site, Host]:
    pub = rig.add_public_host("pub")
    site = rig.add_nat_site("home", underlay_mtu=1400)
    return pub, site, site.add_host("pc")


def test_exit_removes_namespaces_and_processes() -> None:
    """After the rig exits no namespace with its prefix remains, neither the processes it
    started nor one that escaped into its own session inside a rig namespace."""
    with Rig() as rig:
        pub, _, pc = _small_world(rig)
        assert len(_rig_namespaces(rig.prefix)) == 4
        sleeper = pc.popen(["sleep", "300"])
        stubborn = pub.popen(["sh", "-c", "trap '' TERM; sleep 300"])
        escaped = pub.run(["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!"])
        escaped_pid = int(escaped.stdout)
        assert not _dead(escaped_pid)
    assert _rig_namespaces(rig.prefix) == []
    assert sleeper.poll() is not None
    assert stubborn.poll() is not None
    assert _dead(escaped_pid)


def test_cleanup_when_body_raises() -> None:
    """An exception inside the `with` still tears everything down, then propagates."""
    prefix = ""
    with pytest.raises(RuntimeError, match="boom"), Rig() as rig:
        prefix = rig.prefix
        _, _, pc = _small_world(rig)
        proc = pc.popen(["sleep", "300"])
        raise RuntimeError("boom")
    assert prefix and _rig_namespaces(prefix) == []
    assert proc.poll() is not None


def test_cleanup_leftovers_spares_live_rigs_and_removes_orphans() -> None:
    """cleanup_leftovers removes namespaces of a rig whose owner is gone, but not those of
    a rig still in use by a live process."""
    orphan = "zt" + secrets.token_hex(2)
    subprocess.run(["ip", "netns", "add", f"{orphan}-gone"], check=True)
    try:
        with Rig() as rig:
            rig.add_public_host("alive")
            assert cleanup_leftovers(rig.prefix) == []
            assert len(_rig_namespaces(rig.prefix)) == 2
            assert cleanup_leftovers(orphan) == [f"{orphan}-gone"]
            assert _rig_namespaces(orphan) == []
    finally:
        subprocess.run(["ip", "netns", "del", f"{orphan}-gone"], capture_output=True)
