"""The simulated demo's notice reaches the console as an argument, never through the
environment (issue 11, defect 11): `ztui demo` used to set $ZTUI_DEMO_NOTICE in its own
process and leave it there, so every console started later in that process (the
snapshot tests after tests/daemon's demo test) said SIMULATED and popped the notice."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from console import cli, terminal
from console.app import ZtuiApp
from console.testing.fake import FakeNode

from .conftest import loaded, make_app


async def test_the_environment_does_not_mark_a_console_simulated(
    node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an earlier demo in the same process left in the environment is ignored."""
    monkeypatch.setenv("ZTUI_DEMO_NOTICE", "not root: loopback only, no TAP devices or NAT")
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        assert app.demo_notice is None
        assert all(n.title != "Simulated demo" for n in app._notifications)
        assert "SIMULATED" not in str(app.screen.query_one("NodeHeader").render())


def test_run_console_hands_the_notice_to_the_app(
    monkeypatch: pytest.MonkeyPatch, short_tmp: Path
) -> None:
    """`ztui demo` passes args.demo_notice; plain `ztui` has none."""
    launched: list[ZtuiApp] = []

    def run_app(app: ZtuiApp) -> int:
        launched.append(app)
        return 0

    monkeypatch.setattr(terminal, "run_app", run_app)
    monkeypatch.setattr(ZtuiApp, "run", lambda self: None)  # never a real terminal app here
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    args = argparse.Namespace(home=str(short_tmp), api=None, token=None, demo_notice="simulated")
    assert cli.run_console(args) == 0
    assert cli.main(["--home", str(short_tmp)]) == 0
    assert [app.demo_notice for app in launched] == ["simulated", None]
