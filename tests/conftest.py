"""Shared test configuration.

Tests marked `netns` need root, network namespaces and TAP devices; on other machines they
are skipped with a reason instead of failing, so `make test` works for every developer.

The fixtures tests/daemon and tests/console share are here too: a short temporary
directory, and overlays of real daemons on 127.0.0.1 in it, removed however a test ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from overlay_core.lab.loopback import LoopbackOverlay

NEEDS_ROOT_REASON = "needs root for network namespaces and TAP devices"


def root_unavailable_reason() -> str | None:
    """Why root-only system tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return NEEDS_ROOT_REASON
    if shutil.which("ip") is None:
        return f"{NEEDS_ROOT_REASON} (`ip` from iproute2 not found; run `make sysdeps`)"
    return None


# Explicit form for tests outside tests/netns: `@requires_root`.
requires_root = pytest.mark.skipif(
    root_unavailable_reason() is not None, reason=root_unavailable_reason() or ""
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test marked `netns` is also skipped, with the reason, where root is missing."""
    reason = root_unavailable_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("netns") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir under /tmp: pytest's tmp_path can exceed the 107-byte UNIX socket limit."""
    path = Path(tempfile.mkdtemp(prefix="zt-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def overlay(short_tmp: Path) -> AsyncIterator[LoopbackOverlay]:
    """Daemons on 127.0.0.1 (add them with add_root/add_leaf), stopped at teardown."""
    async with LoopbackOverlay(short_tmp) as net:
        yield net


@pytest.fixture
async def tap_overlay(short_tmp: Path) -> AsyncIterator[LoopbackOverlay]:
    """An overlay whose nodes open MemoryTaps (net.taps[name]), so networks need no root."""
    async with LoopbackOverlay(short_tmp, memory_taps=True) as net:
        yield net
