"""Creating a network without stepping on another: the create dialog (`3`, `c`) offers the
controller's first free pool and flags an overlapping one before Create, against a FakeNode
that answers GET /controller/pools, warnings and the 409 for unasked approvals as the
daemon does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import RadioButton, Static

from console.api import AsyncApiClient
from console.app import ZtuiApp
from console.connection import ApiError
from console.screens.create_network import CreateNetworkModal
from console.testing.fake import FakeNode
from console.testing.fake_data import HOME_NWID

from .conftest import loaded, make_app, wait_for


@pytest.fixture
async def client(node: FakeNode) -> AsyncIterator[AsyncApiClient]:
    async with node.client() as client:
        yield client


def text_of(app: ZtuiApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def open_dialog(pilot: Pilot[None]) -> ZtuiApp:
    app = await loaded(pilot)
    await pilot.press("3", "c")
    assert isinstance(app.screen, CreateNetworkModal)
    free = app.screen.query_one("#pool-free", RadioButton)
    await wait_for(pilot, lambda: "10.147.18.0/24" in str(free.label))
    return app


# --------------------------------------------------------------------------- the fake


async def test_fake_suggests_a_free_pool_and_warns_about_overlaps(
    node: FakeNode, client: AsyncApiClient
) -> None:
    """The sample's home holds 10.147.17.0/24: the suggestion is the next /24, a network
    created without pools takes it, and one on home's pool is created with a warning."""
    pools = await client.controller_pools()
    assert pools["suggested"] == "10.147.18.0/24"
    assert {"nwid": HOME_NWID, "name": "home", "kind": "pool", "range": "10.147.17.0/24"} in (
        pools["used"]
    )
    lab = await client.create_network({"name": "lab"})
    assert lab["pools"] == ["10.147.18.0/24"] and lab["warnings"] == []
    twin = await client.create_network({"name": "twin", "pools": ["10.147.17.128/25"]})
    assert twin["warnings"] == [
        f"pool 10.147.17.128/25 overlaps pool 10.147.17.0/24 of network home ({HOME_NWID}): "
        "a member of both would get clashing addresses"
    ]
    assert (await client.controller_pools())["suggested"] == "10.147.19.0/24"


async def test_fake_refuses_to_approve_a_node_that_never_asked(client: AsyncApiClient) -> None:
    """409 not_asked naming the field, unless forced; forced, no address yet."""
    with pytest.raises(ApiError) as caught:
        await client.update_member(HOME_NWID, "a1b2c3d4e5", {"authorized": True})
    error = caught.value
    assert (error.status, error.error, error.field) == (409, "not_asked", "authorized")
    assert str(error).startswith(f"a1b2c3d4e5 has not asked to join {HOME_NWID} yet")
    forced = await client.update_member(
        HOME_NWID, "a1b2c3d4e5", {"authorized": True, "force": True}
    )
    assert (forced["state"], forced["ips"]) == ("authorized", [])


async def test_fake_errors_always_carry_a_field(node: FakeNode) -> None:
    """Like the daemon: {"error", "reason", "field"}, field None when nothing in the
    request is to blame."""
    async with httpx.AsyncClient(transport=node.transport(), base_url="http://x") as http:
        for method, path, field in (
            ("GET", "/no/such/thing", None),
            ("GET", "/networks/nothex", "nwid"),
            ("POST", "/controller/networks", "name"),
        ):
            body = (await http.request(method, path, json={})).json()
            assert set(body) == {"error", "reason", "field"} and body["field"] == field, body


# --------------------------------------------------------------------------- the dialog


async def test_the_dialog_offers_the_first_free_pool(node: FakeNode) -> None:
    """The first choice names the controller's free pool and is preselected; Enter sends
    no pools, so the controller takes that one."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await open_dialog(pilot)
        await pilot.press(*"lab")
        assert text_of(app, "#create-reason") == "✓ lab with 10.147.18.0/24"
        assert text_of(app, "#create-warning") == ""
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(n["name"] == "lab" for n in node.state.hosted.values()))
        created = next(n for n in node.state.hosted.values() if n["name"] == "lab")
        assert created["pools"] == ["10.147.18.0/24"]
        assert "POST /controller/networks" in node.requests


async def test_an_overlapping_pool_is_flagged_before_create(node: FakeNode) -> None:
    """A custom pool inside home's is flagged, naming home, as it is typed; Enter creates
    it anyway (an overlap is allowed) and the controller's warning comes back."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await open_dialog(pilot)
        await pilot.press(*"lab", "tab", "down", "down", "down", "enter", "tab")
        await pilot.press(*"10.147.17.128/25")
        assert text_of(app, "#create-reason") == "✓ lab with 10.147.17.128/25"
        assert text_of(app, "#create-warning") == (
            f"⚠ 10.147.17.128/25 overlaps pool 10.147.17.0/24 of home ({HOME_NWID}): a member "
            "of both would get clashing addresses (Enter creates it anyway)"
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(n["name"] == "lab" for n in node.state.hosted.values()))
        created = next(n for n in node.state.hosted.values() if n["name"] == "lab")
        assert created["pools"] == ["10.147.17.128/25"]


def test_snapshot_80x24_with_an_overlap(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The dialog at 80x24 in 16 colours (the ANSI theme), a custom pool overlapping home:
    every line, the warning included, fits."""
    node = FakeNode.sample()

    async def run_before(pilot: Pilot[None]) -> None:
        await open_dialog(pilot)
        await pilot.press(*"lab", "tab", "down", "down", "down", "enter", "tab")
        await pilot.press(*"10.147.17.128/25")
        await pilot.pause()

    app = make_app(node, theme="ansi-dark")
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
