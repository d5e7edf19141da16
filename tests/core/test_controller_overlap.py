"""One controller's networks and their address space: a free pool by default, and a
warning (never a refusal) when an admin makes two networks overlap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from overlay_core.controller import Controller
from overlay_core.proto.identity import Identity

T0 = 1_000.0


@pytest.fixture
def ctl(alice: Identity, tmp_path: Path) -> Iterator[Controller]:
    controller = Controller(alice, tmp_path / "controller.db")
    yield controller
    controller.close()


def test_networks_created_without_pools_get_the_next_free_one(ctl: Controller) -> None:
    """10.147.17.0/24 first, then 10.147.18.0/24, skipping any /24 another network's pool
    (a range too) or on-link route touches; pools=() still means no pool."""
    assert ctl.suggest_pool() == "10.147.17.0/24"
    first = ctl.create_network("home", now=T0)
    second = ctl.create_network("lab", now=T0)
    assert (first.pools, second.pools) == (("10.147.17.0/24",), ("10.147.18.0/24",))
    ctl.create_network("range", pools=["10.147.19.200-10.147.19.210"], now=T0)
    ctl.create_network("routed", pools=[], routes=["10.147.20.0/23"], now=T0)
    assert ctl.create_network("next", now=T0).pools == ("10.147.22.0/24",)
    assert ctl.create_network("none", pools=(), now=T0).pools == ()
    assert ctl.warnings(first) == [] and ctl.warnings(second) == []


def test_a_route_via_a_gateway_does_not_take_a_pool(ctl: Controller) -> None:
    """A route behind a member (10.0.0.0/8 via a gateway, a default route) covers every
    suggestion; the kernel prefers the more specific LAN, so it neither blocks one nor
    draws a warning."""
    routed = ctl.create_network(
        "site", pools=["192.168.191.0/24"], routes=[["10.0.0.0/8", "192.168.191.1"]], now=T0
    )
    lan = ctl.create_network("lan", now=T0)
    assert lan.pools == ("10.147.17.0/24",)
    assert ctl.warnings(routed) == [] and ctl.warnings(lan) == []


def test_when_every_suggestion_is_used_the_network_gets_no_pool(ctl: Controller) -> None:
    ctl.create_network("everything", pools=["10.147.0.0/16"], now=T0)
    assert ctl.suggest_pool() is None
    assert ctl.create_network("late", now=T0).pools == ()


def test_overlapping_networks_are_created_with_a_warning_each_way(
    ctl: Controller, alice: Identity
) -> None:
    """Two networks of one controller on the same pool (the defect: a member of both got
    10.147.17.22/24 on two TAPs) are allowed, and each one's warnings name the other; an
    on-link route over another's pool counts too; a third, separate one has none."""
    home = ctl.create_network("home", pools=["10.147.17.0/24"], now=T0)
    lab = ctl.create_network("lab", pools=["10.147.17.0/24"], now=T0)
    routed = ctl.create_network("routed", pools=[], routes=["10.147.0.0/16"], now=T0)
    apart = ctl.create_network("apart", pools=["192.168.191.0/24"], now=T0)
    nwid = {r.name: f"{r.nwid:016x}" for r in (home, lab, routed)}
    assert ctl.warnings(lab) == [
        f"pool 10.147.17.0/24 overlaps pool 10.147.17.0/24 of network home ({nwid['home']}): "
        "a member of both would get clashing addresses",
        f"pool 10.147.17.0/24 overlaps route 10.147.0.0/16 of network routed "
        f"({nwid['routed']}): a member of both would get clashing addresses",
    ]
    assert [w.split(" of network ")[1].split(":")[0] for w in ctl.warnings(home)] == [
        f"lab ({nwid['lab']})",
        f"routed ({nwid['routed']})",
    ]
    assert ctl.warnings(apart) == []
    ctl.update_network(lab.nwid, pools=["10.99.0.0/24"], now=T0)
    assert len(ctl.warnings(home)) == 1  # only routed's /16 left
