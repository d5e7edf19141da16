"""The fake daemon's controller routes: networks hosted here and their members, checked
and changed like overlay_core/api/routes_networks.py and the controller do, with the same
`controller` and `member` events: a network created without pools gets the first free
10.147.N.0/24, overlaps with other hosted networks are `warnings`, and approving a node
that never asked is 409 "not_asked" unless forced (overlay_core/controller/overlap.py and
controller.py say why)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from overlay_core.api.schema import (
    MAX_MSS,
    MAX_MULTICAST_LIMIT,
    MAX_NAME_CHARS,
    MEMBER_REQUEST_FIELDS,
    MIN_MSS,
    MULTICAST_LIMIT_RULE,
    NAME_RULE,
    NETWORK_MSS_RULE,
    ControllerNetworkJson,
    FieldError,
    MemberJson,
    PoolsJson,
    UsedRangeJson,
    ascii_int,
    check_flag,
    check_known_keys,
    check_mtu,
    controller_message,
    in_range,
    member_changes,
    member_message,
    network_changes,
    network_words,
    not_asked,
    paths_limit,
    unknown_member,
    unknown_network,
)

from ..fake_data import hosted, member
from . import paths
from .http import address_arg, body_of, handles, nwid_arg, reply, sorted_members

if TYPE_CHECKING:
    from ..fake import FakeNode

PRESETS = ("block-dhcp", "block-ra")
POOL_RULE = 'a pool is "10.147.17.0/24" or "10.147.17.1-10.147.17.254"'


def hosted_record(node: FakeNode, nwid: str) -> ControllerNetworkJson:
    if nwid not in node.state.hosted:
        raise unknown_network(nwid)
    return node.state.hosted[nwid]


def member_record(node: FakeNode, nwid: str, address: str) -> MemberJson:
    hosted_record(node, nwid)
    found = node.state.members.get(nwid, {}).get(address)
    if found is None:
        raise unknown_member(address, nwid)
    return found


def controller_json(node: FakeNode, record: ControllerNetworkJson) -> ControllerNetworkJson:
    """As GET answers it: member counts and overlap warnings worked out on the read."""
    members = node.state.members.get(record["nwid"], {}).values()
    counts = {"authorized": 0, "pending": 0, "deauthorized": 0}
    for item in members:
        counts[item["state"]] += 1
    return {**record, "members": counts, "warnings": warnings(node, record)}  # type: ignore[typeddict-item]


def words(record: ControllerNetworkJson) -> str:
    return network_words(record["name"], record["nwid"])


# --------------------------------------------------------------------------- address space


def used_ranges(record: ControllerNetworkJson) -> list[UsedRangeJson]:
    """A network's pools and on-link routes (overlap.spans)."""
    used: list[UsedRangeJson] = [
        {"nwid": record["nwid"], "name": record["name"], "kind": "pool", "range": pool}
        for pool in record["pools"]
    ]
    used += [
        {"nwid": record["nwid"], "name": record["name"], "kind": "route", "range": r["target"]}
        for r in record["routes"]
        if r["via"] is None
    ]
    return used


def span(text: str) -> tuple[int, int, int]:
    """(version, first, last) of a pool ("CIDR" or "first-last") or a route target."""
    if "-" in text:
        low, _, high = text.partition("-")
        return 4, int(ipaddress.IPv4Address(low)), int(ipaddress.IPv4Address(high))
    net = ipaddress.ip_network(text)
    return net.version, int(net.network_address), int(net.broadcast_address)


def overlap(a: str, b: str) -> bool:
    (va, fa, la), (vb, fb, lb) = span(a), span(b)
    return va == vb and fa <= lb and fb <= la


def suggest_pool(node: FakeNode) -> str | None:
    used = [u["range"] for r in node.state.hosted.values() for u in used_ranges(r)]
    for third in range(17, 256):
        candidate = f"10.147.{third}.0/24"
        if not any(overlap(candidate, text) for text in used):
            return candidate
    return None


def warnings(node: FakeNode, record: ControllerNetworkJson) -> list[str]:
    """overlap.overlap_warnings: one line per other network sharing address space."""
    said: list[str] = []
    mine = used_ranges(record)
    for nwid in sorted(node.state.hosted):
        other = node.state.hosted[nwid]
        if nwid == record["nwid"]:
            continue
        pairs = ((a, b) for a in mine for b in used_ranges(other))
        pair = next(((a, b) for a, b in pairs if overlap(a["range"], b["range"])), None)
        if pair is not None:
            ours, theirs = pair
            said.append(
                f"{ours['kind']} {ours['range']} overlaps {theirs['kind']} {theirs['range']} of "
                f"network {words(other)}: a member of both would get clashing addresses"
            )
    return said


