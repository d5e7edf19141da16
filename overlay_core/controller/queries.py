"""The controller's SQL: reading records, assigning IPs, building signed configs.

Every function takes the connection of a transaction already open (Store.transaction), so
the caller decides what is atomic; none commits or touches the controller's dirty marks.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import sqlite3
from collections.abc import Iterable

from overlay_core.proto.identity import Identity, format_address
from overlay_core.proto.netconf import (
    MAX_INFO_IPS,
    CertificateOfMembership,
    MemberEntry,
    MemberInfo,
    NetworkConfig,
    ValidationError,
    format_nwid,
)
from overlay_core.proto.netfields import printable
from overlay_core.proto.states import NetworkState

from .pools import (
    IPAddress,
    PoolsFullError,
    check_member_ip,
    parse_pool,
    pick_address,
    prefix_length,
)
from .records import ConfigReply, Denied, MemberRecord, NetworkRecord, NotFoundError
from .settings import NetworkSettings

MAX_NETWORK_NUMBER = (1 << 24) - 1
_NEXT_NUMBER_KEY = "next_network_number"


def settings_row(s: NetworkSettings) -> dict[str, object]:
    """Settings as the networks table stores them (JSON for the lists)."""
    return {
        "name": s.name,
        "private": s.private,
        "mtu": s.mtu,
        "mss": str(s.mss),
        "broadcast": s.broadcast,
        "multicast_limit": s.multicast_limit,
        "rules": json.dumps([r.to_json() for r in s.rules]),
        "presets": json.dumps(s.presets),
        "pools": json.dumps([p.text for p in s.pools]),
        "routes": json.dumps(s.routes),
    }


def pick_number(db: sqlite3.Connection, number: int | None) -> int:
    """An explicit free number, or the next never-used one (see Controller.create_network)."""
    if number is not None:
        if isinstance(number, bool) or not 0 <= number <= MAX_NETWORK_NUMBER:
            raise ValidationError("number", f"must be 0-{MAX_NETWORK_NUMBER}")
        if db.execute("SELECT 1 FROM networks WHERE number = ?", (number,)).fetchone():
            raise ValidationError("number", f"network number {number} is taken")
        return number
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_NEXT_NUMBER_KEY,)).fetchone()
    candidate = int(row[0]) if row else 1
    while db.execute("SELECT 1 FROM networks WHERE number = ?", (candidate,)).fetchone():
        candidate += 1  # skip numbers chosen explicitly
    if candidate > MAX_NETWORK_NUMBER:
        raise ValidationError("number", "every network number has been used")
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_NEXT_NUMBER_KEY, candidate + 1)
    )
    return candidate


def network_or_none(db: sqlite3.Connection, nwid: int) -> NetworkRecord | None:
    row = db.execute("SELECT * FROM networks WHERE nwid = ?", (format_nwid(nwid),)).fetchone()
    return NetworkRecord.from_row(row) if row else None


def network(db: sqlite3.Connection, nwid: int) -> NetworkRecord:
    found = network_or_none(db, nwid)
    if found is None:
        raise NotFoundError(f"no network {format_nwid(nwid)} on this controller")
    return found


def member(
    db: sqlite3.Connection, nwid: int, address: int, create_at: float | None = None
) -> MemberRecord | None:
    """The member's record; with `create_at`, a new pending row if there is none."""
    key = (format_nwid(nwid), format_address(address))
    select = "SELECT * FROM members WHERE nwid = ? AND address = ?"
    row = db.execute(select, key).fetchone()
    if row is None and create_at is not None:
        db.execute(
            "INSERT INTO members (nwid, address, created) VALUES (?, ?, ?)", (*key, create_at)
        )
        row = db.execute(select, key).fetchone()
    return MemberRecord.from_row(row, member_ips(db, nwid, address)) if row else None


def existing_member(db: sqlite3.Connection, nwid: int, address: int) -> MemberRecord:
    network(db, nwid)
    found = member(db, nwid, address)
    if found is None:
        raise NotFoundError(f"no member {format_address(address)} in network {format_nwid(nwid)}")
    return found


def list_members(db: sqlite3.Connection, nwid: int) -> list[MemberRecord]:
    rows = db.execute(
        "SELECT * FROM members WHERE nwid = ? ORDER BY"
        " CASE WHEN authorized THEN 1 WHEN last_deauthorized IS NULL THEN 0 ELSE 2 END,"
        " created, address",
        (format_nwid(nwid),),
    ).fetchall()
    return [
        MemberRecord.from_row(row, member_ips(db, nwid, int(row["address"], 16))) for row in rows
    ]


def member_ips(db: sqlite3.Connection, nwid: int, address: int) -> tuple[str, ...]:
    """IPv4 first, then IPv6, each in numeric order."""
    rows = db.execute(
        "SELECT ip FROM ip_assignments WHERE nwid = ? AND address = ?",
        (format_nwid(nwid), format_address(address)),
    ).fetchall()
    ips = sorted((ipaddress.ip_address(r[0]) for r in rows), key=lambda ip: (ip.version, ip))
    return tuple(str(ip) for ip in ips)


def all_member_ips(db: sqlite3.Connection, nwid: int) -> dict[int, tuple[str, ...]]:
    """member_ips for every member of `nwid`, in one query (a config lists them all)."""
    found: dict[int, list[IPAddress]] = {}
    for row in db.execute(
        "SELECT address, ip FROM ip_assignments WHERE nwid = ?", (format_nwid(nwid),)
    ):
        found.setdefault(int(row[0], 16), []).append(ipaddress.ip_address(row[1]))
    return {
        address: tuple(str(ip) for ip in sorted(ips, key=lambda ip: (ip.version, ip)))
        for address, ips in found.items()
    }


