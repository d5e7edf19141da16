"""TapDevice: a real Linux TAP interface, one per joined virtual network.

The contract it fulfils is in tap_contract (re-exported here, so `from
overlay_core.io.tap import TapDevice, TapError, tap_name` is all the daemon needs).

How it is built: /dev/net/tun with IFF_TAP | IFF_NO_PI (plain Ethernet frames, no
packet-info header) and IFF_TUN_EXCL, non-blocking; frames are read by a loop.add_reader
callback that drains the descriptor; link settings, addresses and routes go through
pyroute2 netlink (tap_netlink).

Offloads (`open(..., offload=True)`): the device is made with IFF_VNET_HDR and told with
TUNSETOFFLOAD that we take partial checksums and TCP segmentation (TSO4/6), as QEMU does
for a guest NIC. The kernel then hands us TCP super-frames of up to 64 KB and partial
checksums instead of finished 1.5 KB frames, each read and write led by a 10-byte
virtio_net_hdr; proto/offload.py splits, validates and coalesces them. What the kernel
can't do is probed at open: without IFF_VNET_HDR (TUNGETFEATURES) the device opens plain;
if TUNSETOFFLOAD is refused, the header stays but carries nothing (offloads all off).

If the interface disappears under us (`ip link del`), reads fail with EBADFD forever and
the descriptor stays readable; the reader is then removed and `on_error` is told, instead
of the loop spinning on it.

Both open() and configure() are coroutines because pyroute2 0.9's synchronous IPRoute
cannot run inside a running asyncio loop (see tap_netlink). Namespaces need nothing
special: a daemon started with `ip netns exec NS` creates its TAP and opens its netlink
socket in NS.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import socket
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyroute2 import AsyncIPRoute

from overlay_core.proto.offload import VNET_HDR_BYTES

from . import tap_netlink as nl
from .tap_contract import (
    NO_TUN_MESSAGE,
    NOT_ROOT_MESSAGE,
    TUN_PATH,
    ErrorHandler,
    FrameHandler,
    TapCounters,
    TapError,
    TapLike,
    TapOpener,
    TapTally,
    config_error,
    default_alias,
    nwid_from_tap_name,
    open_error,
    tap_name,
)

__all__ = [
    "NOT_ROOT_MESSAGE",
    "NO_TUN_MESSAGE",
    "ErrorHandler",
    "FrameHandler",
    "TapCounters",
    "TapDevice",
    "TapError",
    "TapLike",
    "TapOpener",
    "nwid_from_tap_name",
    "tap_name",
]

log = logging.getLogger(__name__)

# linux/if_tun.h. TUNSETIFF = _IOW('T', 202, int).
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
# Refuse to attach to an interface that already exists: we want a fresh, non-persistent
# device that vanishes with our descriptor, never someone else's (EBUSY instead).
IFF_TUN_EXCL = 0x8000
IFF_VNET_HDR = 0x4000
IFNAMSIZ = 16
TUNGETFEATURES = 0x800454CF  # _IOR('T', 207, unsigned int)
TUNSETOFFLOAD = 0x400454D0  # _IOW('T', 208, unsigned int)
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04

# One read buffer, reused: bigger than any frame a TAP hands out (a TSO super-frame is at
# most 65535 IP bytes + 14-byte header + the virtio_net_hdr), so nothing is truncated.
READ_BUFFER_BYTES = 65536 + 64
# Reads per batch handed to on_frame: reading until EAGAIN saves a loop iteration per
# frame; the caps (count, and bytes for super-frames) keep a flood from starving timers
# and the UDP sockets, and bound what one batch holds.
MAX_FRAMES_PER_WAKEUP = 256
MAX_BATCH_FRAMES = 64
MAX_BATCH_BYTES = 512 * 1024


class TapDevice:
    """A real TAP interface. Create with `await TapDevice.open(...)`; see module docstring."""

    def __init__(
        self,
        fd: int,
        name: str,
        ifindex: int,
        on_frame: FrameHandler,
        on_error: ErrorHandler | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._fd = fd
        self._name = name
        self._ifindex = ifindex
        self._on_frame = on_frame
        self._on_error = on_error
        self._loop = loop
        self._buf = bytearray(READ_BUFFER_BYTES)
        self._view = memoryview(self._buf)
        self._reading = False
        self._addresses: set[nl.Interface] = set()
        self._routes: set[nl.Route] = set()
        self._tally = TapTally()
        self._error: TapError | None = None
        self._offload = False

    @classmethod
    async def open(
        cls,
        name: str,
        mac: bytes,
        mtu: int,
        on_frame: FrameHandler,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        alias: str | None = None,
        on_error: ErrorHandler | None = None,
        offload: bool = False,
    ) -> TapDevice:
        """Create, set up and start reading the TAP interface `name`.

        Args:
            name: interface name, usually tap_name(nwid); at most 15 characters.
            mac: the 6-byte unicast MAC for the interface.
            mtu: the virtual network's MTU.
            on_frame: called with each batch of frames read from the interface.
            loop: the loop to read on; the running loop by default.
            alias: ifalias shown by `ip link`; for a tap_name() name, the network ID in
                16 hex digits by default.
            on_error: called once if the device fails later (deleted from outside).
            offload: ask for a virtio_net_hdr and TSO/checksum offloads (see `offload`).
        """
        loop = loop or asyncio.get_running_loop()
        # The kernel would silently truncate a longer name (ifr_name is 16 bytes with NUL).
        if not name or len(name.encode()) >= IFNAMSIZ or "/" in name or name.strip() != name:
            raise TapError(f"bad interface name {name!r} (1-15 bytes, no / or spaces)")
        nl.check_mac(mac, name)
        if alias is None:
            alias = default_alias(name)
        vnet = offload and _has_vnet_hdr()
        fd, name = _create(name, IFF_VNET_HDR if vnet else 0)
        try:
            ifindex = _ifindex(name)
            async with AsyncIPRoute() as ipr:
                await nl.set_link(ipr, ifindex, name, mtu=mtu, mac=mac, alias=alias)
        except BaseException:
            os.close(fd)  # deletes the half-configured interface again
            raise
        tap = cls(fd, name, ifindex, on_frame, on_error, loop)
        tap._offload = vnet
        if vnet:
            try:
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            except OSError as exc:  # the header stays, empty: plain frames behind it
                log.info("TAP %s: the kernel refused offloads (%s)", name, exc.strerror)
        loop.add_reader(fd, tap._on_readable)
        tap._reading = True
        log.info(
            "TAP %s (ifindex %d) up, MTU %d%s", name, ifindex, mtu, ", offloads on" if vnet else ""
        )
        return tap

    @property
    def name(self) -> str:
        return self._name

    @property
    def ifindex(self) -> int:
        return self._ifindex

    @property
    def offload(self) -> bool:
        return self._offload

    @property
    def error(self) -> TapError | None:
        """Set when the device failed after open (it was deleted, say); it is then dead."""
        return self._error

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def counters(self) -> TapCounters:
        return self._tally.snapshot()

    def write(self, frame: bytes) -> bool:
        """Give one Ethernet frame to the host; False (and counted) if it was dropped.

        Any OSError is a drop: EAGAIN/ENOBUFS under pressure, EIO while an admin has set
        the link down, EINVAL for a runt frame, EBADFD once the device is gone (the
        reader reports that one). The data path must not raise over one frame.
        """
        tally = self._tally
        if self._fd < 0:
            tally.write_drops += 1
            return False
        try:
            os.write(self._fd, frame)
        except OSError as exc:
            tally.write_drops += 1
            log.debug("TAP %s dropped a %d-byte frame: %s", self._name, len(frame), exc)
            return False
        tally.frames_written += 1
        tally.bytes_written += len(frame) - (VNET_HDR_BYTES if self._offload else 0)
        return True

    async def configure(
        self,
        mtu: int | None = None,
        mac: bytes | None = None,
        addresses: Sequence[str] = (),
        routes: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        """Bring the interface to this state: link up with `mtu`/`mac` when given, exactly
        `addresses` ('10.1.2.3/24', 'fd00::1/64') and `routes` ((target CIDR, gateway or
        None)) among those we installed. Idempotent; each call also repairs drift.

        Old routes and addresses go first, so a moved prefix never exists twice; new
        addresses come before new routes, whose gateways must be on-link.
        """
        if self._fd < 0:
            raise TapError(f"{self._name} is closed")
        wanted_addrs = nl.parse_addresses(addresses, self._name)
        wanted_routes = nl.parse_routes(routes, self._name)
        if mac is not None:
            nl.check_mac(mac, self._name)
        index, name = self._ifindex, self._name
        async with AsyncIPRoute() as ipr:
            await nl.remove_routes(ipr, index, name, self._routes, wanted_routes)
            await nl.sync_addresses(ipr, index, name, self._addresses, wanted_addrs)
            await nl.set_link(ipr, index, name, mtu=mtu, mac=mac)
            await nl.add_routes(ipr, index, name, self._routes, wanted_routes)

    def close(self) -> None:
        """Stop reading and close the descriptor; the kernel deletes the interface then
        (synchronously: it is gone from `ip link` when close() returns). Idempotent."""
        if self._fd < 0:
            return
        self._stop_reading()
        os.close(self._fd)
        self._fd = -1
        log.info("TAP %s closed", self._name)

    # ---- internals ------------------------------------------------------------------

    def _on_readable(self) -> None:
        header = VNET_HDR_BYTES if self._offload else 0
        tally = self._tally
        batch: list[bytes] = []
        batch_bytes = 0
        for _ in range(MAX_FRAMES_PER_WAKEUP):
            try:
                n = os.readv(self._fd, [self._view])
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._deliver(batch)
                self._fail(exc)
                return
            if n <= header:
                break
            batch.append(bytes(self._view[:n]))
            batch_bytes += n
            tally.frames_read += 1
            tally.bytes_read += n - header
            if len(batch) >= MAX_BATCH_FRAMES or batch_bytes >= MAX_BATCH_BYTES:
                self._deliver(batch)
                batch, batch_bytes = [], 0
        self._deliver(batch)

    def _deliver(self, batch: list[bytes]) -> None:
        if not batch:
            return
        try:
            self._on_frame(batch)
        except Exception:
            # One bad batch must not stop the reads or unregister the reader.
            log.exception("on_frame failed for %d frames from %s", len(batch), self._name)

    def _fail(self, exc: OSError) -> None:
        self._stop_reading()
        if exc.errno == errno.EBADFD:
            self._error = TapError(
                f"{self._name} was deleted from outside overlayd; leave and rejoin the network",
                exc.errno,
            )
        else:
            self._error = config_error(exc.errno, self._name, "read")
        log.error("%s", self._error)
        if self._on_error is not None:
            self._on_error(self._error)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            if not self._loop.is_closed():
                self._loop.remove_reader(self._fd)


def _has_vnet_hdr() -> bool:
    """Does this kernel's tun driver offer IFF_VNET_HDR (TUNGETFEATURES)?"""
    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False  # _create() reports the real problem
    try:
        features = struct.unpack("I", fcntl.ioctl(fd, TUNGETFEATURES, bytes(4)))[0]
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(features & IFF_VNET_HDR)


def _create(name: str, extra_flags: int = 0) -> tuple[int, str]:
    """Open /dev/net/tun and attach it to a new TAP interface; (fd, name the kernel used).

    os.open makes the descriptor non-inheritable (PEP 446): a child process (a hook
    script, `ip`) must not keep it open, or the interface would outlive close().
    """
    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise open_error(exc.errno, name)
    ifreq = struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL | extra_flags)
    try:
        result = fcntl.ioctl(fd, TUNSETIFF, ifreq)
    except OSError as exc:
        os.close(fd)
        raise open_error(exc.errno, name)
    return fd, result[:IFNAMSIZ].rstrip(b"\0").decode()


def _ifindex(name: str) -> int:
    """The interface index, looked up by name in this process's network namespace."""
    try:
        return socket.if_nametoindex(name)
    except OSError as exc:
        raise config_error(exc.errno, name, "look up the interface index")


if TYPE_CHECKING:  # mypy proves the real device fits the daemon's interface
    _opener: TapOpener = TapDevice.open
