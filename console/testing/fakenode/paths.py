"""The fake daemon's path reports and its GET /controller/networks/{nwid}/paths.

The real controller keeps the newest path report of each authorized member
(overlay_core/controller/reports.py) and builds the network-wide view from them
(overlay_core/api/pathview.py, pure JSON, which console/ may import). The fake keeps
reports in the same JSON shape (PathReport.to_json) in `FakeNode.path_reports` and serves
the view through that very module, so the two cannot drift apart.

Where the reports come from:

- this node's own, made on every read from its peers (link, endpoint kind, relay reason,
  latency), as the daemon hands its own node's report to its controller in-process: a
  `set_link()` shows on the next poll;
- every other member's, made once from a `Profile` (its NAT, whether UDP is blocked, its
  LAN, how far it is) by `report_for`; `FakeNode.tick()` re-dates the online ones every
  REPORT_EVERY_S, as members send a heartbeat report.

Two stories use them: `grow_home` (the NAS story's `home` with five members: the laptop
on the NAS's LAN, the phone behind a symmetric NAT, the off-site box whose UDP is
blocked, the desktop that does not report) and `add_mesh` (a network of 200 members for
the console's big-network list and its benchmark: some offline, some not reporting).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from overlay_core.api import pathview
from overlay_core.api.schema import (
    PATH_REASONS,
    ControllerNetworkJson,
    Link,
    MemberJson,
    PathsJson,
)

from ..fake_data import (
    DESKTOP,
    EPOCH,
    HOME_NWID,
    LAPTOP,
    NODE,
    OFFSITE,
    PHONE,
    VERSION,
    hosted,
    member,
    netcheck,
    peer_names,
)

if TYPE_CHECKING:
    from ..fake import FakeNode

REPORT_EVERY_S = pathview.REPORT_EVERY_S  # a member's heartbeat report
ONLINE_WITHIN_S = pathview.ONLINE_WITHIN_S
# netcheck's mapping words (overlay_core/proto/netcheck.py), as reports carry them.
CONE = "endpoint-independent"
SYMMETRIC = "endpoint-dependent (symmetric)"
UNKNOWN_NAT = "unknown"  # no UDP answers (UDP blocked): nothing to name the NAT by
PATH_KINDS = {"lan": "lan", "ipv4": "v4", "ipv6": "v6", "tcp": "relay"}  # fake_data.path_kind
LAN_MS = 0.9
RELAY_EXTRA_MS = 6.0  # through a root: the hop there and back out
TCP_EXTRA_MS = 9.0  # and TCP's own framing and head-of-line waits


@dataclass(frozen=True, slots=True)
class FakeReport:
    """A member's newest report as the controller keeps it: when it came, what it said."""

    received: float
    report: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Profile:
    """What decides how a member reaches the others, and what it reports."""

    nat: str = CONE
    tcp_only: bool = False  # UDP blocked on its network: it reaches the roots over TCP
    site: str | None = None  # members on the same site meet on the LAN
    ms: float = 20.0  # to the middle of the internet: a pair's latency is the two summed
    online: bool = True
    last_report_s: float = 5.0  # how long before the story starts its last report came
    version: str | None = VERSION  # None: an older version, which never reports


# --------------------------------------------------------------------------- reports


def side(me: Profile, other: Profile) -> dict[str, Any]:
    """The entry `me` reports about `other` (without its address)."""
    relayed = round(me.ms + other.ms + RELAY_EXTRA_MS, 1)
    if not other.online:
        return _entry(Link.NONE, "unknown", None, None)
    if me.tcp_only:
        return _entry(Link.TCP, "relay", "tcp_only", round(relayed + TCP_EXTRA_MS, 1))
    if other.tcp_only:
        return _entry(Link.RELAY, "relay", "filtered", relayed)
    if me.nat == SYMMETRIC:
        return _entry(Link.RELAY, "relay", "symmetric_local", relayed)
    if other.nat == SYMMETRIC:
        return _entry(Link.RELAY, "relay", "symmetric_peer", relayed)
    if me.site is not None and me.site == other.site:
        return _entry(Link.DIRECT, "lan", None, LAN_MS)
    return _entry(Link.DIRECT, "v4", None, round(me.ms + other.ms, 1))


def _entry(link: Link, kind: str, reason: str | None, ms: float | None) -> dict[str, Any]:
    return {"link": link, "kind": kind, "reason": reason, "latency_ms": ms}


