"""The real TAP adapter (overlay_core.io.tap) against a real kernel, in a throwaway namespace.

Each test gets a fresh network namespace and drives TapDevice through tests/netns/
tap_agent.py, a small asyncio program started in that namespace with `ip netns exec` (see
its docstring for why a separate process). The test itself stays in the host namespace
and looks at the result the way an operator would, with `ip -n NS -j link/addr/route`.
The namespace is deleted, and the agents and pings killed, however the test ends; nothing
is created in the host namespace.

The ping test is the end-to-end proof: the kernel's ARP request and ICMP echo request come
out of the TAP (read direction), and the ARP reply and echo reply we write back make `ping`
succeed (write direction).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from overlay_core.io.tap import tap_name
from overlay_core.io.tap_contract import NOT_ROOT_MESSAGE

pytestmark = pytest.mark.netns

AGENT = Path(__file__).with_name("tap_agent.py")
NWID = 0x8056C2E21C000001
NAME = tap_name(NWID)
TAP_MAC = bytes.fromhex("02aabbccdd01")
PEER_MAC = bytes.fromhex("02aabbccdd02")
TAP_IP = "10.99.0.1"
PEER_IP = "10.99.0.2"
ANSWER_TIMEOUT_S = 10.0
FRAME_TIMEOUT_S = 5.0


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


class Agent:
    """One tap_agent.py process in the namespace; `call` sends a request, returns the answer."""

    def __init__(self, ns: str, *flags: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(AGENT), *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ifindex: int | None = None  # set by the `agent` fixture from open's answer

    def call(self, op: str, name: str = NAME, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, "name": name, **kw}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], ANSWER_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise AssertionError(f"agent gave no answer to {op}: {self.stop()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ok(self, op: str, name: str = NAME, **kw: Any) -> dict[str, Any]:
        """call() that fails the test on an error answer."""
        answer = self.call(op, name, **kw)
        assert "error" not in answer, f"{op} failed: {answer['error']}"
        return answer

    def wait_frame(self, match: Callable[[bytes], bool], what: str) -> bytes:
        """The first frame read from the TAP that `match`es; others (IPv6 noise) skipped."""
        seen: list[bytes] = []
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        while time.monotonic() < deadline:
            for hexframe in self.ok("frames")["frames"]:
                frame = bytes.fromhex(hexframe)
                if match(frame):
                    return frame
                seen.append(frame)
            time.sleep(0.05)
        raise AssertionError(f"no {what} from the TAP; saw {[f[:42].hex() for f in seen]}")

    def stop(self) -> str:
        """Kill the agent (a process we started) and return its stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        return err


class World:
    """A fresh namespace, the agents and commands started in it, and `ip` views of it."""

    def __init__(self) -> None:
        self.ns = "zttap-" + secrets.token_hex(3)
        self.procs: list[subprocess.Popen[str]] = []
        self.agents: list[Agent] = []

    def agent(self, *flags: str) -> Agent:
        agent = Agent(self.ns, *flags)
        self.agents.append(agent)
        return agent

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def ip_json(self, *args: str) -> Any:
        proc = _sh("ip", "-n", self.ns, "-j", *args)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout or "[]")

    def link(self, name: str = NAME) -> dict[str, Any] | None:
        links = [li for li in self.ip_json("link", "show") if li["ifname"] == name]
        return links[0] if links else None

    def addresses(self, name: str = NAME) -> set[str]:
        """Our addresses on `name` (scope global; the kernel's fe80:: is scope link)."""
        return {
            f"{a['local']}/{a['prefixlen']}"
            for dev in self.ip_json("addr", "show", "dev", name)
            for a in dev["addr_info"]
            if a.get("scope") == "global"
        }

    def routes(self, name: str = NAME) -> set[tuple[str, str | None]]:
        """Static routes (the ones we add) via `name`, both families: {(dst, gateway)}."""
        found = set()
        for family in ("-4", "-6"):
            for r in self.ip_json(family, "route", "show", "dev", name, "proto", "static"):
                found.add((r["dst"], r.get("gateway")))
        return found

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        for agent in self.agents:
            agent.stop()
        _sh("ip", "netns", "del", self.ns)


@pytest.fixture
def world() -> Iterator[World]:
    world = World()
    try:
        created = _sh("ip", "netns", "add", world.ns)
        assert created.returncode == 0, created.stderr
        yield world
    finally:
        world.close()
    assert world.ns not in _sh("ip", "netns", "list").stdout


@pytest.fixture
def agent(world: World) -> Agent:
    """An agent with the TAP NAME already open (MTU 2800, TAP_MAC)."""
    agent = world.agent()
    agent.ifindex = agent.ok("open", mac=TAP_MAC.hex(), mtu=2800)["ifindex"]
    return agent


# ---- frames ------------------------------------------------------------------------