@handles("pools")
def get_pools(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    used = [u for r in node.state.hosted.values() for u in used_ranges(r)]
    body: PoolsJson = {"suggested": suggest_pool(node), "used": used}
    return reply(body)


# --------------------------------------------------------------------------- checks


def check_network(text: object, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(text, str) or "/" not in text:
        raise FieldError(field, f"{text!r} is not a network like 10.147.17.0/24")
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        pass
    try:
        meant = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise FieldError(field, f"{text!r} is not a network like 10.147.17.0/24") from None
    raise FieldError(field, f"{text!r} has host bits set; did you mean {meant}?")


def pool_addresses(text: str) -> Iterator[str]:
    """The addresses a pool hands out, in order (a subnet's network and broadcast excluded)."""
    if "-" in text:
        low, _, high = text.partition("-")
        first, last = int(ipaddress.IPv4Address(low)), int(ipaddress.IPv4Address(high))
        yield from (str(ipaddress.IPv4Address(n)) for n in range(first, last + 1))
    else:
        yield from (str(ip) for ip in ipaddress.IPv4Network(text).hosts())


def in_pool(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    if ip.version != 4:
        return False
    if "-" in text:
        low, _, high = text.partition("-")
        return int(ipaddress.IPv4Address(low)) <= int(ip) <= int(ipaddress.IPv4Address(high))
    return ip in ipaddress.IPv4Network(text)


def check_pool(text: object, field: str) -> str:
    if not isinstance(text, str):
        raise FieldError(field, POOL_RULE)
    if "-" in text:
        low, _, high = text.partition("-")
        try:
            first, last = ipaddress.ip_address(low.strip()), ipaddress.ip_address(high.strip())
        except ValueError:
            raise FieldError(field, f"{text!r} is not a range like 10.0.0.1-10.0.0.254") from None
        if first.version != 4 or last.version != 4:
            raise FieldError(field, "pools are IPv4 only; assign IPv6 addresses by hand")
        if int(first) > int(last):
            raise FieldError(field, f"{text!r} starts after it ends")
        return f"{first}-{last}"
    net = check_network(text, field)
    if net.version != 4:
        raise FieldError(field, "pools are IPv4 only; assign IPv6 addresses by hand")
    return str(net)


def check_route(value: object, field: str) -> dict[str, str | None]:
    target, via = value, None
    if isinstance(value, Mapping):
        target, via = value.get("target"), value.get("via")
    elif isinstance(value, list) and len(value) == 2:
        target, via = value
    if not isinstance(target, str) or not (via is None or isinstance(via, str)):
        raise FieldError(field, 'a route is "CIDR" or [CIDR, gateway or null]')
    return {"target": str(check_network(target, field)), "via": via}


def checked_changes(body: object, *, creating: bool) -> dict[str, Any]:
    """A hosted network's settings body: the daemon's shape checks (schema.network_changes),
    then the values, as the controller checks them."""
    changes = network_changes(body, creating=creating)
    if "name" in changes and not (
        isinstance(changes["name"], str) and len(changes["name"]) <= MAX_NAME_CHARS
    ):
        raise FieldError("name", NAME_RULE)
    for key in ("private", "broadcast"):
        if key in changes:
            check_flag(changes[key], key)
    if "mtu" in changes:
        check_mtu(changes["mtu"])
    mss = changes.get("mss", "off")
    number = ascii_int(mss.removeprefix("fixed:")) if isinstance(mss, str) else None
    if mss not in ("off", "auto") and not (
        mss.startswith("fixed:") and in_range(number, MIN_MSS, MAX_MSS)
    ):
        raise FieldError("mss", NETWORK_MSS_RULE)
    if "multicast_limit" in changes and not in_range(
        changes["multicast_limit"], 0, MAX_MULTICAST_LIMIT
    ):
        raise FieldError("multicast_limit", MULTICAST_LIMIT_RULE)
    if "pools" in changes:
        changes["pools"] = [check_pool(p, f"pools[{i}]") for i, p in enumerate(changes["pools"])]
        if len(set(changes["pools"])) != len(changes["pools"]):
            raise FieldError("pools", "a pool is listed twice")
    if "routes" in changes:
        changes["routes"] = [check_route(r, "routes") for r in changes["routes"]]
    for i, name in enumerate(changes.get("presets", [])):
        if not isinstance(name, str) or name not in PRESETS:  # proto/netrules.py's words
            known = ", ".join(PRESETS)
            raise FieldError(f"presets[{i}]", f"unknown preset {name!r} (known: {known})")
    return changes


# --------------------------------------------------------------------------- networks


@handles("controller_networks")
def get_controller_networks(
    node: FakeNode, request: httpx.Request, args: dict[str, str]
) -> httpx.Response:
    return reply([controller_json(node, r) for r in node.state.hosted.values()])


@handles("create_network")
def post_controller_network(
    node: FakeNode, request: httpx.Request, args: dict[str, str]
) -> httpx.Response:
    changes = checked_changes(body_of(request), creating=True)
    if "name" not in changes:
        raise FieldError("name", "is required")
    taken = {r["number"] for r in node.state.hosted.values()}
    number = changes.pop("number", None)
    if number in taken:
        raise FieldError("number", f"network number {number} is taken")
    number = number if number is not None else min(set(range(1, len(taken) + 2)) - taken)
    nwid = f"{node.address}{number:06x}"
    if "pools" not in changes:
        free = suggest_pool(node)
        changes["pools"] = [free] if free is not None else []
    record = hosted(nwid, changes.pop("name"), node.now)
    record.update(changes)  # type: ignore[typeddict-item]
    node.state.hosted[nwid] = record
    node.state.members[nwid] = {}
    message = controller_message("created network", record["name"], nwid)
    node.push_event("controller", message, nwid=nwid)
    return reply(controller_json(node, record), 201)


@handles("controller_network")
def get_controller_network(
    node: FakeNode, request: httpx.Request, args: dict[str, str]
) -> httpx.Response:
    return reply(controller_json(node, hosted_record(node, nwid_arg(args))))


@handles("update_network")
def patch_controller_network(
    node: FakeNode, request: httpx.Request, args: dict[str, str]
) -> httpx.Response:
    nwid = nwid_arg(args)
    record = hosted_record(node, nwid)
    changes = checked_changes(body_of(request), creating=False)
    if changes:
        record.update(changes)  # type: ignore[typeddict-item]
        changed(node, record)
        message = controller_message(
            f"changed {', '.join(sorted(changes))} of", record["name"], nwid
        )
        node.push_event("controller", message, nwid=nwid)
    return reply(controller_json(node, record))


@handles("delete_network")
def delete_controller_network(
    node: FakeNode, request: httpx.Request, args: dict[str, str]
) -> httpx.Response:
    nwid = nwid_arg(args)
    record = hosted_record(node, nwid)
    del node.state.hosted[nwid]
    node.state.members.pop(nwid, None)
    forget_report(node, nwid)
    message = controller_message("deleted network", record["name"], nwid)
    node.push_event("controller", message, nwid=nwid)
    node.own_network_changed(nwid)
    return reply({"deleted": nwid})


def changed(node: FakeNode, record: ControllerNetworkJson) -> None:
    """A change members are told about: a new revision, pushed to this node if a member."""
    record["revision"] += 1
    record["updated"] = node.now
    node.own_network_changed(record["nwid"])


# --------------------------------------------------------------------------- members


@handles("members")
def get_members(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    nwid = nwid_arg(args)
    hosted_record(node, nwid)
    return reply(sorted_members(node.state.members.get(nwid, {})))


@handles("paths")
def get_paths(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    """Every pair of authorized members, worst first, from their path reports
    (fakenode/paths.py); `?limit=N` keeps the N worst pairs (the counts cover all)."""
    nwid = nwid_arg(args)
    record = hosted_record(node, nwid)
    limit = paths_limit(request.url.params.get("limit"))
    listed = list(node.state.members.get(nwid, {}).values())
    reports = paths.reports_of(node, nwid, [m for m in listed if m["authorized"]])
    return reply(paths.paths_view(record, listed, reports, node.now, limit))


def forget_report(node: FakeNode, nwid: str, address: str | None = None) -> None:
    """A member deauthorized or removed (or its network deleted): its report goes, as the
    controller deletes it (controller/reports.py)."""
    if address is None:
        node.path_reports.pop(nwid, None)
        node.path_online.pop(nwid, None)
        return
    node.path_reports.get(nwid, {}).pop(address, None)
    node.path_online.get(nwid, set()).discard(address)


@handles("member")
def get_member(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(member_record(node, nwid_arg(args), address_arg(args)))


def check_ips(node: FakeNode, nwid: str, address: str, values: object) -> list[str]:
    if not isinstance(values, list):
        raise FieldError("ips", "must be a list of addresses")
    record = node.state.hosted[nwid]
    holders = {
        ip: m["address"]
        for m in node.state.members.get(nwid, {}).values()
        if m["address"] != address
        for ip in m["ips"]
    }
    found: list[str] = []
    for i, value in enumerate(values):
        field = f"ips[{i}]"
        try:
            ip = ipaddress.ip_address(value.strip() if isinstance(value, str) else "")
        except ValueError:
            raise FieldError(field, f"{value!r} is not an IP address like 10.147.17.5") from None
        inside = [p for p in record["pools"] if in_pool(ip, p)]
        inside += [r["target"] for r in record["routes"] if ip in ipaddress.ip_network(r["target"])]
        if not inside:
            where = ", ".join(record["pools"] + [r["target"] for r in record["routes"]])
            where = where or "none defined"
            raise FieldError(
                field, f"{ip} is outside every pool and route of this network ({where})"
            )
        if str(ip) in holders:
            raise FieldError(field, f"{ip} is already assigned to member {holders[str(ip)]}")
        found.append(str(ip))
    if len(set(found)) != len(found):
        raise FieldError("ips", "an address is listed twice")
    return found


def assign_ip(node: FakeNode, nwid: str, record: MemberJson) -> None:
    """The next free address of the network's pools, in order."""
    taken = {ip for m in node.state.members.get(nwid, {}).values() for ip in m["ips"]}
    for pool in node.state.hosted[nwid]["pools"]:
        for ip in pool_addresses(pool):
            if ip not in taken:
                record["ips"] = [ip]
                return


@handles("update_member")
def patch_member(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    """Name, IPs and bridging first, then (de)authorization. Approving a node that never
    asked is 409 unless forced; forced, it is pre-authorized without an address (it would
    take one when it first asks). Approval without IPs takes the next free pool address."""
    nwid, address = nwid_arg(args), address_arg(args)
    network = hosted_record(node, nwid)
    data = body_of(request)
    check_known_keys(data, MEMBER_REQUEST_FIELDS)
    authorized = check_flag(data["authorized"], "authorized") if "authorized" in data else None
    force = check_flag(data["force"], "force") if "force" in data else False
    if "force" in data and authorized is not True:
        raise FieldError("force", 'only goes with "authorized": true')
    existing = node.state.members.get(nwid, {}).get(address)
    asked = existing is not None and (existing["authorized"] or existing["last_seen"] is not None)
    if authorized is True and not force and not asked:
        raise not_asked(address, nwid)
    ips = check_ips(node, nwid, address, data["ips"]) if "ips" in data else None
    if "name" in data and not (
        isinstance(data["name"], str) and len(data["name"]) <= MAX_NAME_CHARS
    ):
        raise FieldError("name", NAME_RULE)
    bridge = check_flag(data["active_bridge"], "active_bridge") if "active_bridge" in data else None
    members = node.state.members.setdefault(nwid, {})
    if authorized is False:
        member_record(node, nwid, address)
    before = members[address].copy() if address in members else None
    record = members.get(address) or member(nwid, address, node.now, physical=None)
    if before is None:
        record["last_seen"], record["version"] = None, None
        members[address] = record
    record["name"] = data.get("name", record["name"])
    record["ips"] = ips if ips is not None else record["ips"]
    record["active_bridge"] = bridge if bridge is not None else record["active_bridge"]
    if authorized is True and not record["authorized"]:
        record["state"], record["authorized"] = "authorized", True
        record["last_authorized"] = node.now
        if not record["ips"] and record["last_seen"] is not None:
            assign_ip(node, nwid, record)
    elif authorized is False and record["state"] != "deauthorized":
        record["state"], record["authorized"] = "deauthorized", False
        record["last_deauthorized"] = node.now
        forget_report(node, nwid, address)
    said = member_changes(before, record)
    if said:
        message = member_message(address, words(network), said)
        node.push_event("member", message, nwid=nwid, address=address)
        changed(node, network)
    return reply(record)


@handles("delete_member")
def delete_member(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    nwid, address = nwid_arg(args), address_arg(args)
    member_record(node, nwid, address)
    del node.state.members[nwid][address]
    forget_report(node, nwid, address)
    network = node.state.hosted[nwid]
    message = member_message(address, words(network), ["deleted"])
    node.push_event("member", message, nwid=nwid, address=address)
    changed(node, network)
    return reply({"deleted": f"{nwid}/{address}"})
