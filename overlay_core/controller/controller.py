"""The network controller: networks, member approval, IP assignment, signed configs.

Two sides, one database:

* admin (the API, the console): create and change networks, approve and deauthorize
  members, name them, assign IPs. Every change that alters what members are told bumps the
  network's revision and marks the network dirty.
* protocol (the node): `answer_request` answers a member's NETWORK_CONFIG_REQUEST with
  signed config bytes or a `Denied` (its `reply`). An unknown member of a private network
  becomes a pending row and is denied until an admin authorizes it; a public network lets
  it in, and so does any network for the controller's own node (its admin is the one who
  joined). The outcome also says whether the request is news for an admin: a pending
  member asking for the first time, or again after REQUEST_SILENCE_S, not every retry.

Approval and addresses, as ZeroTier does it:

* Only a node that has asked (sent a config request) can be approved; approving anyone
  else is refused with NotAskedError, since a mistyped address would otherwise sit
  authorized, holding a pool address, for whoever owns it. `force=True` pre-authorizes
  such a node, and it gets its pool address when it first asks, not before.
* Deauthorizing keeps a member's addresses, so authorizing it again gives them back;
  deleting the member frees them for the next one.
* A network created without pools gets the first free one of 10.147.17.0/24,
  10.147.18.0/24, ... (overlap.py), and overlapping another hosted network's address
  space is reported by `warnings`, never refused.

Pushing changes: on its tick the node calls `take_dirty()` and, for each network returned,
sends `build_config(nwid, address, now)` to every address in `members_to_notify(nwid)`:
the authorized members, whose members list or settings changed, plus anyone deauthorized
or deleted since the push round before last, who gets a Denied and so learns it is out.
Dirty marks are set inside transactions; one whose transaction rolled back only costs a
spare push.

Time is always passed in (`now`, seconds on the controller's clock); nothing here reads a
clock. Calls block on SQLite (an fsync per change) and belong on the node's thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from overlay_core.proto.identity import Identity, format_address, is_reserved_address
from overlay_core.proto.netconf import (
    ValidationError,
    controller_of,
    format_nwid,
    make_nwid,
    network_number,
)
from overlay_core.proto.netfields import check_bool, check_name
from overlay_core.proto.netrules import Rule
from overlay_core.proto.report import PathReport
from overlay_core.proto.states import NetworkState

from . import queries as q
from . import reports
from .overlap import overlap_warnings, suggest_pool
from .records import (
    ConfigReply,
    Denied,
    MemberRecord,
    NetworkRecord,
    NotAskedError,
    NotFoundError,
    RequestOutcome,
)
from .settings import check_settings
from .store import Store

# A pending member retries every few seconds while it waits; it is news for an admin when
# it first asks, and again only when it comes back after this long a silence.
REQUEST_SILENCE_S = 600.0


class Controller:
    """Hosts the networks whose ids start with `identity.address`."""

    def __init__(self, identity: Identity, db_path: Path) -> None:
        if identity.seed is None:
            raise ValueError("a controller needs its identity's secret to sign configs")
        self.identity = identity
        self._store = Store(db_path)
        self._dirty: set[int] = set()
        # Deauthorized or deleted members still to be told, per network: those since the
        # last take_dirty(), and those of the round it returned.
        self._gone_pending: dict[int, set[int]] = {}
        self._gone_round: dict[int, set[int]] = {}

    def close(self) -> None:
        self._store.close()

    # ----------------------------------------------------------------- networks

    def create_network(
        self,
        name: str,
        *,
        private: bool = True,
        pools: Iterable[str] | None = None,
        routes: Iterable[object] = (),
        mtu: int = 2800,
        mss: str = "auto",
        broadcast: bool = True,
        multicast_limit: int = 32,
        rules: Iterable[Rule | Mapping[str, object]] = (),
        presets: Iterable[str] = (),
        number: int | None = None,
        now: float,
    ) -> NetworkRecord:
        """Numbers are handed out 1, 2, 3, ... and never reused, even after a delete, so a
        stale member of a deleted network is never mistaken for a member of a new one with
        the same id. An explicit free `number` (0-16777215) may be chosen instead.

        `rules` are Rule objects or their JSON; `presets` are PRESETS names (netrules.py).
        `pools=None` picks the first free suggested pool (suggest_pool; none if all are
        taken); `pools=()` means no pool, addresses assigned by hand.
        """
        if pools is None:
            free = self.suggest_pool()
            pools = [free] if free is not None else []
        settings = check_settings(
            {
                "name": name,
                "private": private,
                "pools": list(pools),
                "routes": list(routes),
                "mtu": mtu,
                "mss": mss,
                "broadcast": broadcast,
                "multicast_limit": multicast_limit,
                "rules": list(rules),
                "presets": list(presets),
            }
        )
        with self._store.transaction() as db:
            nwid = make_nwid(self.identity.address, q.pick_number(db, number))
            row = q.settings_row(settings)  # fixed column names, safe to format into SQL
            db.execute(
                f"INSERT INTO networks (nwid, number, {', '.join(row)}, revision, created,"
                f" updated) VALUES (?, ?, {', '.join('?' * len(row))}, 1, ?, ?)",
                (format_nwid(nwid), network_number(nwid), *row.values(), now, now),
            )
            return q.network(db, nwid)

    def get_network(self, nwid: int) -> NetworkRecord | None:
        with self._store.transaction(write=False) as db:
            return self._network_or_none(db, nwid)

    def list_networks(self) -> list[NetworkRecord]:
        rows = self._store.conn.execute("SELECT * FROM networks ORDER BY nwid").fetchall()
        return [NetworkRecord.from_row(row) for row in rows]

    def suggest_pool(self) -> str | None:
        """The first of 10.147.17.0/24, 10.147.18.0/24, ... no hosted network uses."""
        return suggest_pool(self.list_networks())

    def warnings(
        self, record: NetworkRecord, others: list[NetworkRecord] | None = None
    ) -> list[str]:
        """What an admin should know about a network's settings: overlaps with the other
        hosted networks (`others`: list_networks(), if the caller has it already)."""
        return overlap_warnings(record, self.list_networks() if others is None else others)

    def update_network(self, nwid: int, *, now: float, **changes: object) -> NetworkRecord:
        """Change any settings create_network takes, except the number; bumps the revision.
        Assignments that fall outside new pools are kept: change them with set_member."""
        with self._store.transaction() as db:
            current = self._network(db, nwid)
            values: dict[str, object] = {
                "name": current.name,
                "private": current.private,
                "pools": current.pools,
                "routes": current.routes,
                "mtu": current.mtu,
                "mss": current.mss,
                "broadcast": current.broadcast,
                "multicast_limit": current.multicast_limit,
                "rules": current.rules,
                "presets": current.presets,
            }
            values.update(changes)
            row = q.settings_row(check_settings(values))
            db.execute(
                f"UPDATE networks SET {', '.join(f'{k} = ?' for k in row)} WHERE nwid = ?",
                (*row.values(), format_nwid(nwid)),
            )
            self._changed(db, nwid, now)
            return q.network(db, nwid)

    def delete_network(self, nwid: int) -> None:
        """Members and their IPs go with it; its members are told NOT_FOUND on the next
        push. The number is not handed out again."""
        with self._store.transaction() as db:
            self._network(db, nwid)
            self._gone_pending.setdefault(nwid, set()).update(q.authorized_addresses(db, nwid))
            db.execute("DELETE FROM networks WHERE nwid = ?", (format_nwid(nwid),))
            self._dirty.add(nwid)

    # ----------------------------------------------------------------- members

    def list_members(self, nwid: int) -> list[MemberRecord]:
        """Pending members first (oldest first), then authorized, then deauthorized."""
        with self._store.transaction(write=False) as db:
            self._network(db, nwid)
            return q.list_members(db, nwid)

    def get_member(self, nwid: int, address: int) -> MemberRecord | None:
        with self._store.transaction(write=False) as db:
            return q.member(db, nwid, address)

    def authorize(
        self, nwid: int, address: int, now: float, *, force: bool = False
    ) -> MemberRecord:
        """Let a member in. A member without IPs gets one from the pools; if they are full
        this raises PoolsFullError and nothing changes (assign one by hand with set_member).

        A node that never asked raises NotAskedError, unless `force`: then it is
        pre-authorized (its row created if need be) and takes its pool address only when
        it first asks, so a mistyped address holds none.
        """
        with self._store.transaction() as db:
            net = self._network(db, nwid)
            member = q.member(db, nwid, _check_member_address(address))
            if member is not None and member.authorized:
                return member
            asked = member is not None and member.has_asked
            if not asked and not force:
                raise NotAskedError(nwid, address)
            q.member(db, nwid, address, create_at=now)
            self._authorize(db, net, address, now, strict=True, assign=asked)
            return q.existing_member(db, nwid, address)

    def deauthorize(self, nwid: int, address: int, now: float) -> MemberRecord:
        """Cut a member off, or refuse a pending one. It keeps its IPs (as in ZeroTier), so
        authorizing it again restores them; delete the member to free them."""
        with self._store.transaction() as db:
            self._network(db, nwid)
            member = q.existing_member(db, nwid, address)
            db.execute(
                "UPDATE members SET authorized = 0, last_deauthorized = ?"
                " WHERE nwid = ? AND address = ?",
                (now, format_nwid(nwid), format_address(address)),
            )
            if member.authorized:
                self._gone_pending.setdefault(nwid, set()).add(address)
                self._changed(db, nwid, now)
            reports.delete(db, nwid, address)
            return q.existing_member(db, nwid, address)

    def set_member(
        self,
        nwid: int,
        address: int,
        *,
        name: str | None = None,
        ips: Iterable[str] | None = None,
        active_bridge: bool | None = None,
        now: float,
    ) -> MemberRecord:
        """Change what is given (None leaves it), creating a pending row if needed. `ips`
        replaces the member's addresses: plain IPs, each inside a pool or route target of
        the network and held by no other member."""
        with self._store.transaction() as db:
            net = self._network(db, nwid)
            member = q.member(db, nwid, _check_member_address(address), create_at=now)
            assert member is not None  # create_at makes one
            key = (format_nwid(nwid), format_address(address))
            if name is not None:
                if not check_name(name).isprintable():  # it travels to every member
                    raise ValidationError("name", "no control characters, tabs or odd spaces")
                db.execute(
                    "UPDATE members SET name = ? WHERE nwid = ? AND address = ?", (name, *key)
                )
            if active_bridge is not None:
                db.execute(
                    "UPDATE members SET active_bridge = ? WHERE nwid = ? AND address = ?",
                    (check_bool(active_bridge, "active_bridge"), *key),
                )
            if ips is not None:
                q.set_member_ips(db, net, address, ips)
            renamed = name is not None and name != member.name  # names travel in configs
            if member.authorized and (ips is not None or active_bridge is not None or renamed):
                self._changed(db, nwid, now)
            return q.existing_member(db, nwid, address)

    def delete_member(self, nwid: int, address: int) -> None:
        """Forget a member and free its IPs (the next member may take them); if it was
        authorized it is told on the next push, so peers drop it from their members lists
        and refuse its frames as after a deauthorization. If it asks again it is a new
        member: pending (and announced), or let in on a public network."""
        with self._store.transaction() as db:
            self._network(db, nwid)
            member = q.existing_member(db, nwid, address)
            if member.authorized:
                self._gone_pending.setdefault(nwid, set()).add(address)
                self._changed(db, nwid, None)
            db.execute(
                "DELETE FROM members WHERE nwid = ? AND address = ?",
                (format_nwid(nwid), format_address(address)),
            )

    # ----------------------------------------------------------------- path reports

    def store_report(self, report: PathReport, now: float) -> str | None:
        """Keep a member's path report (reports.py); None, or why it was not kept."""
        with reports.relaxed(self._store.conn), self._store.transaction() as db:
            if self._network_or_none(db, report.nwid) is None:
                return "not_member"
            return reports.store(db, report, now)

    def path_reports(
        self, nwid: int
    ) -> tuple[NetworkRecord, list[MemberRecord], dict[int, reports.StoredReport]]:
        """A network, its members and their newest reports, read in one snapshot."""
        with self._store.transaction(write=False) as db:
            net = self._network(db, nwid)
            return net, q.list_members(db, nwid), reports.load(db, nwid)

    # ----------------------------------------------------------------- protocol side

    def answer_request(
        self,
        nwid: int,
        member: Identity,
        *,
        version: str | None,
        physical: str | None,
        now: float,
    ) -> RequestOutcome:
        """A member asks for its config. Records when and from where (None keeps the last
        version or physical address), then answers like build_config.

        Let in without an admin, unless an admin deauthorized it: whoever asks for a
        public network, and the controller's own node (whoever runs the controller
        approves it anyway). A pre-authorized member takes its pool address now, on its
        first request.
        """
        with self._store.transaction() as db:
            net = self._network_or_none(db, nwid)
            if net is None:
                return RequestOutcome(Denied(NetworkState.NOT_FOUND))
            record = q.member(db, nwid, member.address, create_at=now)
            assert record is not None  # create_at makes one; `record` is from before
            db.execute(
                "UPDATE members SET last_seen = ?, version = coalesce(?, version),"
                " physical_address = coalesce(?, physical_address)"
                " WHERE nwid = ? AND address = ?",
                (now, version, physical, format_nwid(nwid), format_address(member.address)),
            )
            admitted = False
            if record.authorized and not record.has_asked:
                # Pre-authorized (approve --force): it joins now. The new address is a
                # change the other members' configs and the event stream must carry.
                q.assign_from_pools(db, net, member.address, strict=False)
                self._changed(db, nwid, now)
                net = q.network(db, nwid)
                admitted = True
            elif not record.authorized and record.last_deauthorized is None:
                if not net.private or member.address == self.identity.address:
                    self._authorize(db, net, member.address, now, strict=False, assign=True)
                    net = q.network(db, nwid)  # the new revision
                    admitted = True
            after = q.existing_member(db, nwid, member.address)
            silent = record.last_seen is None or now - record.last_seen >= REQUEST_SILENCE_S
            return RequestOutcome(
                q.signed_config(db, self.identity, net, member.address, now),
                network=net,
                member=after,
                announce=after.state == "pending" and silent,
                admitted=admitted,
            )

    def build_config(self, nwid: int, address: int, now: float) -> ConfigReply:
        """A member's config as of `now`, for pushes; records nothing."""
        with self._store.transaction(write=False) as db:
            net = self._network_or_none(db, nwid)
            if net is None:
                return Denied(NetworkState.NOT_FOUND)
            return q.signed_config(db, self.identity, net, address, now)

    def members_to_notify(self, nwid: int) -> list[int]:
        """Whom to push configs to after `nwid` came back from take_dirty(), sorted."""
        with self._store.transaction(write=False) as db:
            addresses = set(q.authorized_addresses(db, nwid))
        addresses |= self._gone_round.get(nwid, set()) | self._gone_pending.get(nwid, set())
        return sorted(addresses)

    def take_dirty(self) -> set[int]:
        """Networks whose configs changed since the last call. Also starts a new push round:
        members deauthorized before this call stay in members_to_notify until the next."""
        dirty, self._dirty = self._dirty, set()
        self._gone_round, self._gone_pending = self._gone_pending, {}
        return dirty

    # ----------------------------------------------------------------- internals

    def _authorize(
        self,
        db: sqlite3.Connection,
        net: NetworkRecord,
        address: int,
        now: float,
        *,
        strict: bool,
        assign: bool,
    ) -> None:
        """Set the member authorized; with `assign`, give it a pool address if it has
        none (`strict`: PoolsFullError if the pools are full, else it goes without)."""
        if assign:
            q.assign_from_pools(db, net, address, strict=strict)
        db.execute(
            "UPDATE members SET authorized = 1, last_authorized = ? WHERE nwid = ? AND address = ?",
            (now, format_nwid(net.nwid), format_address(address)),
        )
        self._changed(db, net.nwid, now)

    def _changed(self, db: sqlite3.Connection, nwid: int, now: float | None) -> None:
        q.bump_revision(db, nwid, now)
        self._dirty.add(nwid)

    def _network_or_none(self, db: sqlite3.Connection, nwid: int) -> NetworkRecord | None:
        if controller_of(nwid) != self.identity.address:
            return None  # not ours, whatever the database holds
        return q.network_or_none(db, nwid)

    def _network(self, db: sqlite3.Connection, nwid: int) -> NetworkRecord:
        net = self._network_or_none(db, nwid)
        if net is None:
            raise NotFoundError(f"no network {format_nwid(nwid)} on this controller")
        return net


def _check_member_address(address: int) -> int:
    if isinstance(address, bool) or not 0 < address < 1 << 40 or is_reserved_address(address):
        raise ValidationError("address", "must be a 40-bit member address, not reserved")
    return address
