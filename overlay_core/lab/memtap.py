"""MemoryTap: a TAP device in memory, for the no-root `ztui demo` and the daemon tests.

It has TapDevice's surface (`TapLike`): `write` records frames instead of handing them to
a kernel, `inject(frame)` plays the host sending a frame (it calls on_frame([frame]), like
a read from /dev/net/tun would), and `configure` records the settings. Failures can be
staged: `open_error` / `configure_error` make the next call raise, `unplug()` plays the
device being deleted from outside.

MemoryTaps are made by a `MemoryTapFactory`, whose `open` is a `TapOpener` like
`TapDevice.open` and keeps every device it made, by name; a daemon takes it as its
`tap_factory` (lab/loopback.py's `LoopbackOverlay(memory_taps=True)` does this for
every node):

    taps = MemoryTapFactory()
    daemon = Daemon(DaemonConfig(home, tap_factory=taps.open))
    ...
    taps[tap_name(nwid)].inject(arp_request)
    assert taps[tap_name(nwid)].written  # what the overlay delivered to the "host"
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..io.tap_contract import (
    ErrorHandler,
    FrameHandler,
    TapCounters,
    TapError,
    TapOpener,
    TapTally,
    default_alias,
)

_ifindexes = itertools.count(1000)


@dataclass(frozen=True, slots=True)
class TapSettings:
    """The arguments of one configure() call, as given."""

    mtu: int | None
    mac: bytes | None
    addresses: tuple[str, ...]
    routes: tuple[tuple[str, str | None], ...]


class MemoryTap:
    """An in-memory TAP. Attributes a test may read or set:

    Attributes:
        written: frames the overlay wrote to the "host", oldest first.
        mtu, mac, alias: the link's current settings (open, then configure, change them).
        settings: the last configure() call's arguments, None before the first.
        configure_calls: how many times configure() was called.
        drop_writes: while True, write() drops (as a full kernel queue would).
        configure_error: raised (once) by the next configure() call.
        closed: close() was called.
    """

    def __init__(
        self,
        name: str,
        mac: bytes,
        mtu: int,
        on_frame: FrameHandler,
        *,
        alias: str | None = None,
        on_error: ErrorHandler | None = None,
    ) -> None:
        self._name = name
        self._ifindex = next(_ifindexes)
        self._on_frame = on_frame
        self._on_error = on_error
        self.mac = mac
        self.mtu = mtu
        self.alias = alias
        self.written: list[bytes] = []
        self.settings: TapSettings | None = None
        self.configure_calls = 0
        self.drop_writes = False
        self.configure_error: TapError | None = None
        self.error: TapError | None = None
        self.closed = False
        self._tally = TapTally()

    @property
    def name(self) -> str:
        return self._name

    @property
    def ifindex(self) -> int:
        return self._ifindex

    @property
    def offload(self) -> bool:
        return False

    @property
    def counters(self) -> TapCounters:
        return self._tally.snapshot()

    def write(self, frame: bytes) -> bool:
        if self.closed or self.error is not None or self.drop_writes:
            self._tally.write_drops += 1
            return False
        self.written.append(bytes(frame))
        self._tally.frames_written += 1
        self._tally.bytes_written += len(frame)
        return True

    async def configure(
        self,
        mtu: int | None = None,
        mac: bytes | None = None,
        addresses: Sequence[str] = (),
        routes: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        if self.closed:
            raise TapError(f"{self._name} is closed")
        self.configure_calls += 1
        if self.configure_error is not None:
            error, self.configure_error = self.configure_error, None
            raise error
        self.settings = TapSettings(mtu, mac, tuple(addresses), tuple(routes))
        if mtu is not None:
            self.mtu = mtu
        if mac is not None:
            self.mac = mac

    def close(self) -> None:
        self.closed = True

    # ---- test controls --------------------------------------------------------------

    def inject(self, frame: bytes) -> None:
        """Play the host sending `frame` into the interface: on_frame gets it now."""
        if self.closed or self.error is not None:
            raise RuntimeError(f"inject into {self._name}, which is closed or failed")
        self._tally.frames_read += 1
        self._tally.bytes_read += len(frame)
        self._on_frame([bytes(frame)])

    def take_written(self) -> list[bytes]:
        """The frames written so far, oldest first; clears the list."""
        frames, self.written = self.written, []
        return frames

    def unplug(self) -> None:
        """Play `ip link del`: the device fails and on_error hears about it."""
        self.error = TapError(f"{self._name} was deleted from outside overlayd")
        if self._on_error is not None:
            self._on_error(self.error)


class MemoryTapFactory:
    """Opens MemoryTaps and remembers them: `taps[name]`, `name in taps`, `taps.opened`.

    Attributes:
        open_error: raised (once) by the next open() instead of making a device.
        opened: every MemoryTap made, in order, closed ones included.
    """

    def __init__(self) -> None:
        self.opened: list[MemoryTap] = []
        self.open_error: TapError | None = None

    async def open(
        self,
        name: str,
        mac: bytes,
        mtu: int,
        on_frame: FrameHandler,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        alias: str | None = None,
        on_error: ErrorHandler | None = None,
        offload: bool = False,
    ) -> MemoryTap:
        """As TapDevice.open, with the same alias default; no checks beyond the MAC's
        length. Offloads are never granted (the device's `offload` is False): frames
        stay plain."""
        if self.open_error is not None:
            error, self.open_error = self.open_error, None
            raise error
        if len(mac) != 6:
            raise TapError(f"MAC for {name} must be 6 bytes, not {len(mac)}")
        live = self.get(name)
        if live is not None:  # like IFF_TUN_EXCL: one live device per name
            raise TapError(f"interface {name} already exists")
        if alias is None:
            alias = default_alias(name)
        tap = MemoryTap(name, mac, mtu, on_frame, alias=alias, on_error=on_error)
        self.opened.append(tap)
        return tap

    def get(self, name: str) -> MemoryTap | None:
        """The live (not closed) device called `name`, if any."""
        return next((t for t in self.opened if t.name == name and not t.closed), None)

    def __getitem__(self, name: str) -> MemoryTap:
        tap = self.get(name)
        if tap is None:
            raise KeyError(f"no open MemoryTap {name!r}")
        return tap

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


if TYPE_CHECKING:  # mypy proves in-memory TAPs fit the same interface as TapDevice
    _factory_opener: TapOpener = MemoryTapFactory().open