def report_for(address: str, profiles: dict[str, Profile], uptime_s: int) -> dict[str, Any]:
    """The report `address` sent last. One that went offline said it while the others
    were still there, so it saw them as it would have then."""
    me = profiles[address]
    peers = []
    for other, profile in sorted(profiles.items()):
        if other != address:
            seen = profile if me.online else replace(profile, online=True)
            peers.append({"address": other, **side(me, seen)})
    return {
        "sequence": 1,
        "uptime_s": uptime_s,
        "nat": me.nat,
        "tcp_fallback": me.tcp_only,
        "truncated": False,
        "version": me.version,
        "peers": peers,
    }


def store_reports(node: FakeNode, nwid: str, profiles: dict[str, Profile]) -> None:
    """Each member's last report, from its profile (this node's own is made on reads)."""
    kept = node.path_reports.setdefault(nwid, {})
    for address, profile in profiles.items():
        if address == node.address or profile.version is None:
            continue
        received = node.now - profile.last_report_s
        uptime = int(86_400 - profile.last_report_s)
        kept[address] = FakeReport(received, report_for(address, profiles, uptime))


def heartbeat(node: FakeNode) -> None:
    """tick(): online members report again every REPORT_EVERY_S (offline ones do not)."""
    for nwid, kept in node.path_reports.items():
        online = node.path_online.get(nwid, set())
        for address, stored in list(kept.items()):
            if address in online and node.now - stored.received >= REPORT_EVERY_S:
                kept[address] = FakeReport(node.now, stored.report)


def own_report(node: FakeNode, members: list[str]) -> dict[str, Any]:
    """This node's report: what its peer list says about the other members it knows."""
    state = node.state
    peers = []
    for address in members:
        peer = state.peers.get(address)
        if address == node.address or peer is None:
            continue  # never met: a report lists only the peers it has
        link = peer["link"]
        preferred = next((p for p in peer["paths"] if p["preferred"]), None)
        if link in (Link.RELAY, Link.NONE) or preferred is None:
            kind = "relay" if link == Link.RELAY else "unknown"
        else:
            kind = PATH_KINDS.get(preferred["kind"], "unknown")
        code = peer["relay_reason"]["code"] if peer["relay_reason"] else None
        latency = peer["latency"]["smoothed_ms"]
        peers.append(
            {
                "address": address,
                "link": link,
                "kind": kind,
                "reason": code if link != Link.DIRECT and code in PATH_REASONS else None,
                "latency_ms": None if latency is None else round(latency, 1),
            }
        )
    mapping = netcheck(state)["mapping"]
    return {
        "sequence": 1,
        "uptime_s": int(state.status["uptime_s"]),
        "nat": mapping,
        "tcp_fallback": state.status["tunneled"],
        "truncated": False,
        "version": state.status["version"],
        "peers": peers,
    }


def reports_of(node: FakeNode, nwid: str, members: list[MemberJson]) -> dict[str, FakeReport]:
    """The reports the controller holds for `nwid`'s authorized members, this node's own
    fresh (it is made in-process on every change) when this node is one of them."""
    kept = node.path_reports.get(nwid, {})
    addresses = [m["address"] for m in members]
    found = {a: kept[a] for a in addresses if a in kept}
    joined = node.state.networks.get(nwid)
    if node.address in addresses and joined is not None and joined["settings"]["report"]:
        found[node.address] = FakeReport(node.now, own_report(node, addresses))
    return found


# --------------------------------------------------------------------------- the view


def paths_view(
    network: ControllerNetworkJson,
    members: list[MemberJson],
    reports: dict[str, FakeReport],
    now: float,
    limit: int | None = None,
) -> PathsJson:
    """The daemon's own view builder (overlay_core/api/pathview.py) on the fake's records."""
    return pathview.paths_view(
        network["nwid"],
        network["name"],
        [
            pathview.Member(m["address"], m["name"], list(m["ips"]))
            for m in members
            if m["authorized"]
        ],
        {a: pathview.Report(r.received, r.report) for a, r in reports.items()},
        now,
        limit,
    )


# --------------------------------------------------------------------------- stories

HOME_SITE = "home"  # the NAS's LAN, 192.168.1.0/24
HOME_NAMES = {PHONE: "phone", OFFSITE: "offsite", DESKTOP: "desktop"}


