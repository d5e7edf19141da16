"""Ctrl+P finds every action a key does on any screen, by the name the footer and `?`
give that key, and by the words people use for it (issue 11, defect 8: "retry", "probe"
and "new network" found nothing)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from textual.binding import Binding
from textual.command import CommandPalette
from textual.dom import DOMNode

import console.screens
import console.widgets
from console.app import ZtuiApp
from console.palette import find
from console.screens import keymap
from console.testing.fake import FakeNode
from console.testing.fake_data import HOME_NWID, LAPTOP, PHONE

from .conftest import loaded, make_app, wait_for
from .test_approvals import NEWCOMER, bar_text


def same_action(binding: Binding, action: str) -> bool:
    return binding.action.removeprefix("app.") == action.removeprefix("app.")


def owners() -> list[type[DOMNode]]:
    return [owner for _, group in keymap.sections(ZtuiApp) for owner in group]


def test_every_class_with_named_keys_is_in_the_keymap() -> None:
    """Help and the palette read keymap.sections: a screen or widget whose keys are not
    listed there would be missing from both."""
    listed = set(owners())
    for package in (console.screens, console.widgets):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for _, cls in inspect.getmembers(module, inspect.isclass):
                own = cls.__dict__.get("BINDINGS", [])
                named = [b for b in own if isinstance(b, Binding) and b.description]
                if cls.__module__ == module.__name__ and named:
                    assert cls in listed, f"{cls.__name__}'s keys are not in keymap.sections"


async def test_every_binding_is_found_by_its_footer_name(node: FakeNode) -> None:
    """For each key on each screen (dialog keys aside: they act inside their dialog), the
    palette searched with the key's description offers that key's action."""
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        node.add_pending_member(HOME_NWID, NEWCOMER)  # two requests: ↑/↓ on the bar mean something
        await wait_for(pilot, lambda: NEWCOMER in bar_text(app))
        app.open_peer(PHONE)  # "Back" is offered where there is a view to go back from
        await pilot.pause()
        checked = 0
        for owner in owners():
            if owner in keymap.LOCAL:
                continue
            for binding in keymap.bindings_of(owner):
                hits = [c for _, c, _ in find(app, binding.description)]
                assert any(
                    c.name.startswith(binding.description) and same_action(binding, c.action)
                    for c in hits
                ), f"Ctrl+P {binding.description!r} does not offer {owner.__name__}'s {binding.key}"
                checked += 1
        assert checked >= 30


@pytest.mark.parametrize(
    ("query", "action", "name"),
    [
        ("retry", "retry_direct", f"Retry direct {PHONE}"),
        ("retry direct", "retry_direct", f"Retry direct {PHONE}"),
        ("probe", "probe_mtu", f"Probe MTU {PHONE}"),
        ("probe mtu", "probe_mtu", f"Probe MTU {PHONE}"),
        ("new network", "create", "New network"),
        ("create network", "create", "New network"),
        ("approve", "approve", f"Approve {PHONE} on home"),
        ("remove", "remove", f"Remove {LAPTOP} on home"),
        ("delete member", "remove", f"Remove {LAPTOP} on home"),
        ("deauthorize", "deauthorize", f"Deauth {LAPTOP} on home"),
        ("join network", "join", "Join"),
        ("leave", "leave", f"Leave home ({HOME_NWID})"),
        ("netcheck", "netcheck", "Network check: UDP, NAT type, roots"),
        ("ping", "ping", f"Ping {PHONE}"),
        ("filter events", "filter", "Filter (5 Events)"),
    ],
)
async def test_synonyms_find_the_action(node: FakeNode, query: str, action: str, name: str) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        found = {c.name: c for _, c, _ in find(app, query)}
        assert name in found, f"{query!r} found {sorted(found)[:10]}"
        assert found[name].action == action


async def test_probe_mtu_from_the_palette(node: FakeNode) -> None:
    """Typed into the real palette, run with Enter: the node is asked to probe."""
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*f"probe mtu {PHONE}")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: f"POST /peers/{PHONE}/probe-mtu" in node.requests)


async def test_a_tab_action_from_the_palette_runs_on_its_tab(node: FakeNode) -> None:
    """ "Filter (5 Events)" from the Peers tab: the Events tab, its filter bar open."""
    from console.widgets.filter_bar import FilterBar

    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        command = next(c for _, c, _ in find(app, "filter events") if c.owner == "EventsView")
        command.run()
        bar = app.screen.query_one("#events-filter", FilterBar)
        await wait_for(pilot, lambda: app.focused is bar)
        await pilot.press(*"link")
        table = app.screen.query_one("#events-table")
        await wait_for(pilot, lambda: table.row_count == 1)


async def test_approve_request_from_the_palette(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await wait_for(pilot, lambda: PHONE in bar_text(app))
        command = next(c for _, c, _ in find(app, "approve request"))
        assert command.name == f"Approve request {PHONE} on home"
        command.run()
        await wait_for(pilot, lambda: node.state.members[HOME_NWID][PHONE]["authorized"])
