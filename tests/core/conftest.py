"""Fixtures for the pure-core tests: deterministic identities and a two-node harness."""

from __future__ import annotations

import pytest

from overlay_core.proto.identity import Identity
from overlay_core.testing.fakenet import _seeded


@pytest.fixture(scope="session")
def alice() -> Identity:
    return Identity.generate(_seeded(101))


@pytest.fixture(scope="session")
def bob() -> Identity:
    return Identity.generate(_seeded(202))


@pytest.fixture(scope="session")
def mallory() -> Identity:
    return Identity.generate(_seeded(303))
