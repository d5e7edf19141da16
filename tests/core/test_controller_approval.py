"""Who may be approved, when addresses are taken and given back, and which config
requests are news for an admin: the controller on a real SQLite file, explicit `now`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from overlay_core.controller import (
    REQUEST_SILENCE_S,
    Controller,
    Denied,
    NotAskedError,
    RequestOutcome,
)
from overlay_core.proto.identity import Identity
from overlay_core.proto.netconf import NetworkConfig
from overlay_core.testing.fakenet import _seeded

T0 = 1_000.0
POOL = "10.147.17.0/24"


@pytest.fixture
def ctl(alice: Identity, tmp_path: Path) -> Iterator[Controller]:
    controller = Controller(alice, tmp_path / "controller.db")
    yield controller
    controller.close()


@pytest.fixture(scope="module")
def carol() -> Identity:
    return Identity.generate(_seeded(404))


def ask(ctl: Controller, nwid: int, member: Identity, now: float) -> RequestOutcome:
    return ctl.answer_request(
        nwid, member.public(), version="0.1.0", physical="198.51.100.7:9993", now=now
    )


def assigned(outcome: RequestOutcome, controller: Identity) -> tuple[str, ...]:
    assert isinstance(outcome.reply, bytes), outcome.reply
    return NetworkConfig.from_signed_bytes(outcome.reply, controller.public()).assigned_ips


def test_approving_a_node_that_never_asked_is_refused(ctl: Controller, bob: Identity) -> None:
    """The README's `ztui approve NWID a1b2c3d4e5` for a node that never ran `ztui join`
    is refused naming what to do, and leaves no member behind; a node only named in
    advance has not asked either."""
    net = ctl.create_network("home", pools=[POOL], now=T0)
    with pytest.raises(NotAskedError) as caught:
        ctl.authorize(net.nwid, 0xA1B2C3D4E5, T0)
    nwid = f"{net.nwid:016x}"
    assert str(caught.value) == (
        f"a1b2c3d4e5 has not asked to join {nwid} yet: run `ztui join {nwid}` on it first, "
        "or authorize with force to pre-authorize it"
    )
    assert ctl.get_member(net.nwid, 0xA1B2C3D4E5) is None
    ctl.set_member(net.nwid, bob.address, name="bob's laptop", now=T0)
    with pytest.raises(NotAskedError):
        ctl.authorize(net.nwid, bob.address, T0)
    member = ctl.get_member(net.nwid, bob.address)
    assert member is not None and member.state == "pending" and member.ips == ()


def test_forced_preauthorization_takes_an_address_only_when_the_node_asks(
    ctl: Controller, alice: Identity, bob: Identity
) -> None:
    """force=True lets a node in before it asks, without taking a pool address (a typo
    holds none); its first request takes one and it keeps it on the next."""
    net = ctl.create_network("home", pools=[POOL], now=T0)
    early = ctl.authorize(net.nwid, bob.address, T0, force=True)
    assert (early.state, early.ips, early.has_asked) == ("authorized", (), False)
    typo = ctl.authorize(net.nwid, 0xA1B2C3D4E5, T0, force=True)
    assert typo.ips == ()
    first = ask(ctl, net.nwid, bob, T0 + 5)
    (address,) = assigned(first, alice)
    assert address.startswith("10.147.17.") and address.endswith("/24")
    member = ctl.get_member(net.nwid, bob.address)
    assert member is not None and member.ips == (address.split("/")[0],)
    assert assigned(ask(ctl, net.nwid, bob, T0 + 10), alice) == (address,)
    # Its first request is when it joins: announced as admitted, the revision bumped so
    # the other members' configs carry its address. The second changes nothing.
    assert (first.announce, first.admitted) == (False, True)
    assert first.network is not None and first.network.revision > net.revision
    second = ask(ctl, net.nwid, bob, T0 + 15)
    assert second.admitted is False and second.network == first.network


def test_deauthorize_keeps_addresses_and_delete_frees_them(
    ctl: Controller, bob: Identity, carol: Identity
) -> None:
    """As ZeroTier: a deauthorized member keeps its address (re-approval gives it back,
    nobody else takes it); deleting it frees the address for the next member."""
    net = ctl.create_network("solo", pools=["10.5.0.7-10.5.0.7"], now=T0)  # one address
    for member in (bob, carol):
        ask(ctl, net.nwid, member, T0)
    held = ctl.authorize(net.nwid, bob.address, T0).ips
    assert held == ("10.5.0.7",)
    ctl.deauthorize(net.nwid, bob.address, T0 + 1)
    with pytest.raises(ValueError, match="all pools are full"):
        ctl.authorize(net.nwid, carol.address, T0 + 2)
    assert ctl.authorize(net.nwid, bob.address, T0 + 3).ips == held
    ctl.delete_member(net.nwid, bob.address)
    assert ctl.authorize(net.nwid, carol.address, T0 + 4).ips == held


def test_a_removed_member_that_asks_again_is_a_new_pending_request(
    ctl: Controller, bob: Identity
) -> None:
    """After a delete the member's next request is denied, makes a fresh pending row
    (no address, no name) and is news for the admin again."""
    net = ctl.create_network("home", pools=[POOL], now=T0)
    ask(ctl, net.nwid, bob, T0)
    ctl.set_member(net.nwid, bob.address, name="bob", now=T0)
    ctl.authorize(net.nwid, bob.address, T0)
    ctl.delete_member(net.nwid, bob.address)
    again = ask(ctl, net.nwid, bob, T0 + 20)
    assert again.reply == Denied("ACCESS_DENIED") and again.announce
    member = ctl.get_member(net.nwid, bob.address)
    assert member is not None
    assert (member.state, member.ips, member.name, member.created) == ("pending", (), "", T0 + 20)


def test_the_controllers_own_node_is_let_into_its_own_network(
    ctl: Controller, alice: Identity
) -> None:
    """The node hosting the controller joining one of its private networks gets a config
    with a pool address on its first request; once an admin deauthorizes it, it stays
    out like anyone else."""
    net = ctl.create_network("home", pools=[POOL], now=T0)
    outcome = ask(ctl, net.nwid, alice, T0)
    (address,) = assigned(outcome, alice)
    assert address.startswith("10.147.17.")
    assert outcome.admitted and not outcome.announce
    assert outcome.member is not None and outcome.member.state == "authorized"
    assert not ask(ctl, net.nwid, alice, T0 + 1).admitted  # already in: nothing new
    ctl.deauthorize(net.nwid, alice.address, T0 + 2)
    assert ask(ctl, net.nwid, alice, T0 + 3).reply == Denied("ACCESS_DENIED")


def test_a_waiting_member_is_news_once_not_at_every_retry(
    ctl: Controller, bob: Identity, carol: Identity
) -> None:
    """A pending member is announced on its first request and after a silence of
    REQUEST_SILENCE_S, not on the retries in between; one the admin deauthorized never,
    and neither is an authorized one."""
    net = ctl.create_network("home", pools=[POOL], now=T0)
    times = [T0, T0 + 10, T0 + 300, T0 + 300 + REQUEST_SILENCE_S - 1]
    assert [ask(ctl, net.nwid, bob, t).announce for t in times] == [True, False, False, False]
    later = times[-1] + REQUEST_SILENCE_S
    assert ask(ctl, net.nwid, bob, later).announce
    ask(ctl, net.nwid, carol, T0)
    ctl.deauthorize(net.nwid, carol.address, T0 + 1)
    assert not ask(ctl, net.nwid, carol, T0 + 1 + 2 * REQUEST_SILENCE_S).announce
    ctl.authorize(net.nwid, bob.address, later)
    assert not ask(ctl, net.nwid, bob, later + 2 * REQUEST_SILENCE_S).announce