def _ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def is_arp_request_for(ip: str) -> Callable[[bytes], bool]:
    def match(frame: bytes) -> bool:
        return (
            frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x01" and frame[38:42] == _ip4(ip)
        )

    return match


def arp_reply(sender_mac: bytes, sender_ip: str, target_mac: bytes, target_ip: str) -> bytes:
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
    arp += sender_mac + _ip4(sender_ip) + target_mac + _ip4(target_ip)
    return target_mac + sender_mac + b"\x08\x06" + arp


def is_echo_request_to(ip: str) -> Callable[[bytes], bool]:
    def match(frame: bytes) -> bool:
        ihl = (frame[14] & 0x0F) * 4 if len(frame) > 14 else 0
        return (
            frame[12:14] == b"\x08\x00"
            and frame[23] == 1  # ICMP
            and frame[30:34] == _ip4(ip)
            and frame[14 + ihl] == 8  # echo request
        )

    return match


def echo_reply_for(request: bytes) -> bytes:
    """The Ethernet frame a host at the request's destination would answer with."""
    ihl = (request[14] & 0x0F) * 4
    src, dst = request[26:30], request[30:34]
    icmp = bytearray(request[14 + ihl : 14 + struct.unpack("!H", request[16:18])[0]])
    icmp[0] = 0  # echo reply; id, sequence and payload stay as they were
    icmp[2:4] = b"\0\0"
    icmp[2:4] = struct.pack("!H", _checksum(bytes(icmp)))
    header = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, dst, src)
    )
    header[10:12] = struct.pack("!H", _checksum(bytes(header)))
    return request[6:12] + request[0:6] + b"\x08\x00" + bytes(header) + bytes(icmp)


# ---- tests -------------------------------------------------------------------------


def test_open_creates_the_named_link_with_alias_mtu_mac_and_up(world: World, agent: Agent) -> None:
    """open() makes a TAP called tap_name(nwid), alias = 16-hex network id, with the MTU and
    MAC given, up; the ifindex it reports is the kernel's."""
    link = world.link()
    assert link is not None, f"no {NAME} in {world.ip_json('link', 'show')}"
    assert link["ifalias"] == f"{NWID:016x}"
    assert link["mtu"] == 2800
    assert link["address"] == "02:aa:bb:cc:dd:01"
    assert "UP" in link["flags"]
    assert link["ifindex"] == agent.ifindex
    details = world.ip_json("-d", "link", "show", NAME)[0]
    assert details["linkinfo"]["info_kind"] == "tun"
    assert details["linkinfo"]["info_data"]["type"] == "tap"
    assert details["linkinfo"]["info_data"]["pi"] is False


def test_configure_installs_ipv4_and_ipv6_addresses_and_routes(world: World, agent: Agent) -> None:
    """configure() adds v4 and v6 addresses and routes with and without a gateway."""
    agent.ok(
        "configure",
        addresses=["10.99.0.1/24", "fd99::1/64"],
        routes=[["10.50.0.0/16", "10.99.0.254"], ["10.51.0.0/16", None], ["fd50::/48", "fd99::fe"]],
    )
    assert world.addresses() == {"10.99.0.1/24", "fd99::1/64"}
    assert world.routes() == {
        ("10.50.0.0/16", "10.99.0.254"),
        ("10.51.0.0/16", None),
        ("fd50::/48", "fd99::fe"),
    }
    v4 = world.ip_json("-4", "addr", "show", "dev", NAME)[0]["addr_info"][0]
    assert v4["broadcast"] == "10.99.0.255"


def test_reconfigure_removes_what_is_no_longer_wanted(world: World, agent: Agent) -> None:
    """A second configure() with other addresses/routes removes the old ones (ours only:
    the kernel's fe80:: link-local stays), and changes MTU and MAC in place."""
    agent.ok(
        "configure",
        addresses=["10.99.0.1/24", "fd99::1/64"],
        routes=[["10.50.0.0/16", "10.99.0.254"], ["fd50::/48", "fd99::fe"]],
    )
    agent.ok(
        "configure",
        mtu=1400,
        mac="02aabbccdd09",
        addresses=["10.98.0.1/24"],
        routes=[["10.60.0.0/16", "10.98.0.254"]],
    )
    assert world.addresses() == {"10.98.0.1/24"}
    assert world.routes() == {("10.60.0.0/16", "10.98.0.254")}
    link = world.link()
    assert link is not None and link["mtu"] == 1400 and link["address"] == "02:aa:bb:cc:dd:09"
    scopes = {
        a["scope"] for d in world.ip_json("-6", "addr", "show", "dev", NAME) for a in d["addr_info"]
    }
    assert scopes == {"link"}
    agent.ok("configure")
    assert world.addresses() == set() and world.routes() == set()


