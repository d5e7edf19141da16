"""The demo without root: the same nodes as Daemons in this process on 127.0.0.1.

No namespaces, NAT or TAP devices: every member opens a MemoryTap, so the network, its
members and their approval are real (the controller signs configs, members get addresses),
but every peer is DIRECT. The hosts behind the in-memory TAPs are played here: they ping each
other every second (ICMP echo frames injected into one TAP, answered when they come out of
the other) and send a 256 KB burst of UDP frames every 10 s, so latency, peer and port
counters move as they would with real devices.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Callable
from typing import Any

import httpx

from ..io.home import Home
from ..io.tap_contract import tap_name
from ..lab.loopback import LoopbackOverlay
from ..lab.memtap import MemoryTap
from ..proto.states import NetworkState
from . import NETWORK_NAME, POOL
from .state import DemoState

Progress = Callable[[str], None]

ROOTS = ["root1", "root2"]
LEAVES = ["ctl", "nas", "laptop", "phone", "guest"]
APPROVED = ["ctl", "nas", "laptop", "phone"]
PINGS = [("ctl", "nas"), ("ctl", "laptop"), ("ctl", "phone"), ("laptop", "nas"), ("phone", "nas")]
TRANSFERS = [("laptop", "ctl", 0), ("phone", "nas", 5)]  # src, dst, second of the 10
TRANSFER_BYTES = 256 * 1024
FRAME_PAYLOAD = 1400
WAIT_S = 20.0
TRAFFIC = "ping every second between members; 256 KB of UDP every 10 s (in-memory TAPs)"

ETH_IPV4 = 0x0800
PROTO_ICMP, PROTO_UDP = 1, 17


async def run(
    state: DemoState, notice: str, progress: Progress, ready: Callable[[dict[str, Any]], None]
) -> None:
    """Build, call `ready(info)` (with `notice` in it), play the hosts until cancelled;
    always stop the nodes."""
    net = LoopbackOverlay(state.homes, memory_taps=True)
    clients: dict[str, httpx.AsyncClient] = {}
    try:
        info, hosts = await build(net, clients, progress)
        ready({**info, "notice": notice})
        await hosts.play()
    finally:
        progress("stopping the daemons ...")
        for client in clients.values():
            await client.aclose()
        await net.close()


async def build(
    net: LoopbackOverlay, clients: dict[str, httpx.AsyncClient], progress: Progress
) -> tuple[dict[str, Any], Hosts]:
    loop = asyncio.get_running_loop()
    started = loop.time()

    def done(what: str) -> None:
        progress(f"  {what} ({loop.time() - started:.1f} s)")

    progress(f"making identities for {', '.join(ROOTS + LEAVES)} ...")
    net.base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    homes = [Home(net.base_dir / name) for name in ROOTS + LEAVES]
    await asyncio.gather(*(asyncio.to_thread(h.load_or_create_identity) for h in homes))
    progress("starting root1 and root2 on 127.0.0.1 ...")
    for name in ROOTS:
        await net.add_root(name)
    progress(f"starting {', '.join(LEAVES)} on 127.0.0.1 (in-memory TAP devices) ...")
    for name in LEAVES:
        await net.add_leaf(name)
        transport = httpx.AsyncHTTPTransport(uds=str(net.daemons[name].control_socket_path))
        clients[name] = httpx.AsyncClient(
            transport=transport, base_url="http://overlayd", timeout=10
        )
    await net.wait_online(WAIT_S)
    done(", ".join(f"{n} {d.identity.address_text}" for n, d in net.daemons.items()))

    async def call(name: str, method: str, path: str, body: Any = None) -> Any:
        response = await clients[name].request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{name}: {method} {path} -> {response.status_code} {response.text}")
        return response.json()

    progress(f'creating the private network "{NETWORK_NAME}" ({POOL}) on ctl ...')
    record = {"name": NETWORK_NAME, "pools": [POOL]}
    nwid = (await call("ctl", "POST", "/controller/networks", record))["nwid"]
    for name in LEAVES:
        await call(name, "POST", f"/networks/{nwid}")
    address = {name: d.identity.address_text for name, d in net.daemons.items()}
    members = f"/controller/networks/{nwid}/members"

    async def asked() -> bool:
        known = {m["address"] for m in await call("ctl", "GET", members)}
        return all(address[name] in known for name in LEAVES)

    await until(asked, "join requests on ctl")
    progress(f"approving {', '.join(APPROVED)}; guest waits for approval ...")
    for name in LEAVES:
        fields = {"name": name, "authorized": True} if name in APPROVED else {"name": name}
        await call("ctl", "PATCH", f"{members}/{address[name]}", fields)
    views: dict[str, dict[str, Any]] = {}

    async def configured() -> bool:
        for name in APPROVED:
            view = await call(name, "GET", f"/networks/{nwid}")
            if view["state"] != NetworkState.OK or view["device"] is None or not view["addresses"]:
                return False
            views[name] = view
        return True

    await until(configured, "members OK with addresses")
    ips = {name: view["addresses"][0].split("/")[0] for name, view in views.items()}
    done(", ".join(f"{name} {ip}" for name, ip in ips.items()))
    progress(f"starting traffic: {TRAFFIC} ...")
    hosts = Hosts(net, int(nwid, 16), {n: (mac(v["mac"]), ips[n]) for n, v in views.items()})

    def describe(name: str) -> dict[str, Any]:
        daemon = net.daemons[name]
        role = "root" if name in ROOTS else ("controller" if name == "ctl" else "member")
        member = "authorized" if name in APPROVED else ("pending" if name == "guest" else None)
        return {
            "role": role,
            "address": address[name],
            "home": str(daemon.home.path),
            "underlay": f"127.0.0.1:{daemon.udp_port}",
            "public": None,
            "nat": "none",
            "namespace": None,
            "overlay_ip": ips.get(name),
            "member": member,
        }

    info = {
        "simulated": True,
        "home": str(net.daemons["ctl"].home.path),
        "network": {"nwid": nwid, "name": NETWORK_NAME, "pool": POOL},
        "nodes": {name: describe(name) for name in ROOTS + LEAVES},
        "traffic": TRAFFIC,
        "namespaces": [],
    }
    return info, hosts


async def until(check: Callable[[], Any], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not await check():
        if loop.time() > deadline:
            raise RuntimeError(f"timed out after {WAIT_S:g} s waiting for {what}")
        await asyncio.sleep(0.1)


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


class Hosts:
    """The hosts behind the members' in-memory TAPs: pings, replies and bulk transfers."""

    def __init__(self, net: LoopbackOverlay, nwid: int, hosts: dict[str, tuple[bytes, str]]):
        self.net = net
        self.device = tap_name(nwid)
        self.hosts = {n: (m, ipaddress.IPv4Address(ip).packed) for n, (m, ip) in hosts.items()}
        self.ident = 0

    def tap(self, name: str) -> MemoryTap | None:
        factory = self.net.taps.get(name)
        return factory.get(self.device) if factory is not None else None

    def send(self, src: str, dst: str, proto: int, payload: bytes) -> None:
        tap = self.tap(src)
        if tap is None:
            return
        (src_mac, src_ip), (dst_mac, dst_ip) = self.hosts[src], self.hosts[dst]
        self.ident = (self.ident + 1) & 0xFFFF
        tap.inject(ether(dst_mac, src_mac, ipv4(src_ip, dst_ip, proto, payload, self.ident)))

    def answer(self) -> None:
        """Drain every TAP (so nothing piles up) and answer the echo requests in it."""
        by_ip = {ip: name for name, (_, ip) in self.hosts.items()}
        for name in list(self.net.taps):
            tap = self.tap(name)
            if tap is None:
                continue
            for frame in tap.take_written():
                src = by_ip.get(frame[26:30])
                if name in self.hosts and src is not None and is_echo_request(frame):
                    self.send(name, src, PROTO_ICMP, icmp(0, frame[34 + 4 :]))

    async def play(self) -> None:
        second = 0
        while True:
            for src, dst in PINGS:
                self.send(src, dst, PROTO_ICMP, icmp(8, struct.pack("!HH", 0x7A7A, second)))
            for src, dst, at in TRANSFERS:
                if second % 10 == at:
                    await self.transfer(src, dst)
            for _ in range(10):
                await asyncio.sleep(0.1)
                self.answer()
            second += 1

    async def transfer(self, src: str, dst: str) -> None:
        udp = struct.pack("!HHHH", 40000, 7000, 8 + FRAME_PAYLOAD, 0) + b"\x5a" * FRAME_PAYLOAD
        for index in range(TRANSFER_BYTES // FRAME_PAYLOAD):
            self.send(src, dst, PROTO_UDP, udp)
            if index % 16 == 15:
                await asyncio.sleep(0.005)
                self.answer()


# ---- frames ------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(dst: bytes, src: bytes, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ETH_IPV4) + payload


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64,
                         proto, 0, src, dst)  # fmt: skip
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def icmp(kind: int, rest: bytes) -> bytes:
    """An ICMP echo request (8) or reply (0); `rest` is identifier, sequence and data."""
    body = struct.pack("!BBH", kind, 0, 0) + rest
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def is_echo_request(frame: bytes) -> bool:
    return (
        len(frame) >= 42
        and struct.unpack_from("!H", frame, 12)[0] == ETH_IPV4
        and frame[14] == 0x45
        and frame[23] == PROTO_ICMP
        and frame[34] == 8
    )


__all__ = ["run"]
