"""The console's network check (`N`): the daemon's verdict in its level's colour, the facts
behind it, kept current while open, and a clear line when the daemon is away."""

from __future__ import annotations

import dataclasses

from textual.pilot import Pilot
from textual.widgets import Static

from console.app import ZtuiApp
from console.palette import commands
from console.screens.netcheck import NetcheckScreen
from console.testing.fake import FakeNode
from console.testing.fake_data import PHONE, ROOT_A, ROOT_B

from .conftest import STILL, loaded, make_app, second_poll, wait_for
from .test_approvals import bar_text


def verdict_of(app: ZtuiApp) -> str:
    return str(app.screen.query_one("#netcheck-verdict", Static).render())


def facts_of(app: ZtuiApp) -> str:
    return str(app.screen.query_one("#netcheck-facts", Static).render())


async def open_netcheck(pilot: Pilot[None]) -> NetcheckScreen:
    app = pilot.app
    await pilot.press("N")
    await wait_for(pilot, lambda: isinstance(app.screen, NetcheckScreen))
    screen = app.screen
    assert isinstance(screen, NetcheckScreen)
    await wait_for(pilot, lambda: screen.report is not None)
    await pilot.pause()
    return screen


async def test_n_shows_the_verdict_and_the_facts(node: FakeNode) -> None:
    """The NAS story is behind a cone NAT: direct connections work, nothing to do; the
    mapping, the NAT hop and both roots are listed; Escape goes back to the tabs."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await open_netcheck(pilot)
        assert "Direct connections should work (endpoint-independent NAT)" in verdict_of(app)
        assert "next step: nothing to do" in verdict_of(app)
        facts = facts_of(app)
        assert "endpoint-independent" in facts and "behind 1 NAT (192.168.1.1)" in facts
        assert ROOT_A in facts and ROOT_B in facts
        assert "GET /netcheck" in node.requests
        await pilot.press("escape")
        assert not isinstance(app.screen, NetcheckScreen)


async def test_a_tunneled_node_says_udp_is_blocked(node: FakeNode) -> None:
    """Both roots reached over TCP only: the verdict is the UDP-blocked one."""
    for root in (ROOT_A, ROOT_B):
        node.set_link(root, "TCP")
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await open_netcheck(pilot)
        assert "UDP blocked" in verdict_of(app)
        assert "allow outbound UDP" in verdict_of(app)


async def test_the_dialog_follows_the_node_while_open(node: FakeNode) -> None:
    """With the node interval short, a change in the daemon shows without reopening."""
    quick = dataclasses.replace(STILL, node_s=0.05)
    async with make_app(node, intervals=quick).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await open_netcheck(pilot)
        assert "Direct connections" in verdict_of(app)
        for root in (ROOT_A, ROOT_B):
            node.set_link(root, "TCP")
        await wait_for(pilot, lambda: "UDP blocked" in verdict_of(app))


async def test_daemon_away_says_so_in_the_dialog(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        node.fail_with(500, path="/netcheck")
        await pilot.press("N")
        await wait_for(pilot, lambda: "cannot check" in verdict_of(app))
        assert "internal error" in verdict_of(app)


async def test_palette_offers_the_network_check(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        names = [command.name for command in commands(app)]
        assert "Network check: UDP, NAT type, roots" in names  # N's name, as `?` gives it


def _prepare(node: FakeNode):  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        await second_poll(pilot, node)
        await wait_for(pilot, lambda: f"▶ {PHONE}" in bar_text(app))  # the phone's request
        app.clear_notifications()
        await open_netcheck(pilot)

    return run_before


def test_snapshot_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The whole dialog fits a classic terminal, without scrolling."""
    node = FakeNode.sample()
    assert snap_compare(make_app(node), terminal_size=(80, 24), run_before=_prepare(node))


def test_snapshot_sixteen_colours(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The ANSI theme (TERM=linux, screen): the verdict's colour is the terminal's green."""
    node = FakeNode.sample()
    for root in (ROOT_A, ROOT_B):  # the red verdict, the one that must stand out
        node.set_link(root, "TCP")
    app = make_app(node, theme="ansi-dark")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_prepare(node))
