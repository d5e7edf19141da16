"""Member names and IPs in network configs (issue 12): every member can say
`nas (10.147.17.22)` instead of an address, and nothing a controller sends there can
reach a terminal as an escape sequence or break a member that predates it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from overlay_core.controller import Controller
from overlay_core.proto.identity import Identity, format_address
from overlay_core.proto.netconf import (
    MAX_CONFIG_BYTES,
    NetworkConfig,
    ValidationError,
    _member_info,
)
from overlay_core.proto.netfields import MAX_NAME_CHARS

CTL = Identity.generate()


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    ctl = Controller(CTL, tmp_path / "controller.db")
    yield ctl  # type: ignore[misc]
    ctl.close()


def _config(ctl: Controller, *names: str) -> tuple[int, list[Identity], NetworkConfig]:
    nwid = int(ctl.create_network("home", now=1.0).to_json()["nwid"], 16)
    members = [Identity.generate() for _ in names]
    for identity, name in zip(members, names, strict=True):
        ctl.answer_request(nwid, identity.public(), version="1", physical=None, now=2.0)
        ctl.authorize(nwid, identity.address, 3.0)
        ctl.set_member(nwid, identity.address, name=name, now=4.0)
    signed = ctl.build_config(nwid, members[0].address, 5.0)
    assert isinstance(signed, bytes)
    return nwid, members, NetworkConfig.from_signed_bytes(signed, CTL.public())


def test_a_config_names_every_member_with_its_ips(controller: Controller) -> None:
    _, members, config = _config(controller, "nas", "laptop")
    info = {m.address: m for m in config.member_info}
    assert info[members[0].address].name == "nas"
    assert info[members[1].address].name == "laptop"
    assert all(m.ips and m.ips[0].startswith("10.147.17.") for m in info.values())
    assert NetworkConfig.from_json(config.to_json()) == config


def test_renaming_a_member_is_a_change_members_are_told(controller: Controller) -> None:
    nwid, members, _ = _config(controller, "nas")
    controller.take_dirty()
    before = controller.get_network(nwid)
    controller.set_member(nwid, members[0].address, name="nas", now=6.0)  # same name
    assert controller.take_dirty() == set()
    controller.set_member(nwid, members[0].address, name="attic-nas", now=7.0)
    assert controller.take_dirty() == {nwid}
    after = controller.get_network(nwid)
    assert before is not None and after is not None and after.revision == before.revision + 1


def test_without_names_the_config_is_what_older_members_knew(controller: Controller) -> None:
    _, _, config = _config(controller, "nas")
    bare = dataclasses.replace(config, member_info=())
    assert "member_info" not in bare.to_json()
    assert NetworkConfig.from_json(bare.to_json()) == bare


def test_too_many_long_names_drop_the_names_not_the_config(controller: Controller) -> None:
    long = "n" * MAX_NAME_CHARS
    _, members, config = _config(
        controller, *(f"{i:03}{long}"[:MAX_NAME_CHARS] for i in range(250))
    )
    assert len(config.members) == 250
    assert config.member_info == ()
    assert len(config.to_signed_bytes(CTL)) <= MAX_CONFIG_BYTES
    assert len(members) == 250


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (["{addr}", "nas\x1b[2J", []], "control"),
        (["{addr}", "nas\n", []], "control"),
        (["{addr}", "bob\u00a0laptop", []], "control"),
        (["0000000001", "x", []], "not listed"),
        (["{addr}", "x", [167772161]], "not an IP"),
        (["{addr}", "x", ["10.0.0.1/24"]], "not an IP"),
        (["{addr}", "x", ["10.0.0.1"] * 17], "at most"),
        (["{addr}", "x"], "an entry is"),
        (["{addr}", 5, []], "at most"),
    ],
)
def test_a_hostile_member_info_costs_the_names_not_the_config(
    controller: Controller, entry: list[object], why: str
) -> None:
    """Every rule is checked (_member_info says which broke), but a config that breaks one
    is still taken, without names: they are for show, the network is not."""
    _, members, config = _config(controller, "nas")
    obj = config.to_json()
    addr = format_address(members[0].address)
    obj["member_info"] = [[addr if e == "{addr}" else e for e in entry]]
    with pytest.raises(ValidationError, match=why) as caught:
        _member_info(obj["member_info"], {m.address for m in config.members})
    assert caught.value.field == "member_info[0]"
    taken = NetworkConfig.from_json(obj)
    assert taken.member_info == () and taken.members == config.members


def test_a_member_named_twice_or_a_non_list_costs_the_names(controller: Controller) -> None:
    _, members, config = _config(controller, "nas")
    obj = config.to_json()
    addr = format_address(members[0].address)
    listed = {m.address for m in config.members}
    with pytest.raises(ValidationError, match="twice"):
        _member_info([[addr, "a", []], [addr, "b", []]], listed)
    with pytest.raises(ValidationError, match="list"):
        _member_info({"a": 1}, listed)
    obj["member_info"] = {"a": 1}
    assert NetworkConfig.from_json(obj).member_info == ()


def test_the_controller_refuses_what_members_would_not_take(controller: Controller) -> None:
    """A name with a no-break space or a tab, or a 17th IP, is refused where it is typed;
    a database from before names travelled is shown with "?" for such characters."""
    nwid, members, _ = _config(controller, "nas")
    address = members[0].address
    for bad in ("bob\u00a0laptop", "a\tb", "x\x1b[2J"):
        with pytest.raises(ValidationError, match="control"):
            controller.set_member(nwid, address, name=bad, now=9.0)
    ips = [f"10.147.17.{i}" for i in range(100, 117)]
    with pytest.raises(ValidationError, match="at most 16"):
        controller.set_member(nwid, address, ips=ips, now=9.0)
    with controller._store.transaction() as db:  # as an older version could have left it
        db.execute("UPDATE members SET name = 'bob\u00a0laptop'")
    signed = controller.build_config(nwid, address, 10.0)
    assert isinstance(signed, bytes)
    config = NetworkConfig.from_signed_bytes(signed, CTL.public())
    assert [m.name for m in config.member_info] == ["bob?laptop"]
