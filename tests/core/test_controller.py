"""The network controller on a real SQLite file in tmp_path, with explicit `now`."""

from __future__ import annotations

import ipaddress
import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from overlay_core.controller import (
    Controller,
    Denied,
    NotFoundError,
    PoolsFullError,
    Store,
    StoreError,
    ValidationError,
)
from overlay_core.controller.store import MIGRATIONS
from overlay_core.proto.identity import Identity
from overlay_core.proto.netconf import (
    PRESETS,
    MemberEntry,
    NetworkConfig,
    Rule,
    format_nwid,
    make_nwid,
)
from overlay_core.testing.fakenet import _seeded

T0 = 1_000.0
CAROL = 0x0A0B0C0D0E  # members known only by address (pre-approved, or filler)
DAVE = 0x0A0B0C0D0F


@cache
def node(n: int) -> Identity:
    """Filler members that really ask (`asked`); the same identity for the same n."""
    return Identity.generate(_seeded(500 + n))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "controller.db"


@pytest.fixture
def ctl(alice: Identity, db: Path) -> Iterator[Controller]:
    controller = Controller(alice, db)
    yield controller
    controller.close()


def request(ctl: Controller, nwid: int, member: Identity, now: float) -> bytes | Denied:
    return ctl.answer_request(
        nwid, member.public(), version="0.1.0", physical="198.51.100.7:9993", now=now
    ).reply


def asked(ctl: Controller, nwid: int, *members: Identity, now: float = T0) -> None:
    """Each member sends its config request, as `ztui join` makes it do."""
    for member in members:
        request(ctl, nwid, member, now)


def config_of(reply: bytes | Denied, controller: Identity) -> NetworkConfig:
    assert isinstance(reply, bytes), reply
    return NetworkConfig.from_signed_bytes(reply, controller.public())


# --------------------------------------------------------------------------- networks


def test_create_network_numbers_and_json(ctl: Controller, alice: Identity) -> None:
    """Networks get ids under the controller's address, numbered 1, 2, ...; their JSON
    shows the nwid as 16 hex digits and the settings as given."""
    home = ctl.create_network("home", pools=["10.147.17.0/24"], presets=["block-dhcp"], now=T0)
    lab = ctl.create_network("lab", now=T0)
    assert home.nwid == make_nwid(alice.address, 1) and lab.nwid == make_nwid(alice.address, 2)
    assert [n.name for n in ctl.list_networks()] == ["home", "lab"]
    assert ctl.get_network(home.nwid) == home
    js = home.to_json()
    assert js["nwid"] == format_nwid(home.nwid) and len(js["nwid"]) == 16
    assert js["pools"] == ["10.147.17.0/24"] and js["presets"] == ["block-dhcp"]
    assert (js["private"], js["mtu"], js["mss"], js["revision"]) == (True, 2800, "auto", 1)


def test_network_numbers_are_never_reused(ctl: Controller, alice: Identity) -> None:
    """After a delete the next network gets a fresh number, so a stale member of the
    deleted network cannot be taken for a member of the new one; an explicit free number
    may still be chosen, a taken one is refused."""
    first = ctl.create_network("a", now=T0)
    ctl.delete_network(first.nwid)
    assert ctl.create_network("b", now=T0).number == 2
    assert ctl.create_network("c", number=1, now=T0).number == 1
    with pytest.raises(ValidationError, match="number: network number 2 is taken"):
        ctl.create_network("d", number=2, now=T0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mtu": 1000}, "mtu: must be 1280-9000"),
        (
            {"pools": ["10.147.17.1/24"]},
            "pools[0]: '10.147.17.1/24' has host bits set; did you mean 10.147.17.0/24?",
        ),
        ({"pools": ["not-a-pool"]}, "pools[0]: 'not-a-pool' is not a range"),
        (
            {"routes": ["10.0.0.0/8", ["10.9.0.0/16", "fd00::1"]]},
            "routes[1]: the gateway must be the same IP version",
        ),
        (
            {
                "rules": [
                    {"action": "drop"},
                    {"action": "drop", "ip_protocol": 6, "dst_ports": [9, 1]},
                ]
            },
            "rules[1].dst_ports: ports are 0-65535, low <= high",
        ),
        ({"rules": [{"action": "block"}]}, 'rules[0].action: must be "accept" or "drop"'),
        ({"presets": ["block-everything"]}, "presets[0]: unknown preset 'block-everything'"),
        ({"mss": "fixed:1500", "mtu": 1500}, "mss: fixed:1500 is more than the MTU allows (1460)"),
        ({"multicast_limit": -1}, "multicast_limit: must be 0-4096"),
        ({"name": "x" * 65}, "name: must be text of at most 64 characters"),
    ],
)
def test_validation_errors_name_field_and_rule(
    ctl: Controller, settings: dict[str, object], message: str
) -> None:
    """Bad settings are refused before anything is stored, with "field: rule" messages."""
    name = settings.pop("name", "home")
    with pytest.raises(ValidationError) as caught:
        ctl.create_network(name, now=T0, **settings)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message), caught.value
    assert ctl.list_networks() == []


