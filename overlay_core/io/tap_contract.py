"""The TAP contract: what the daemon relies on, whichever device is behind it.

`TapDevice` (overlay_core.io.tap, a real Linux TAP) and `MemoryTap` (overlay_core.lab.
memtap, in memory) both satisfy `TapLike` and are made by a `TapOpener`; the daemon
should depend on these two Protocols only (the wireguard-go `tun.Device` shape):

1. `await open(name, mac, mtu, on_frame)` creates the interface with that MAC and MTU,
   up, its alias set to the network ID, and starts reading. Fails with a one-line TapError.
2. The frames the host sends into the interface are handed to `on_frame(frames)` in
   batches (a list: whatever one wakeup read) synchronously from the event loop. Frames
   start arriving at once: as soon as the link is up the kernel sends IPv6 MLD reports,
   router solicitations and so on.
3. `write(frame)` hands a frame to the host's stack. It never raises and never blocks: a
   frame that cannot be delivered is counted in `write_drops` and dropped, like a lossy wire.
   `offload` says whether the device was opened with offloads (`open(..., offload=True)`
   asks; a device that can't still opens, without): then every frame read and written
   starts with a 10-byte virtio_net_hdr, and reads may be TCP super-frames (offload.py).
4. `await configure(mtu, mac, addresses, routes)` brings the link to that state.
5. `close()` deletes the interface, with its addresses and routes. Idempotent.
6. If the device dies after open (deleted from outside), `on_error(TapError)` is called
   once and `error` keeps it; the daemon shows str(error) as the network's PORT_ERROR.

Also here: the interface naming scheme and the TapError messages, one actionable line
each. Errno values are mapped in one place, so the wording is the same whether a failure
came from open(), ioctl() or netlink.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

TUN_PATH = "/dev/net/tun"

NOT_ROOT_MESSAGE = "creating a TAP device needs root or CAP_NET_ADMIN"
NO_TUN_MESSAGE = (
    "no /dev/net/tun: load the tun module (modprobe tun) or, in a container, "
    "pass --device /dev/net/tun"
)


class TapError(Exception):
    """A TAP device could not be created, configured or kept; one actionable line.

    Attributes:
        errno: the OS error number behind it, or None for a bad argument.
    """

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_


def open_error(code: int | None, name: str) -> TapError:
    """The TapError for a failure while opening /dev/net/tun or creating the device.

    EACCES comes from opening a 0600 /dev/net/tun as a non-root user (Debian's default);
    EPERM comes from TUNSETIFF where /dev/net/tun is 0666 but CAP_NET_ADMIN is missing.
    EBUSY: with IFF_TUN_EXCL the kernel refuses every existing interface of that name,
    whether a TAP still attached to another process or any other kind of link.
    """
    if code in (errno.EPERM, errno.EACCES):
        message = NOT_ROOT_MESSAGE
    elif code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        message = NO_TUN_MESSAGE
    elif code == errno.EBUSY and name.startswith("zt"):
        message = (
            f"interface {name} already exists (another overlayd on this network, "
            f"or a leftover: ip link del {name})"
        )
    elif code == errno.EBUSY:
        message = f"interface {name} already exists; pick another name"
    elif code in (errno.EMFILE, errno.ENFILE):
        message = f"cannot create TAP device {name}: too many open files (raise ulimit -n)"
    elif code == errno.EINVAL:
        message = f"the kernel rejected {name!r} as a TAP device name"
    else:
        message = f"cannot create TAP device {name}: {_strerror(code)}"
    return TapError(message, code)


def config_error(code: int | None, name: str, what: str) -> TapError:
    """The TapError for a failed netlink change; `what` names it ("set MTU 2800")."""
    if code in (errno.EPERM, errno.EACCES):
        return TapError(f"configuring {name} needs root or CAP_NET_ADMIN", code)
    if code == errno.ENODEV:
        return TapError(f"cannot {what} on {name}: the interface is gone", code)
    if code == errno.ENETUNREACH:
        # The kernel wants a route's gateway on a subnet of one of the device's addresses.
        return TapError(f"cannot {what} on {name}: gateway is not on a subnet of {name}", code)
    return TapError(f"cannot {what} on {name}: {_strerror(code)}", code)


def _strerror(code: int | None) -> str:
    return os.strerror(code) if code is not None else "unknown error"


FrameHandler = Callable[[list[bytes]], None]  # one batch of frames read from the host
ErrorHandler = Callable[[TapError], None]

TAP_PREFIX = "zt"
_TAP_NAME_RE = re.compile(r"^zt[a-z2-7]{13}$")


def tap_name(nwid: int) -> str:
    """ "zt" + the network ID in RFC 4648 base32, lowercase, without padding.

    13 characters carry 65 bits, so every 64-bit ID gets its own 15-character name (the
    kernel's limit, IFNAMSIZ - 1). The encoding is big-endian, so the first 8 characters
    are exactly the 40-bit controller address: one controller's networks share a prefix.
    """
    if not 0 <= nwid < 1 << 64:
        raise ValueError(f"network id {nwid:#x} does not fit 64 bits")
    encoded = base64.b32encode(nwid.to_bytes(8, "big")).decode("ascii")
    return TAP_PREFIX + encoded.rstrip("=").lower()


def default_alias(name: str) -> str | None:
    """The ifalias a device gets unless told otherwise: for a tap_name() name, the network
    ID in 16 hex digits (what `ip link` shows beside the base32 name)."""
    nwid = nwid_from_tap_name(name)
    return f"{nwid:016x}" if nwid is not None else None


def nwid_from_tap_name(name: str) -> int | None:
    """The network ID a tap_name() encodes, or None for any other interface name."""
    if not _TAP_NAME_RE.match(name):
        return None
    raw = base64.b32decode(name[len(TAP_PREFIX) :].upper() + "===")
    nwid = int.from_bytes(raw, "big")
    # The 13th character carries one unused bit; only the canonical spelling is ours.
    return nwid if tap_name(nwid) == name else None


@dataclass(frozen=True, slots=True)
class TapCounters:
    """Frames seen at the TAP. "read" frames came from the host (they go out over the
    overlay); "written" frames went to the host (they came in from the overlay)."""

    frames_read: int = 0
    bytes_read: int = 0
    frames_written: int = 0
    bytes_written: int = 0
    write_drops: int = 0


@dataclass(slots=True)
class TapTally:
    """The running counts behind a device's `counters`; TapDevice and MemoryTap each keep
    one and count the same way (bytes without the virtio_net_hdr)."""

    frames_read: int = 0
    bytes_read: int = 0
    frames_written: int = 0
    bytes_written: int = 0
    write_drops: int = 0

    def snapshot(self) -> TapCounters:
        return TapCounters(
            self.frames_read,
            self.bytes_read,
            self.frames_written,
            self.bytes_written,
            self.write_drops,
        )


class TapLike(Protocol):
    """What the daemon needs from a TAP; TapDevice and MemoryTap both provide it."""

    @property
    def name(self) -> str: ...
    @property
    def ifindex(self) -> int: ...
    @property
    def counters(self) -> TapCounters: ...
    @property
    def error(self) -> TapError | None:
        """Why the device died after open (deleted from outside), else None."""

    @property
    def offload(self) -> bool:
        """Frames read and written carry a virtio_net_hdr (see the module docstring)."""

    def write(self, frame: bytes) -> bool: ...
    async def configure(
        self,
        mtu: int | None = None,
        mac: bytes | None = None,
        addresses: Sequence[str] = (),
        routes: Sequence[tuple[str, str | None]] = (),
    ) -> None: ...
    def close(self) -> None: ...


class TapOpener(Protocol):
    """How the daemon makes a TAP: TapDevice.open, or MemoryTapFactory().open in tests."""

    def __call__(
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
    ) -> Awaitable[TapLike]: ...