def authorized_addresses(db: sqlite3.Connection, nwid: int) -> list[int]:
    rows = db.execute(
        "SELECT address FROM members WHERE nwid = ? AND authorized = 1 ORDER BY address",
        (format_nwid(nwid),),
    )
    return [int(row[0], 16) for row in rows]


def bump_revision(db: sqlite3.Connection, nwid: int, now: float | None) -> None:
    db.execute(
        "UPDATE networks SET revision = revision + 1, updated = coalesce(?, updated)"
        " WHERE nwid = ?",
        (now, format_nwid(nwid)),
    )


def assign_from_pools(
    db: sqlite3.Connection, net: NetworkRecord, address: int, *, strict: bool
) -> None:
    """Give a member without IPs one from the pools. Full pools raise PoolsFullError when
    `strict`; otherwise the member goes without (a member's own request has nobody to tell,
    and the admin sees an authorized member with no IPs)."""
    nwid, addr = format_nwid(net.nwid), format_address(address)
    has_ip = db.execute(
        "SELECT 1 FROM ip_assignments WHERE nwid = ? AND address = ?", (nwid, addr)
    ).fetchone()
    if not net.pools or has_ip:
        return
    taken = {
        int(ipaddress.IPv4Address(row[0]))
        for row in db.execute("SELECT ip FROM ip_assignments WHERE nwid = ?", (nwid,))
        if ":" not in row[0]
    }
    try:
        ip = pick_address(tuple(parse_pool(p) for p in net.pools), address, taken)
    except PoolsFullError:
        if strict:
            raise
        return
    db.execute("INSERT INTO ip_assignments VALUES (?, ?, ?)", (nwid, str(ip), addr))


def set_member_ips(
    db: sqlite3.Connection, net: NetworkRecord, address: int, ips: Iterable[str]
) -> None:
    """Replace a member's IPs with hand-picked ones, each checked against the pools and
    routes and against every other member's."""
    if isinstance(ips, str):
        raise ValidationError("ips", "must be a list of addresses")
    pools = tuple(parse_pool(p) for p in net.pools)
    checked = [check_member_ip(ip, f"ips[{i}]", pools, net.routes) for i, ip in enumerate(ips)]
    if len(checked) > MAX_INFO_IPS:  # configs carry them to every member, which refuse more
        raise ValidationError("ips", f"at most {MAX_INFO_IPS} addresses per member")
    if len(set(checked)) != len(checked):
        raise ValidationError("ips", "an address is listed twice")
    nwid, addr = format_nwid(net.nwid), format_address(address)
    db.execute("DELETE FROM ip_assignments WHERE nwid = ? AND address = ?", (nwid, addr))
    for i, ip in enumerate(checked):
        holder = db.execute(
            "SELECT address FROM ip_assignments WHERE nwid = ? AND ip = ?", (nwid, str(ip))
        ).fetchone()
        if holder is not None:
            raise ValidationError(f"ips[{i}]", f"{ip} is already assigned to member {holder[0]}")
        try:
            db.execute("INSERT INTO ip_assignments VALUES (?, ?, ?)", (nwid, str(ip), addr))
        except sqlite3.IntegrityError:  # the constraint has the last word
            raise ValidationError(f"ips[{i}]", f"{ip} is already assigned")


def signed_config(
    db: sqlite3.Connection, controller: Identity, net: NetworkRecord, address: int, now: float
) -> ConfigReply:
    """The config for one member as of `now`, signed, or ACCESS_DENIED if not authorized."""
    record = member(db, net.nwid, address)
    if record is None or not record.authorized:
        return Denied(NetworkState.ACCESS_DENIED)
    pools = tuple(parse_pool(p) for p in net.pools)
    ips = (ipaddress.ip_address(text) for text in record.ips)
    members = tuple(
        MemberEntry(int(row[0], 16), bool(row[1]))
        for row in db.execute(
            "SELECT address, active_bridge FROM members"
            " WHERE nwid = ? AND authorized = 1 ORDER BY address",
            (format_nwid(net.nwid),),
        )
    )
    ips_of = all_member_ips(db, net.nwid)
    info = tuple(
        # A database from before names travelled may hold any text: shown as members
        # will show it, and never more IPs than members take.
        MemberInfo(
            int(row[0], 16), printable(row[1]), ips_of.get(int(row[0], 16), ())[:MAX_INFO_IPS]
        )
        for row in db.execute(
            "SELECT address, name FROM members WHERE nwid = ? AND authorized = 1 ORDER BY address",
            (format_nwid(net.nwid),),
        )
    )
    config = NetworkConfig(
        nwid=net.nwid,
        name=net.name,
        revision=net.revision,
        timestamp=now,
        issued_to=address,
        private=net.private,
        mtu=net.mtu,
        mss=net.mss,
        broadcast=net.broadcast,
        multicast_limit=net.multicast_limit,
        assigned_ips=tuple(f"{ip}/{prefix_length(ip, pools, net.routes)}" for ip in ips),
        routes=net.routes,
        rules=net.effective_rules,
        members=members,
        com=CertificateOfMembership.sign(controller, net.nwid, address, now),
        member_info=tuple(m for m in info if m.name or m.ips),
    )
    try:
        return config.to_signed_bytes(controller)
    except ValueError:
        # Over MAX_CONFIG_BYTES (hundreds of long names): members go without names rather
        # than without a config.
        return dataclasses.replace(config, member_info=()).to_signed_bytes(controller)