def story_profiles(node: FakeNode) -> dict[str, Profile]:
    """The NAS story's nodes: this NAS and the laptop share a LAN, the phone's NAT is
    symmetric, the off-site box's UDP is blocked, the desktop sends no reports."""
    mapping = netcheck(node.state)["mapping"]
    return {
        node.address: Profile(nat=mapping, site=HOME_SITE, ms=9.0),
        LAPTOP: Profile(site=HOME_SITE, ms=9.5, last_report_s=12.0),
        PHONE: Profile(nat=SYMMETRIC, ms=31.0, last_report_s=21.0),
        OFFSITE: Profile(nat=UNKNOWN_NAT, tcp_only=True, ms=27.0, last_report_s=3.0),
        DESKTOP: Profile(ms=14.0, version=None),
    }


def grow_home(node: FakeNode) -> None:
    """The story's `home` as the Paths view tells it: five members that report their
    paths. The phone is approved, the off-site box and the desktop are members too, and
    the desktop's direct path is back (DIRECT), but it does not report (an older version,
    or reporting switched off)."""
    from .controller import assign_ip  # controller.py imports this module

    roster = node.state.members[HOME_NWID]
    for address in (PHONE, OFFSITE, DESKTOP):
        record = roster.get(address)
        if record is None:
            record = roster[address] = member(HOME_NWID, address, node.now - 3_600)
        record["state"], record["authorized"] = "authorized", True
        record["last_authorized"] = node.now - 300
        record["name"] = record["name"] or HOME_NAMES[address]
        if not record["ips"]:
            assign_ip(node, HOME_NWID, record)
    for address, peer in node.state.peers.items():  # home's config names them now
        peer["names"] = peer_names(node.state, address)
    node.set_link(DESKTOP, Link.DIRECT)
    profiles = story_profiles(node)
    store_reports(node, HOME_NWID, profiles)
    node.path_online[HOME_NWID] = {a for a, p in profiles.items() if p.online}
    node.own_network_changed(HOME_NWID)


MESH_NWID = f"{NODE}000003"


def mesh_profiles(addresses: list[str], rng: random.Random) -> dict[str, Profile]:
    """A big network's mix: most members cone-NATed and DIRECT, offices of eight on one
    LAN, and some behind symmetric NATs, with UDP blocked, gone, or not reporting."""
    profiles: dict[str, Profile] = {}
    for n, address in enumerate(addresses):
        roll = rng.random()
        profile = Profile(
            ms=round(rng.uniform(2.0, 60.0), 1),
            site=f"office-{n // 8}" if rng.random() < 0.3 else None,
            last_report_s=round(rng.uniform(0.5, REPORT_EVERY_S), 1),
        )
        if roll < 0.06:
            profile = replace(profile, nat=SYMMETRIC)
        elif roll < 0.09:
            profile = replace(profile, nat=UNKNOWN_NAT, tcp_only=True)
        elif roll < 0.12:
            profile = replace(profile, online=False, last_report_s=rng.uniform(90.0, 900.0))
        elif roll < 0.16:
            profile = replace(profile, version=None)
        profiles[address] = profile
    return profiles


def add_mesh(node: FakeNode, members: int = 200, seed: int = 0) -> str:
    """Host `mesh`: `members` authorized members (this node not among them) that report
    their paths; its id."""
    rng = random.Random(seed)
    nwid = MESH_NWID
    node.state.hosted[nwid] = hosted(nwid, "mesh", EPOCH - 7 * 86_400, pools=["10.30.0.0/16"])
    roster: dict[str, MemberJson] = {}
    taken = {node.address, *node.state.peers}
    addresses: list[str] = []
    while len(addresses) < members:
        text = f"{rng.getrandbits(40):010x}"
        if text not in taken and not text.startswith(("00", "ff")):
            taken.add(text)
            addresses.append(text)
    for n, address in enumerate(addresses):
        ip = f"10.30.{(n + 1) // 250}.{(n + 1) % 250 + 1}"
        roster[address] = member(
            nwid, address, EPOCH - 3_600, state="authorized", name=f"host-{n:03d}", ips=[ip]
        )
    node.state.members[nwid] = roster
    profiles = mesh_profiles(addresses, rng)
    store_reports(node, nwid, profiles)
    node.path_online[nwid] = {a for a, p in profiles.items() if p.online}
    return nwid


__all__ = [
    "MESH_NWID",
    "FakeReport",
    "Profile",
    "add_mesh",
    "grow_home",
    "heartbeat",
    "paths_view",
    "reports_of",
]