def test_update_network_bumps_revision_and_marks_dirty(
    ctl: Controller, alice: Identity, bob: Identity
) -> None:
    """An update changes only what is given, bumps the revision members see and marks the
    network dirty; an invalid update changes nothing."""
    net = ctl.create_network("home", now=T0)
    ctl.take_dirty()
    updated = ctl.update_network(net.nwid, mtu=1400, presets=["block-ra"], now=T0 + 1)
    assert (updated.mtu, updated.name, updated.revision, updated.updated) == (
        1400,
        "home",
        2,
        T0 + 1,
    )
    assert ctl.take_dirty() == {net.nwid}
    with pytest.raises(ValidationError, match="mtu: must be 1280-9000"):
        ctl.update_network(net.nwid, mtu=99999, now=T0 + 2)
    with pytest.raises(ValidationError, match="color: not a network setting"):
        ctl.update_network(net.nwid, color="blue", now=T0 + 2)
    assert ctl.get_network(net.nwid) == updated
    ctl.authorize(net.nwid, bob.address, T0 + 3, force=True)
    config = config_of(request(ctl, net.nwid, bob, T0 + 4), alice)
    # 3 for the authorization, 4 for the pool address its first request took
    assert config.mtu == 1400 and config.revision == 4
    assert config.rules == PRESETS["block-ra"]


def test_presets_come_before_own_rules_in_configs(
    ctl: Controller, alice: Identity, bob: Identity
) -> None:
    """Members get preset rules first, so an own accept cannot reopen what they drop."""
    own = Rule("accept", "dhcp-ok", 0x0800, 17, dst_ports=(67, 68))
    net = ctl.create_network("site", rules=[own], presets=["block-dhcp"], private=False, now=T0)
    assert net.rules == (own,)
    config = config_of(request(ctl, net.nwid, bob, T0), alice)
    assert config.rules == PRESETS["block-dhcp"] + (own,)


# --------------------------------------------------------------------------- members


def test_unknown_member_of_private_network_is_pending(ctl: Controller, bob: Identity) -> None:
    """A stranger's request creates a pending member (recording when, which version and
    from where) and is answered ACCESS_DENIED."""
    net = ctl.create_network("home", pools=["10.147.17.0/24"], now=T0)
    assert request(ctl, net.nwid, bob, T0 + 1) == Denied("ACCESS_DENIED")
    (member,) = ctl.list_members(net.nwid)
    assert (member.address, member.state, member.authorized) == (bob.address, "pending", False)
    assert (member.last_seen, member.version, member.physical_address) == (
        T0 + 1,
        "0.1.0",
        "198.51.100.7:9993",
    )
    assert member.ips == ()
    js = member.to_json()
    assert js["address"] == bob.address_text and js["state"] == "pending"


def test_approval_gives_a_signed_config_with_a_pool_address(
    ctl: Controller, alice: Identity, bob: Identity
) -> None:
    """Once approved, the member's next request gets a config it can verify with the
    controller's public identity: an address from the pool with the pool's prefix, itself
    in the members list, and a certificate of membership for it."""
    net = ctl.create_network("home", pools=["10.147.17.0/24"], now=T0)
    request(ctl, net.nwid, bob, T0 + 1)
    approved = ctl.authorize(net.nwid, bob.address, T0 + 2)
    assert approved.state == "authorized" and len(approved.ips) == 1
    config = config_of(request(ctl, net.nwid, bob, T0 + 3), alice)
    (assigned,) = config.assigned_ips
    assert assigned == f"{approved.ips[0]}/24"
    assert ipaddress.ip_interface(assigned) in ipaddress.ip_network("10.147.17.0/24")
    assert config.issued_to == bob.address and config.nwid == net.nwid
    assert config.members == (MemberEntry(bob.address, False),)
    assert config.com.address == bob.address and config.com.verify(alice.public())
    assert config.timestamp == T0 + 3