def test_configure_repairs_drift(world: World, agent: Agent) -> None:
    """configure() with the same settings restores an address and route removed by hand."""
    settings = {"addresses": ["10.99.0.1/24"], "routes": [["10.50.0.0/16", "10.99.0.254"]]}
    agent.ok("configure", **settings)
    assert _sh("ip", "-n", world.ns, "addr", "flush", "dev", NAME).returncode == 0
    assert world.addresses() == set() and world.routes() == set()
    agent.ok("configure", **settings)
    assert world.addresses() == {"10.99.0.1/24"}
    assert world.routes() == {("10.50.0.0/16", "10.99.0.254")}


def test_configure_errors_are_one_actionable_line(world: World, agent: Agent) -> None:
    """Bad input and kernel refusals come back as TapError naming the device and change."""
    bad = agent.call("configure", addresses=["10.99.0.300/24"])
    assert bad["type"] == "TapError" and "bad address" in bad["error"]
    offlink = agent.call("configure", routes=[["10.50.0.0/16", "10.97.0.1"]])
    assert offlink["error"] == (
        f"cannot add route 10.50.0.0/16 via 10.97.0.1 on {NAME}: gateway is not on a subnet of {NAME}"
    )


def test_ping_through_the_tap_works_in_both_directions(world: World, agent: Agent) -> None:
    """ping from the namespace: the TAP reads the kernel's ARP who-has and then its ICMP echo
    request; writing an ARP reply and an echo reply back makes ping succeed."""
    agent.ok("configure", addresses=[f"{TAP_IP}/24"])
    ping = world.popen("ping", "-n", "-c1", "-W5", PEER_IP)

    who_has = agent.wait_frame(is_arp_request_for(PEER_IP), f"ARP who-has {PEER_IP}")
    assert who_has[0:6] == b"\xff" * 6 and who_has[6:12] == TAP_MAC
    assert who_has[28:32] == _ip4(TAP_IP)  # "tell 10.99.0.1"
    assert agent.ok("write", frame=arp_reply(PEER_MAC, PEER_IP, TAP_MAC, TAP_IP).hex())["ok"]

    request = agent.wait_frame(is_echo_request_to(PEER_IP), f"ICMP echo request to {PEER_IP}")
    assert request[0:6] == PEER_MAC, "the kernel did not learn the MAC from our ARP reply"
    assert agent.ok("write", frame=echo_reply_for(request).hex())["ok"]

    out, _ = ping.communicate(timeout=15)
    assert ping.returncode == 0, out
    assert "1 received" in out
    counters = agent.ok("counters")
    assert counters["frames_written"] == 2 and counters["write_drops"] == 0
    assert counters["frames_read"] >= 2


def test_refused_writes_are_counted_not_raised(world: World, agent: Agent) -> None:
    """A frame the kernel refuses (a runt shorter than an Ethernet header) is a drop."""
    assert agent.ok("write", frame="ffffff")["ok"] is False
    assert agent.ok("counters")["write_drops"] == 1


def test_close_deletes_the_link(world: World, agent: Agent) -> None:
    """close() closes the fd, and the kernel deletes the (non-persistent) TAP at once."""
    agent.ok("configure", addresses=["10.99.0.1/24"], routes=[["10.50.0.0/16", None]])
    agent.ok("close")
    assert world.link() is None
    assert agent.call("write", frame="ff" * 60)["ok"] is False


def test_a_name_in_use_is_refused(world: World, agent: Agent) -> None:
    """A second open() of a name that exists (ours, still attached) fails, and says how to
    clear a leftover; the first device is untouched."""
    answer = world.agent().call("open", mac=PEER_MAC.hex(), mtu=1500)
    assert answer["error"] == (
        f"interface {NAME} already exists (another overlayd on this network, "
        f"or a leftover: ip link del {NAME})"
    )
    link = world.link()
    assert link is not None and link["address"] == "02:aa:bb:cc:dd:01"


def test_deletion_from_outside_is_reported_once(world: World, agent: Agent) -> None:
    """`ip link del` under a live TapDevice: the reader stops (no busy loop on EBADFD) and
    on_error hears it once, with a message that tells the operator what to do."""
    assert _sh("ip", "-n", world.ns, "link", "del", NAME).returncode == 0
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while not (errors := agent.ok("errors")["errors"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert errors == [f"{NAME} was deleted from outside overlayd; leave and rejoin the network"]
    time.sleep(0.2)
    assert agent.ok("errors")["errors"] == errors
    assert agent.proc.poll() is None


def test_without_root_open_fails_with_the_not_root_message(world: World) -> None:
    """As user nobody (no capabilities), open() raises TapError with the one-line hint, and
    no interface is left behind."""
    answer = world.agent("--as-nobody").call("open", mac=TAP_MAC.hex(), mtu=2800)
    assert answer == {"error": NOT_ROOT_MESSAGE, "type": "TapError"}
    assert world.link() is None
