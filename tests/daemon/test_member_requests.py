"""ControllerLink's member_request events: who triggers one, and how often."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlay_core.api.events import EventBus
from overlay_core.controller import Controller
from overlay_core.io.networks import MEMBER_REQUEST_EVERY_S, ControllerLink
from overlay_core.proto.effects import ConfigRequest, udp
from overlay_core.proto.identity import Identity
from overlay_core.testing.fakenet import _seeded


@pytest.fixture(scope="module")
def admin() -> Identity:
    return Identity.generate(_seeded(7))


@pytest.fixture(scope="module")
def phone() -> Identity:
    return Identity.generate(_seeded(8))


def link_with_network(
    tmp_path: Path, admin: Identity, *, private: bool = True
) -> tuple[ControllerLink, EventBus, int]:
    controller = Controller(admin, tmp_path / "controller.db")
    nwid = controller.create_network("home", private=private, now=0.0).nwid
    bus = EventBus(lambda: 0.0)
    return ControllerLink(controller, lambda call: None, bus), bus, nwid


def ask(link: ControllerLink, nwid: int, member: Identity, now: float) -> None:
    request = ConfigRequest(nwid, member, "0.1.0", udp("192.0.2.7", 9993))
    link.answer(request, now)


def test_pending_member_is_announced_once_per_interval(
    tmp_path: Path, admin: Identity, phone: Identity
) -> None:
    """A member polling a private network is one member_request per 30 s, not one per
    request; the event names the network, the member and where it asked from."""
    link, bus, nwid = link_with_network(tmp_path, admin)
    for now in (0.0, 2.0, 10.0, MEMBER_REQUEST_EVERY_S - 1, MEMBER_REQUEST_EVERY_S + 1):
        ask(link, nwid, phone, now)
    requests = [e for e in bus.recent() if e["kind"] == "member_request"]
    assert len(requests) == 2
    assert requests[0]["nwid"] == f"{nwid:016x}"
    assert requests[0]["address"] == phone.address_text
    assert requests[0]["message"] == (
        f"{phone.address_text} asks to join home ({nwid:016x}) from 192.0.2.7:9993; approve it?"
    )


def test_deauthorized_and_public_members_are_not_requests(
    tmp_path: Path, admin: Identity, phone: Identity
) -> None:
    """Only a pending member asks for approval: one the admin deauthorized is refused
    silently, and on a public network nobody has to ask."""
    link, bus, nwid = link_with_network(tmp_path, admin)
    link.controller.set_member(nwid, phone.address, name="phone", now=0.0)
    link.controller.deauthorize(nwid, phone.address, 0.0)
    ask(link, nwid, phone, 1.0)
    public_nwid = link.controller.create_network("open", private=False, now=0.0).nwid
    ask(link, public_nwid, phone, 1.0)
    assert [e for e in bus.recent() if e["kind"] == "member_request"] == []