def test_members_list_holds_every_authorized_member(
    ctl: Controller, alice: Identity, bob: Identity, mallory: Identity
) -> None:
    """A config lists all authorized members (pre-approved ones included, bridges marked),
    sorted, and never pending or deauthorized ones."""
    net = ctl.create_network("home", now=T0)
    asked(ctl, net.nwid, mallory, bob)  # mallory stays pending
    ctl.authorize(net.nwid, bob.address, T0)
    ctl.authorize(net.nwid, CAROL, T0, force=True)  # never asked yet
    ctl.set_member(net.nwid, CAROL, active_bridge=True, name="nas", now=T0)
    ctl.authorize(net.nwid, DAVE, T0, force=True)
    ctl.deauthorize(net.nwid, DAVE, T0 + 1)
    config = config_of(request(ctl, net.nwid, bob, T0 + 2), alice)
    assert config.members == tuple(
        sorted([MemberEntry(bob.address, False), MemberEntry(CAROL, True)])
    )
    assert [m.state for m in ctl.list_members(net.nwid)] == [
        "pending",
        "authorized",
        "authorized",
        "deauthorized",
    ]


def test_two_members_never_share_an_ip(ctl: Controller) -> None:
    """Every member authorized from a /30 gets its own address; when the pool is full the
    next authorization fails with a clear error and leaves that member pending."""
    net = ctl.create_network("tiny", pools=["10.0.0.0/30"], now=T0)
    asked(ctl, net.nwid, node(1), node(2), node(3))
    first = ctl.authorize(net.nwid, node(1).address, T0)
    second = ctl.authorize(net.nwid, node(2).address, T0)
    assert sorted(first.ips + second.ips) == ["10.0.0.1", "10.0.0.2"]
    with pytest.raises(
        PoolsFullError, match=r"pools: all pools are full \(10.0.0.0/30: 2 of 2 taken\)"
    ):
        ctl.authorize(net.nwid, node(3).address, T0)
    third = ctl.get_member(net.nwid, node(3).address)
    assert third is not None and third.state == "pending"  # rolled back with the failure
    other = second if first.ips == ("10.0.0.1",) else first
    with pytest.raises(ValidationError, match=r"ips\[0\]: 10.0.0.1 is already assigned to member"):
        ctl.set_member(net.nwid, other.address, ips=["10.0.0.1"], now=T0)
    with pytest.raises(
        ValidationError, match=re.escape("10.0.0.3 is the broadcast address of 10.0.0.0/30")
    ):
        ctl.set_member(net.nwid, 0x0A0B0C0D10, ips=["10.0.0.3"], now=T0)


def test_the_database_refuses_duplicate_ips(ctl: Controller, db: Path) -> None:
    """The guarantee is a constraint in the schema, not only a check in Python."""
    net = ctl.create_network("home", pools=["10.0.0.0/24"], now=T0)
    asked(ctl, net.nwid, node(1))
    held = ctl.authorize(net.nwid, node(1).address, T0).ips[0]
    ctl.set_member(net.nwid, DAVE, name="dave", now=T0)
    raw = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute(
            "INSERT INTO ip_assignments VALUES (?, ?, ?)",
            (format_nwid(net.nwid), held, f"{DAVE:010x}"),
        )
    raw.close()


def test_hand_assigned_ips_are_checked(ctl: Controller, alice: Identity, bob: Identity) -> None:
    """IPs set by hand must fall in a pool or route target and not be the subnet's network
    or broadcast address; accepted ones (IPv6 too) reach the member's config."""
    net = ctl.create_network("home", pools=["10.147.17.0/24"], routes=["fd00:1::/64"], now=T0)
    with pytest.raises(
        ValidationError, match=r"ips\[1\]: 10.9.9.9 is outside every pool and route"
    ):
        ctl.set_member(net.nwid, bob.address, ips=["10.147.17.50", "10.9.9.9"], now=T0)
    with pytest.raises(ValidationError, match=re.escape("network address of 10.147.17.0/24")):
        ctl.set_member(net.nwid, bob.address, ips=["10.147.17.0"], now=T0)
    member = ctl.set_member(net.nwid, bob.address, ips=["fd00:1::50", "10.147.17.50"], now=T0)
    assert member.ips == ("10.147.17.50", "fd00:1::50")
    ctl.authorize(net.nwid, bob.address, T0, force=True)
    assert ctl.get_member(net.nwid, bob.address).ips == member.ips  # type: ignore[union-attr]
    config = config_of(request(ctl, net.nwid, bob, T0), alice)
    assert config.assigned_ips == ("10.147.17.50/24", "fd00:1::50/64")


