"""`python -m console.testing.fake_app`: the console on a FakeNode, for the console benchmark and
for trying the app without a daemon."""

from __future__ import annotations

from console.testing.fake import FakeNode
from console.testing.fake_app import FakeZtuiApp, build_parser

from .conftest import loaded, wait_for


async def test_it_shows_the_fake_and_ticks_it_when_asked() -> None:
    node = FakeNode.sample()
    start = node.now
    async with FakeZtuiApp(node, tick_s=0.05).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        assert app.store.status is not None and app.store.status["address"] == node.address
        await wait_for(pilot, lambda: node.now >= start + 0.1)


async def test_without_ticks_the_node_stands_still() -> None:
    node = FakeNode.sample()
    start = node.now
    async with FakeZtuiApp(node).run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.pause(0.2)
    assert node.now == start


def test_options() -> None:
    args = build_parser().parse_args(["--large", "--peers", "50", "--tick-s", "1"])
    assert (args.large, args.peers, args.members, args.tick_s) == (True, 50, 200, 1.0)
