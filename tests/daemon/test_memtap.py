"""MemoryTap, the TAP double for daemon tests, behaves like TapDevice where the daemon can see.

Daemon tests trust MemoryTap instead of a kernel, so its contract is pinned here: injected
frames reach on_frame, writes are recorded (or dropped and counted), configure records
its arguments, one live device per name, staged failures surface as TapError.
"""

from __future__ import annotations

import pytest

from overlay_core.io.tap import TapError, tap_name
from overlay_core.lab.memtap import MemoryTapFactory, TapSettings

NWID = 0x8056C2E21C000001
MAC = bytes.fromhex("02aabbccdd01")


async def test_inject_reaches_on_frame_and_writes_are_recorded() -> None:
    """inject() is the host sending a frame (a batch of one); write() is the overlay
    delivering one."""
    got: list[bytes] = []
    tap = await MemoryTapFactory().open(tap_name(NWID), MAC, 2800, got.extend)
    tap.inject(b"\xff" * 60)
    assert got == [b"\xff" * 60]
    assert tap.write(b"\x02" * 60) is True
    assert tap.take_written() == [b"\x02" * 60] and tap.written == []
    c = tap.counters
    assert (c.frames_read, c.bytes_read, c.frames_written, c.bytes_written) == (1, 60, 1, 60)


async def test_alias_defaults_to_the_network_id_like_the_real_device() -> None:
    taps = MemoryTapFactory()
    tap = await taps.open(tap_name(NWID), MAC, 2800, lambda f: None)
    assert tap.alias == "8056c2e21c000001"
    other = await taps.open("tap9", MAC, 2800, lambda f: None)
    assert other.alias is None


async def test_open_refuses_a_mac_that_is_not_6_bytes() -> None:
    with pytest.raises(TapError, match="must be 6 bytes, not 2"):
        await MemoryTapFactory().open("zt1", MAC[:2], 1500, lambda f: None)


async def test_drops_are_counted_not_raised() -> None:
    """While drop_writes is set, and after close(), write() returns False and counts it."""
    tap = await MemoryTapFactory().open("zt1", MAC, 1500, lambda f: None)
    tap.drop_writes = True
    assert tap.write(b"x" * 60) is False
    tap.drop_writes = False
    tap.close()
    assert tap.write(b"x" * 60) is False
    assert tap.counters.write_drops == 2 and tap.written == []


async def test_configure_records_the_last_settings() -> None:
    tap = await MemoryTapFactory().open("zt1", MAC, 1500, lambda f: None)
    assert tap.settings is None
    await tap.configure(mtu=2800, addresses=["10.1.0.5/24"], routes=[("10.2.0.0/16", "10.1.0.1")])
    await tap.configure(mtu=1400, mac=bytes.fromhex("02aabbccdd09"), addresses=["fd00::5/64"])
    assert tap.settings == TapSettings(1400, bytes.fromhex("02aabbccdd09"), ("fd00::5/64",), ())
    assert (tap.mtu, tap.mac, tap.configure_calls) == (1400, bytes.fromhex("02aabbccdd09"), 2)


async def test_staged_configure_error_is_raised_once() -> None:
    tap = await MemoryTapFactory().open("zt1", MAC, 1500, lambda f: None)
    tap.configure_error = TapError("configuring zt1 needs root or CAP_NET_ADMIN")
    with pytest.raises(TapError, match="CAP_NET_ADMIN"):
        await tap.configure(mtu=1400)
    await tap.configure(mtu=1400)
    assert tap.mtu == 1400


async def test_unplug_tells_on_error_and_stops_the_device() -> None:
    errors: list[TapError] = []
    tap = await MemoryTapFactory().open("zt1", MAC, 1500, lambda f: None, on_error=errors.append)
    tap.unplug()
    assert [str(e) for e in errors] == ["zt1 was deleted from outside overlayd"]
    assert tap.error is errors[0]
    assert tap.write(b"x" * 60) is False
    with pytest.raises(RuntimeError):
        tap.inject(b"x" * 60)


async def test_factory_keeps_devices_by_name_one_live_per_name() -> None:
    """Like IFF_TUN_EXCL: a second open of a live name fails; after close it may reopen."""
    taps = MemoryTapFactory()
    first = await taps.open("zt1", MAC, 1500, lambda f: None)
    assert taps["zt1"] is first and "zt1" in taps
    with pytest.raises(TapError, match="already exists"):
        await taps.open("zt1", MAC, 1500, lambda f: None)
    first.close()
    assert "zt1" not in taps
    second = await taps.open("zt1", MAC, 1500, lambda f: None)
    assert taps["zt1"] is second and taps.opened == [first, second]


async def test_factory_staged_open_error() -> None:
    taps = MemoryTapFactory()
    taps.open_error = TapError("creating a TAP device needs root or CAP_NET_ADMIN")
    with pytest.raises(TapError, match="needs root"):
        await taps.open("zt1", MAC, 1500, lambda f: None)
    assert (await taps.open("zt1", MAC, 1500, lambda f: None)).name == "zt1"
