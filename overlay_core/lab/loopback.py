"""A whole overlay in one process on 127.0.0.1: roots and leaves as real `Daemon`s.

Used by the daemon tests, the benches, and the non-root `ztui demo` (demo/world_loopback.py
plays the hosts behind its in-memory TAPs). Every node gets its own home under `base_dir`,
binds 127.0.0.1 on an ephemeral port, advertises only 127.0.0.1, and serves its control
socket, so the console can be pointed at any of them.

    async with LoopbackOverlay(tmp) as net:
        root = await net.add_root()
        a, b = await net.add_leaf("a"), await net.add_leaf("b")
        await net.wait_online()
        reply = await a.echo(b.address, timeout_s=2)

Roots must be added before the leaves that should know them: a leaf's roots list is the
roots present when it starts. `base_dir` should be short: control socket paths are limited
to 107 bytes.

With `memory_taps=True` every node opens its TAP devices from its own MemoryTapFactory, kept
in `net.taps[name]` across restarts of that node, so tests need no root:

    net = LoopbackOverlay(tmp, memory_taps=True)
    ...
    net.taps["a"][tap_name(nwid)].inject(frame)
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from types import TracebackType
from typing import Any

from overlay_core.lab.memtap import MemoryTapFactory
from overlay_core.proto.roots import RootEntry

from ..io.daemon import Daemon
from ..io.startup import DaemonConfig

LOOPBACK = "127.0.0.1"


class LoopbackOverlay:
    def __init__(self, base_dir: Path, *, memory_taps: bool = False) -> None:
        self.base_dir = Path(base_dir)
        self.daemons: dict[str, Daemon] = {}
        self.roots: list[RootEntry] = []
        self.memory_taps = memory_taps
        self.taps: dict[str, MemoryTapFactory] = {}

    async def __aenter__(self) -> LoopbackOverlay:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def config(self, name: str, **overrides: Any) -> DaemonConfig:
        base = DaemonConfig(
            home=self.base_dir / name,
            port=0,
            binds=[LOOPBACK],
            advertise=[LOOPBACK],
            roots=list(self.roots),
        )
        if self.memory_taps:
            base.tap_factory = self.taps.setdefault(name, MemoryTapFactory()).open
        return dataclasses.replace(base, **overrides)

    async def add(self, name: str, **overrides: Any) -> Daemon:
        if name in self.daemons:
            raise ValueError(f"a node named {name!r} is already running")
        daemon = Daemon(self.config(name, **overrides))
        await daemon.start()
        self.daemons[name] = daemon
        return daemon

    async def add_root(self, name: str = "root", **overrides: Any) -> Daemon:
        daemon = await self.add(name, is_root=True, **overrides)
        self.roots.append(daemon.root_entry([LOOPBACK]))
        return daemon

    async def add_leaf(self, name: str, **overrides: Any) -> Daemon:
        return await self.add(name, **overrides)

    def write_roots_file(self, path: Path) -> Path:
        """The roots added so far as a roots file at `path` (for `overlayd --roots`)."""
        path.write_text("".join(entry.to_text() + "\n" for entry in self.roots))
        return path

    async def wait_online(self, timeout_s: float = 10.0) -> None:
        """Until every leaf reaches at least one root; TimeoutError names the laggards."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            waiting = [
                name
                for name, daemon in self.daemons.items()
                if not daemon.config.is_root and not daemon.status().online
            ]
            if not waiting:
                return
            if loop.time() >= deadline:
                raise TimeoutError(f"not online after {timeout_s:g} s: {', '.join(waiting)}")
            await asyncio.sleep(0.05)

    async def stop(self, name: str) -> None:
        daemon = self.daemons.pop(name)
        await daemon.stop()

    async def close(self) -> None:
        daemons, self.daemons = list(self.daemons.values()), {}
        await asyncio.gather(*(d.stop() for d in daemons), return_exceptions=True)
