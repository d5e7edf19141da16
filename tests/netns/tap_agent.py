"""Runs real TapDevices inside a network namespace for tests/netns/test_tap.py.

    ip netns exec NS python tests/netns/tap_agent.py [--as-nobody]

Why a separate process: the TAP must be created inside a throwaway namespace, and the
test process must stay in the host namespace (os.setns in pytest would move every later
test, and forking a process that may hold an asyncio loop is fragile). `ip netns exec`
starts this agent in the namespace from its first instruction, exactly as the daemon will
be started, so TapDevice needs nothing namespace-specific. The test drives the agent
and checks the results with `ip -n NS -j ...` from outside.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.

    {"op": "open", "name": N, "mac": HEX, "mtu": 2800}  -> {"name": N, "ifindex": 7}
    {"op": "configure", "name": N, "mtu": .., "mac": HEX, "addresses": [..],
     "routes": [[target, gateway-or-null], ..]}         -> {}
    {"op": "write", "name": N, "frame": HEX}            -> {"ok": true}
    {"op": "frames", "name": N}                         -> {"frames": [HEX, ..]}  (drained)
    {"op": "counters", "name": N}                       -> {"frames_read": .., ..}
    {"op": "errors", "name": N}                         -> {"errors": [message, ..]}
    {"op": "close", "name": N}                          -> {}

A failure answers {"error": str(exc), "type": "TapError"}. EOF on stdin closes every
device and exits. `--as-nobody` drops to uid/gid nobody after all imports (the
interpreter under /root is unreadable for nobody), before anything touches a TAP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from overlay_core.io.tap import TapDevice, TapError

NOBODY_UID = NOBODY_GID = 65534


class Agent:
    def __init__(self) -> None:
        self.taps: dict[str, TapDevice] = {}
        self.frames: dict[str, list[bytes]] = {}
        self.errors: dict[str, list[str]] = {}

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op, name = req["op"], req["name"]
        if op == "open":
            frames = self.frames.setdefault(name, [])
            errors = self.errors.setdefault(name, [])
            tap = await TapDevice.open(
                name,
                bytes.fromhex(req["mac"]),
                req["mtu"],
                frames.extend,
                on_error=lambda exc: errors.append(str(exc)),
            )
            self.taps[name] = tap
            return {"name": tap.name, "ifindex": tap.ifindex}
        tap = self.taps[name]
        if op == "configure":
            mac = req.get("mac")
            await tap.configure(
                mtu=req.get("mtu"),
                mac=bytes.fromhex(mac) if mac else None,
                addresses=req.get("addresses", []),
                routes=[(t, g) for t, g in req.get("routes", [])],
            )
            return {}
        if op == "write":
            return {"ok": tap.write(bytes.fromhex(req["frame"]))}
        if op == "frames":
            frames, self.frames[name][:] = list(self.frames[name]), []
            return {"frames": [f.hex() for f in frames]}
        if op == "counters":
            return dataclasses.asdict(tap.counters)
        if op == "errors":
            return {"errors": list(self.errors[name])}
        if op == "close":
            tap.close()
            return {}
        raise ValueError(f"unknown op {op!r}")


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    agent = Agent()
    try:
        while line := await reader.readline():
            try:
                answer = await agent.handle(json.loads(line))
            except (TapError, KeyError, ValueError) as exc:
                answer = {"error": str(exc), "type": type(exc).__name__}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        for tap in agent.taps.values():
            tap.close()


if __name__ == "__main__":
    if "--as-nobody" in sys.argv[1:]:
        # Order matters: groups and gid while still root, the uid last. Leaving uid 0 for
        # good also clears every capability (no SECBIT_KEEP_CAPS), like a real non-root user.
        os.setgroups([])
        os.setgid(NOBODY_GID)
        os.setuid(NOBODY_UID)
    asyncio.run(main())
