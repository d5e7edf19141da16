"""ControllerLink's member_request and member events: who triggers one, and how often."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlay_core.api.events import EventBus
from overlay_core.api.schema import EventJson
from overlay_core.controller import REQUEST_SILENCE_S, Controller
from overlay_core.io.networks import ControllerLink
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


def requests_of(bus: EventBus) -> list[EventJson]:
    return [e for e in bus.recent() if e["kind"] == "member_request"]


def test_pending_member_is_announced_when_it_first_asks(
    tmp_path: Path, admin: Identity, phone: Identity
) -> None:
    """A member polling a private network (every 10 s while denied) is one member_request,
    not one every 30 s for as long as it waits; it is news again only after a long
    silence. The event names the network, the member and where it asked from."""
    link, bus, nwid = link_with_network(tmp_path, admin)
    waiting = [10.0 * n for n in range(60)]  # ten minutes of retries
    for now in waiting:
        ask(link, nwid, phone, now)
    assert len(requests_of(bus)) == 1
    ask(link, nwid, phone, waiting[-1] + REQUEST_SILENCE_S)  # back after a long silence
    requests = requests_of(bus)
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
    assert requests_of(bus) == []


def test_a_removed_member_asking_again_is_announced_again(
    tmp_path: Path, admin: Identity, phone: Identity
) -> None:
    """Deleting a member forgets it: its next request is a new join request at once."""
    link, bus, nwid = link_with_network(tmp_path, admin)
    ask(link, nwid, phone, 0.0)
    link.controller.delete_member(nwid, phone.address)
    ask(link, nwid, phone, 10.0)
    assert len(requests_of(bus)) == 2


def test_the_controllers_own_join_is_a_member_event_not_a_request(
    tmp_path: Path, admin: Identity
) -> None:
    """The controller's own node is let in on its first request: a `member` event says
    so with its address, nothing asks for approval."""
    link, bus, nwid = link_with_network(tmp_path, admin)
    link.controller.update_network(nwid, pools=["10.147.17.0/24"], now=0.0)
    ask(link, nwid, admin, 1.0)
    assert requests_of(bus) == []
    [event] = [e for e in bus.recent() if e["kind"] == "member"]
    ip = link.controller.get_member(nwid, admin.address).ips[0]  # type: ignore[union-attr]
    assert event["message"] == (
        f"{admin.address_text} in home ({nwid:016x}): admitted, the controller's own node: {ip}"
    )
