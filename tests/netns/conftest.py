"""Fixtures the namespace tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from overlay_core.lab.world import OverlayWorld


@pytest.fixture(scope="module")
def world() -> Iterator[OverlayWorld]:
    """One root and a controller "ctl", debug logs, shared by a module's tests. A module
    that needs another world defines its own `world` fixture, which takes precedence."""
    with OverlayWorld(log_level="debug") as w:
        w.add_roots(1)
        w.add_controller("ctl")
        yield w