def test_assignment_is_deterministic(alice: Identity, bob: Identity, tmp_path: Path) -> None:
    """The same member on two fresh databases gets the same address."""
    got = []
    for name in ("one.db", "two.db"):
        controller = Controller(alice, tmp_path / name)
        net = controller.create_network("home", pools=["10.147.17.0/24"], now=T0)
        asked(controller, net.nwid, bob)
        got.append(controller.authorize(net.nwid, bob.address, T0).ips)
        controller.close()
    assert got[0] == got[1] and len(got[0]) == 1


def test_deauthorized_member_is_denied_and_notified(
    ctl: Controller, alice: Identity, bob: Identity, mallory: Identity
) -> None:
    """Deauthorizing marks the network dirty; the pushes go to the remaining members, whose
    new config no longer lists the member, and to the member itself, whose next request is
    denied. It stays on the notify list for one push round, and keeps its IP."""
    net = ctl.create_network("home", pools=["10.147.17.0/24"], now=T0)
    asked(ctl, net.nwid, bob, mallory)
    for member in (bob, mallory):
        ctl.authorize(net.nwid, member.address, T0)
    ctl.take_dirty()
    gone = ctl.deauthorize(net.nwid, mallory.address, T0 + 10)
    assert gone.state == "deauthorized" and gone.ips
    assert ctl.take_dirty() == {net.nwid}
    assert ctl.members_to_notify(net.nwid) == sorted([bob.address, mallory.address])
    assert ctl.build_config(net.nwid, mallory.address, T0 + 10) == Denied("ACCESS_DENIED")
    assert request(ctl, net.nwid, mallory, T0 + 11) == Denied("ACCESS_DENIED")
    bobs = config_of(ctl.build_config(net.nwid, bob.address, T0 + 10), alice)
    assert bobs.members == (MemberEntry(bob.address, False),)
    assert ctl.take_dirty() == set()
    assert ctl.members_to_notify(net.nwid) == [bob.address]
    assert ctl.authorize(net.nwid, mallory.address, T0 + 20).ips == gone.ips


def test_delete_member_frees_ip_and_notifies(ctl: Controller, bob: Identity) -> None:
    """Deleting an authorized member frees its address and tells it on the next push."""
    net = ctl.create_network("tiny", pools=["10.0.0.0/31"], now=T0)
    asked(ctl, net.nwid, bob, node(1), node(2))
    ctl.authorize(net.nwid, bob.address, T0)
    ctl.authorize(net.nwid, node(1).address, T0)
    ctl.take_dirty()
    ctl.delete_member(net.nwid, bob.address)
    assert ctl.take_dirty() == {net.nwid}
    assert bob.address in ctl.members_to_notify(net.nwid)
    assert ctl.authorize(net.nwid, node(2).address, T0).ips  # bob's address was freed
    with pytest.raises(NotFoundError, match="no member"):
        ctl.delete_member(net.nwid, bob.address)


def test_unknown_network_is_not_found(
    ctl: Controller, alice: Identity, bob: Identity, mallory: Identity
) -> None:
    """A request for a network this controller does not host, whether an unused number of
    ours or another controller's id, is NOT_FOUND; admin calls raise NotFoundError."""
    assert request(ctl, make_nwid(alice.address, 99), bob, T0) == Denied("NOT_FOUND")
    assert request(ctl, make_nwid(mallory.address, 1), bob, T0) == Denied("NOT_FOUND")
    with pytest.raises(NotFoundError, match=f"no network {alice.address_text}000063"):
        ctl.authorize(make_nwid(alice.address, 99), bob.address, T0)
    assert ctl.get_network(make_nwid(alice.address, 99)) is None


def test_deleted_network_tells_its_members(ctl: Controller, bob: Identity) -> None:
    """Deleting a network pushes NOT_FOUND to its former members."""
    net = ctl.create_network("home", now=T0)
    asked(ctl, net.nwid, bob)
    ctl.authorize(net.nwid, bob.address, T0)
    ctl.take_dirty()
    ctl.delete_network(net.nwid)
    assert ctl.take_dirty() == {net.nwid}
    assert ctl.members_to_notify(net.nwid) == [bob.address]
    assert ctl.build_config(net.nwid, bob.address, T0) == Denied("NOT_FOUND")


