"""Shared test configuration.

Tests marked `netns` need root, network namespaces and TAP devices; on other machines they
are skipped with a reason instead of failing, so `make test` works for every developer.
"""

from __future__ import annotations

import os
import shutil

import pytest

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
