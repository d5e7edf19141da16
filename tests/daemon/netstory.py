"""Helpers for the virtual-network daemon tests: API clients, polling, a ready network, and
the steps its stories share (both members approved, a frame delivered, a member cut off)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from overlay_core.io.daemon import Daemon
from overlay_core.io.tap import tap_name
from overlay_core.lab.loopback import LoopbackOverlay
from overlay_core.lab.memtap import MemoryTap

T = TypeVar("T")
POOL = "10.147.17.0/24"


def unix_client(daemon: Daemon) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=str(daemon.control_socket_path))
    return httpx.AsyncClient(transport=transport, base_url="http://overlayd", timeout=10)


async def until(
    check: Callable[[], Awaitable[T | None]], timeout_s: float, what: str, step_s: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after timeout_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(step_s)


async def network_state(client: httpx.AsyncClient, nwid: str) -> dict[str, Any]:
    response = await client.get(f"/networks/{nwid}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def wait_state(
    client: httpx.AsyncClient, nwid: str, state: str, timeout_s: float
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        data = await network_state(client, nwid)
        return data if data["state"] == state else None

    return await until(check, timeout_s, f"network {nwid} {state}")


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


@dataclass
class Story:
    """A root, a controller `ctl` hosting a private network, and members `a` and `b`."""

    net: LoopbackOverlay
    ctl: Daemon
    a: Daemon
    b: Daemon
    nwid: str
    api: dict[str, httpx.AsyncClient]

    def tap(self, name: str) -> MemoryTap:
        return self.net.taps[name][tap_name(int(self.nwid, 16))]

    async def approve(self, daemon: Daemon, authorized: bool = True) -> None:
        path = f"/controller/networks/{self.nwid}/members/{daemon.identity.address_text}"
        response = await self.api["ctl"].patch(path, json={"authorized": authorized})
        assert response.status_code == 200, response.text

    async def mac(self, name: str) -> bytes:
        return mac_bytes((await network_state(self.api[name], self.nwid))["mac"])

    async def approve_both(self) -> None:
        """Approve `a` and `b`, once both are denied, and wait until each sees both."""
        await wait_state(self.api["a"], self.nwid, "ACCESS_DENIED", 5)
        await wait_state(self.api["b"], self.nwid, "ACCESS_DENIED", 5)
        await self.approve(self.a)
        await self.approve(self.b)
        for name in ("a", "b"):

            async def sees_both(name: str = name) -> bool:
                data = await network_state(self.api[name], self.nwid)
                return data["state"] == "OK" and data["members"] == 2

            await until(sees_both, 2, f"{name} OK with both members")

    async def deliver(self, sender: str, receiver: str, frame: bytes, timeout_s: float) -> None:
        """Inject `frame` at `sender` until it comes out of `receiver`'s TAP (the first one
        may be dropped while certificates of membership are exchanged)."""

        async def check() -> bool:
            if frame in self.tap(receiver).take_written():
                return True
            self.tap(sender).inject(frame)
            await asyncio.sleep(0.05)
            return frame in self.tap(receiver).written

        await until(check, timeout_s, f"frame from {sender} at {receiver}", step_s=0.1)

    async def cut_off(self, member: str, other: str, frame: bytes) -> None:
        """`member`, deauthorized or removed, is shut out within 5 s: it is ACCESS_DENIED
        and `other` counts one member; then `frame`, injected at `member`'s TAP three
        times, never comes out of `other`'s (the other end drops what `member` still sends)."""

        async def shut_out() -> bool:
            own = await network_state(self.api[member], self.nwid)
            seen = await network_state(self.api[other], self.nwid)
            return own["state"] == "ACCESS_DENIED" and seen["members"] == 1

        await until(shut_out, 5, f"{member} cut off")
        self.tap(other).take_written()
        for _ in range(3):
            self.tap(member).inject(frame)
            await asyncio.sleep(0.1)
        assert frame not in self.tap(other).written


@asynccontextmanager
async def story(net: LoopbackOverlay) -> AsyncIterator[Story]:
    """Everyone online; `ctl` created the network; `a` and `b` joined and are waiting."""
    await net.add_root()
    ctl = await net.add_leaf("ctl")
    a = await net.add_leaf("a")
    b = await net.add_leaf("b")
    await net.wait_online()
    clients = {name: unix_client(d) for name, d in (("ctl", ctl), ("a", a), ("b", b))}
    try:
        response = await clients["ctl"].post(
            "/controller/networks", json={"name": "home", "pools": [POOL]}
        )
        assert response.status_code == 201, response.text
        nwid = response.json()["nwid"]
        for name in ("a", "b"):
            response = await clients[name].post(f"/networks/{nwid}")
            assert response.status_code == 201, response.text
        yield Story(net, ctl, a, b, nwid, clients)
    finally:
        for client in clients.values():
            await client.aclose()