def test_public_network_auto_authorizes(
    ctl: Controller, alice: Identity, bob: Identity, mallory: Identity
) -> None:
    """On a public network the first request is answered with a config and a pool address,
    and the others are told about the newcomer; a member an admin deauthorized stays out."""
    net = ctl.create_network("open", private=False, pools=["10.1.0.0/24"], now=T0)
    ctl.take_dirty()
    config = config_of(request(ctl, net.nwid, bob, T0), alice)
    assert config.assigned_ips and not config.private
    assert ctl.take_dirty() == {net.nwid}
    assert config.revision == ctl.get_network(net.nwid).revision  # type: ignore[union-attr]
    request(ctl, net.nwid, mallory, T0)
    ctl.deauthorize(net.nwid, mallory.address, T0 + 1)
    assert request(ctl, net.nwid, mallory, T0 + 2) == Denied("ACCESS_DENIED")


def test_request_keeps_version_and_address_when_not_given(ctl: Controller, bob: Identity) -> None:
    """None for version or physical address keeps what was recorded before."""
    net = ctl.create_network("home", now=T0)
    request(ctl, net.nwid, bob, T0)
    ctl.answer_request(net.nwid, bob.public(), version=None, physical=None, now=T0 + 5)
    member = ctl.get_member(net.nwid, bob.address)
    assert member is not None
    assert (member.last_seen, member.version, member.physical_address) == (
        T0 + 5,
        "0.1.0",
        "198.51.100.7:9993",
    )


# --------------------------------------------------------------------------- durability


def test_restart_keeps_members_and_approvals(alice: Identity, bob: Identity, db: Path) -> None:
    """Closing and reopening the database keeps networks, members, approvals and IPs, and
    the next network number."""
    first = Controller(alice, db)
    net = first.create_network("home", pools=["10.147.17.0/24"], now=T0)
    request(first, net.nwid, bob, T0)
    before = first.authorize(net.nwid, bob.address, T0 + 1)
    network_before = first.get_network(net.nwid)
    first.close()
    second = Controller(alice, db)
    assert second.get_network(net.nwid) == network_before
    assert second.get_member(net.nwid, bob.address) == before
    assert isinstance(request(second, net.nwid, bob, T0 + 2), bytes)
    assert second.create_network("next", now=T0).number == 2
    second.close()


def test_approval_survives_a_crash(alice: Identity, bob: Identity, db: Path) -> None:
    """A process that approves a member and dies without closing anything (os._exit)
    leaves the approval on disk for the next connection."""
    setup = Controller(alice, db)
    net = setup.create_network("home", pools=["10.147.17.0/24"], now=T0)
    asked(setup, net.nwid, bob)
    setup.close()
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from overlay_core.controller import Controller
        from overlay_core.proto.identity import Identity
        ctl = Controller(Identity.from_text(sys.stdin.read()), Path({str(db)!r}))
        ctl.authorize({net.nwid}, {bob.address}, {T0})
        os._exit(0)
        """
    )
    subprocess.run(
        [sys.executable, "-c", script], input=alice.to_secret_text(), text=True, check=True
    )
    after = Controller(alice, db)
    member = after.get_member(net.nwid, bob.address)
    after.close()
    assert member is not None and member.authorized and member.ips


def test_second_connection_sees_an_approval_before_close(
    alice: Identity, bob: Identity, db: Path
) -> None:
    """A committed approval is visible to another connection while the first is still open
    (nothing waits for close())."""
    ctl = Controller(alice, db)
    net = ctl.create_network("home", now=T0)
    asked(ctl, net.nwid, bob)
    ctl.authorize(net.nwid, bob.address, T0)
    other = Controller(alice, db)
    assert other.get_member(net.nwid, bob.address).authorized  # type: ignore[union-attr]
    other.close()
    ctl.close()


# --------------------------------------------------------------------------- schema


def _tables(path: Path) -> set[str]:
    raw = sqlite3.connect(path)
    names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    raw.close()
    return names


def test_store_settings(db: Path) -> None:
    """WAL journal, synchronous=FULL and foreign keys are on for every connection."""
    store = Store(db)
    pragma = lambda name: store.conn.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert (pragma("journal_mode"), pragma("synchronous"), pragma("foreign_keys")) == ("wal", 2, 1)
    store.close()


def test_migrates_an_empty_file_and_a_version_0_database(tmp_path: Path) -> None:
    """A zero-byte file and a SQLite file at user_version 0 (with an unrelated table) both
    come up at the latest schema; the unrelated table survives."""
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    old = tmp_path / "old.db"
    raw = sqlite3.connect(old)
    raw.execute("CREATE TABLE notes (text TEXT)")
    raw.commit()
    raw.close()
    for path in (empty, old):
        store = Store(path)
        assert store.schema_version == len(MIGRATIONS)
        store.close()
        assert {"networks", "members", "ip_assignments", "meta"} <= _tables(path)
    assert "notes" in _tables(old)


def test_reopen_is_idempotent_and_new_migrations_run_once(alice: Identity, db: Path) -> None:
    """Reopening a current database changes nothing; a migration added later runs exactly
    once, keeping the data."""
    ctl = Controller(alice, db)
    net = ctl.create_network("home", now=T0)
    ctl.close()
    Store(db).close()
    extra = (*MIGRATIONS, ("CREATE TABLE audit (at REAL)", "INSERT INTO audit VALUES (1)"))
    for _ in range(2):
        store = Store(db, extra)
        assert store.schema_version == len(MIGRATIONS) + 1
        assert store.conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 1
        assert store.conn.execute("SELECT count(*) FROM networks").fetchone()[0] == 1
        store.close()
    with pytest.raises(StoreError, match="newer than this ztui knows"):
        Store(db)
    assert net.number == 1


def test_a_failing_migration_rolls_back(db: Path) -> None:
    """A migration step that fails leaves the file at the previous version, with none of
    the step's statements applied."""
    Store(db).close()
    broken = (*MIGRATIONS, ("CREATE TABLE half (x)", "THIS IS NOT SQL"))
    with pytest.raises(StoreError):
        Store(db, broken)
    store = Store(db)
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    assert "half" not in _tables(db)


def test_not_a_database(tmp_path: Path, alice: Identity) -> None:
    """A file that is not SQLite is reported as a StoreError naming it."""
    junk = tmp_path / "controller.db"
    junk.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match=re.escape("controller.db")):
        Controller(alice, junk)


def _modes(db: Path) -> dict[str, int]:
    """The permission bits of the database and each SQLite side file present beside it."""
    return {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"))
        if p.exists()
    }


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_database_wal_and_shm_are_0600_whatever_the_umask(
    alice: Identity, tmp_path: Path, umask: int
) -> None:
    """With --api-group the home is group-readable, so controller.db, -wal and -shm must be
    owner-only: created 0600 under a 0022 or even 0000 umask, checked while the connection
    is open and has written (so SQLite has created -wal and -shm itself)."""
    db = tmp_path / "controller.db"
    old = os.umask(umask)
    try:
        ctl = Controller(alice, db)
        ctl.create_network("home", now=T0)
        assert _modes(db) == {
            "controller.db": 0o600,
            "controller.db-wal": 0o600,
            "controller.db-shm": 0o600,
        }
        ctl.close()
    finally:
        os.umask(old)
    assert _modes(db) == {"controller.db": 0o600}


def test_loose_database_modes_from_an_older_version_are_tightened(
    alice: Identity, db: Path
) -> None:
    """Upgrade path: a controller.db left 0644 by an older ztui, with a -wal and -shm left
    0644 by a crash, are all 0600 once the store is opened again, and the data is kept."""
    ctl = Controller(alice, db)
    net = ctl.create_network("home", now=T0)
    # A second raw connection holds the WAL open, as a crashed daemon leaves it.
    raw = sqlite3.connect(db)
    raw.execute("SELECT count(*) FROM networks").fetchone()
    ctl.close()
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.chmod(0o644)
    try:
        again = Controller(alice, db)
        assert _modes(db) == {
            "controller.db": 0o600,
            "controller.db-wal": 0o600,
            "controller.db-shm": 0o600,
        }
        assert again.get_network(net.nwid) is not None
        again.close()
    finally:
        raw.close()


def test_controller_needs_the_secret(alice: Identity, db: Path) -> None:
    """Without the secret half of its identity a controller could not sign configs."""
    with pytest.raises(ValueError, match="secret"):
        Controller(alice.public(), db)
