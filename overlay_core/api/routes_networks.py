"""API routes for virtual networks: those this node has joined, and those its controller hosts.

Member side (this node on a network; shapes NetworkJson, NetworkSettingsJson):
    GET    /networks                 [NetworkJson]
    GET    /networks/{nwid}          NetworkJson; 404 not joined
    POST   /networks/{nwid}          join; optional settings body; 201 new, 200 already joined
    PATCH  /networks/{nwid}          change settings (partial); NetworkJson
    DELETE /networks/{nwid}          leave; LeftJson

Controller side (networks whose id starts with this node's address):
    GET    /controller/networks                           [ControllerNetworkJson]
    POST   /controller/networks                           create; 201 ControllerNetworkJson
    GET    /controller/pools                              PoolsJson: used ranges, a free pool
    GET    /controller/networks/{nwid}                    ControllerNetworkJson
    PATCH  /controller/networks/{nwid}                    change settings (partial)
    DELETE /controller/networks/{nwid}                    DeletedJson
    GET    /controller/networks/{nwid}/members            [MemberJson], pending first
    GET    /controller/networks/{nwid}/members/{address}  MemberJson
    PATCH  /controller/networks/{nwid}/members/{address}  authorized, name, ips, active_bridge
                                                          (+ force, see below)
    DELETE /controller/networks/{nwid}/members/{address}  DeletedJson; frees its IPs

Creating a network without "pools" gives it the first free suggested pool (the one GET
/controller/pools names); `"pools": []` means none. Every ControllerNetworkJson carries
`warnings`: pools or on-link routes that overlap another hosted network's, which is
allowed (see controller/overlap.py) but worth saying.

Approving (`"authorized": true`) a node that has never asked to join is 409 "not_asked",
with a reason saying to run `ztui join NWID` on it first: a mistyped address would
otherwise sit authorized. `"force": true` in the same body pre-authorizes it; it takes its
pool address when it first asks. `force` is a flag of the request, not something stored,
but it travels in the body like every other input here (so it is checked, and a typo in
its name is refused, the same way); it is only valid beside `"authorized": true`.

A malformed id is 400 ("a network id is 16 hex digits"); a value that breaks a rule is 400
"validation" naming the field, whether this module or the controller caught it.

Every change made here is also published on the event bus: `controller` events for
networks created, updated or deleted, one `member` event per member PATCH or DELETE that
changed something (approved, deauthorized, renamed, IPs, bridging, deleted).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from aiohttp import web

from overlay_core.controller import MemberRecord, NetworkRecord, NotAskedError
from overlay_core.controller.overlap import spans
from overlay_core.proto.effects import NetworkStatus
from overlay_core.proto.identity import format_address
from overlay_core.proto.netconf import format_nwid
from overlay_core.proto.netfields import ValidationError, ascii_int

from . import schema
from .http import (
    ApiProblem,
    ControlService,
    TapCountersLike,
    path_address,
    path_nwid,
    read_body,
    refuse_body,
    service,
)
from .paths import PathsCache
from .validate import (
    check_flag,
    check_known_keys,
    check_object,
    settings_from_json,
)

NETWORK_FIELDS = (
    "name",
    "private",
    "pools",
    "routes",
    "mtu",
    "mss",
    "broadcast",
    "multicast_limit",
    "rules",
    "presets",
)
LIST_FIELDS = ("pools", "routes", "rules", "presets")
MAX_PATHS_LIMIT = 1_000_000  # pairs; 1,000 members make 499,500
MEMBER_FIELDS = ("authorized", "name", "ips", "active_bridge")
MEMBER_REQUEST_FIELDS = (*MEMBER_FIELDS, "force")  # force: see the module docstring


PATHS_CACHE_KEY = web.AppKey("paths_cache", PathsCache)


def add_routes(app: web.Application) -> None:
    app[PATHS_CACHE_KEY] = PathsCache()
    r = app.router
    r.add_get("/networks", get_networks)
    r.add_get("/networks/{nwid}", get_network)
    r.add_post("/networks/{nwid}", post_network)
    r.add_patch("/networks/{nwid}", patch_network)
    r.add_delete("/networks/{nwid}", delete_network)
    r.add_get("/controller/networks", get_controller_networks)
    r.add_post("/controller/networks", post_controller_network)
    r.add_get("/controller/pools", get_pools)
    r.add_get("/controller/networks/{nwid}", get_controller_network)
    r.add_patch("/controller/networks/{nwid}", patch_controller_network)
    r.add_delete("/controller/networks/{nwid}", delete_controller_network)
    r.add_get("/controller/networks/{nwid}/members", get_members)
    r.add_get("/controller/networks/{nwid}/paths", get_paths)
    r.add_get("/controller/networks/{nwid}/members/{address}", get_member)
    r.add_patch("/controller/networks/{nwid}/members/{address}", patch_member)
    r.add_delete("/controller/networks/{nwid}/members/{address}", delete_member)


def port_counters_json(counters: TapCountersLike) -> schema.PortCountersJson:
    return {
        "frames_read": counters.frames_read,
        "bytes_read": counters.bytes_read,
        "frames_written": counters.frames_written,
        "bytes_written": counters.bytes_written,
        "write_drops": counters.write_drops,
    }


# --------------------------------------------------------------------------- member side


def _network_json(svc: ControlService, network: NetworkStatus) -> schema.NetworkJson:
    nwid = int(network.nwid, 16)
    counters = svc.port_counters(nwid)
    ports = None if counters is None else port_counters_json(counters)
    return schema.network_to_json(network, svc.port_device(nwid), ports)


def _not_joined(nwid: int) -> ApiProblem:
    return ApiProblem(404, "not_joined", f"this node has not joined network {format_nwid(nwid)}")


def _joined(svc: ControlService, nwid: int) -> NetworkStatus:
    network = svc.network(nwid)
    if network is None:
        raise _not_joined(nwid)
    return network


async def get_networks(request: web.Request) -> web.Response:
    svc = service(request)
    return web.json_response([_network_json(svc, n) for n in svc.networks()])


async def get_network(request: web.Request) -> web.Response:
    svc = service(request)
    return web.json_response(_network_json(svc, _joined(svc, path_nwid(request))))


async def post_network(request: web.Request) -> web.Response:
    """Join. A body (partial settings) applies on top of the current or default settings."""
    svc = service(request)
    nwid = path_nwid(request)
    body = check_object(await read_body(request))
    settings = settings_from_json(body, svc.network_settings(nwid)) if body else None
    created = svc.join(nwid, settings)
    return web.json_response(_network_json(svc, _joined(svc, nwid)), status=201 if created else 200)


async def patch_network(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
    current = svc.network_settings(nwid)
    if current is None:
        raise _not_joined(nwid)
    settings = settings_from_json(await read_body(request), current)
    svc.set_network_settings(nwid, settings)
    return web.json_response(_network_json(svc, _joined(svc, nwid)))


async def delete_network(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
    await refuse_body(request)
    if not svc.leave(nwid):
        raise _not_joined(nwid)
    body: schema.LeftJson = {"nwid": format_nwid(nwid), "left": True}
    return web.json_response(body)


# --------------------------------------------------------------------------- controller side


def _counts(members: list[MemberRecord]) -> schema.MemberCountsJson:
    states = Counter(m.state for m in members)
    return {
        "authorized": states["authorized"],
        "pending": states["pending"],
        "deauthorized": states["deauthorized"],
    }


def _controller_network_json(
    svc: ControlService, record: NetworkRecord, others: list[NetworkRecord] | None = None
) -> schema.ControllerNetworkJson:
    """`others`: every hosted network, when the caller has listed them already."""
    data = record.to_json()
    data["members"] = _counts(svc.controller.list_members(record.nwid))
    data["warnings"] = svc.controller.warnings(record, others)
    return cast(schema.ControllerNetworkJson, data)


def _member_json(record: MemberRecord) -> schema.MemberJson:
    return cast(schema.MemberJson, record.to_json())


def _hosted(svc: ControlService, nwid: int) -> NetworkRecord:
    record = svc.controller.get_network(nwid)
    if record is None:
        text = format_nwid(nwid)
        raise ApiProblem(404, "unknown_network", f"this node's controller has no network {text}")
    return record


def _member(svc: ControlService, nwid: int, address: int) -> MemberRecord:
    _hosted(svc, nwid)
    record = svc.controller.get_member(nwid, address)
    if record is None:
        reason = f"no member {format_address(address)} in network {format_nwid(nwid)}"
        raise ApiProblem(404, "unknown_member", reason)
    return record


def _network_changes(body: object, *, creating: bool) -> dict[str, Any]:
    """Keyword arguments for create_network / update_network; the controller checks values,
    this only fixes the shapes it cannot (a number MSS, a string where a list belongs)."""
    data = check_object(body)
    check_known_keys(data, (*NETWORK_FIELDS, "number") if creating else NETWORK_FIELDS)
    changes = dict(data)
    for key in LIST_FIELDS:
        if key in changes and not isinstance(changes[key], list):
            raise ValidationError(key, "must be a list")
    mss = changes.get("mss")
    if isinstance(mss, int) and not isinstance(mss, bool):
        changes["mss"] = f"fixed:{mss}"
    number = changes.get("number")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
        raise ValidationError("number", "must be a whole number")
    return changes


async def get_controller_networks(request: web.Request) -> web.Response:
    svc = service(request)
    records = svc.controller.list_networks()
    return web.json_response([_controller_network_json(svc, r, records) for r in records])


async def get_pools(request: web.Request) -> web.Response:
    """What a create dialog needs to pick a pool: a free one, and what the others use."""
    svc = service(request)
    records = svc.controller.list_networks()
    used: list[schema.UsedRangeJson] = [
        {"nwid": format_nwid(s.nwid), "name": s.name, "kind": s.kind, "range": s.text}
        for record in records
        for s in spans(record)
    ]
    body: schema.PoolsJson = {"suggested": svc.controller.suggest_pool(), "used": used}
    return web.json_response(body)


def _network_words(record: NetworkRecord) -> str:
    nwid = format_nwid(record.nwid)
    return f"{record.name} ({nwid})" if record.name else nwid


def _publish_network(svc: ControlService, what: str, record: NetworkRecord) -> None:
    nwid = format_nwid(record.nwid)
    svc.events.publish("controller", f"{what} {_network_words(record)}", nwid=nwid)


async def post_controller_network(request: web.Request) -> web.Response:
    svc = service(request)
    changes = _network_changes(await read_body(request), creating=True)
    if "name" not in changes:
        raise ValidationError("name", "is required")
    name = changes.pop("name")
    record = svc.controller.create_network(name, now=svc.now(), **changes)
    _publish_network(svc, "created network", record)
    body = _controller_network_json(svc, record)
    if "pools" not in changes and not record.pools:
        # Asked for the default pool and every suggested one is taken: say so, or the
        # network's members would silently get no address.
        body["warnings"].append(
            "no free pool among 10.147.17.0/24 ... 10.147.255.0/24: give one with --pool, "
            "or assign addresses by hand (ztui member NWID ADDR --ip IP)"
        )
    return web.json_response(body, status=201)


async def get_controller_network(request: web.Request) -> web.Response:
    svc = service(request)
    record = _hosted(svc, path_nwid(request))
    return web.json_response(_controller_network_json(svc, record))


async def patch_controller_network(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
    _hosted(svc, nwid)
    changes = _network_changes(await read_body(request), creating=False)
    record = svc.controller.update_network(nwid, now=svc.now(), **changes)
    if changes:
        _publish_network(svc, f"changed {', '.join(sorted(changes))} of", record)
    return web.json_response(_controller_network_json(svc, record))


async def delete_controller_network(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
    await refuse_body(request)
    record = _hosted(svc, nwid)
    svc.controller.delete_network(nwid)
    _publish_network(svc, "deleted network", record)
    body: schema.DeletedJson = {"deleted": format_nwid(nwid)}
    return web.json_response(body)


async def get_members(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
    _hosted(svc, nwid)
    return web.json_response([_member_json(m) for m in svc.controller.list_members(nwid)])


async def get_paths(request: web.Request) -> web.Response:
    """Every pair of authorized members with both sides' path reports (api/pathview.py);
    `?limit=N` keeps the N worst pairs (the counts cover all)."""
    svc = service(request)
    nwid = path_nwid(request)
    _hosted(svc, nwid)
    limit = None
    if "limit" in request.query:
        limit = ascii_int(request.query["limit"])
        if limit is None or not 0 <= limit <= MAX_PATHS_LIMIT:
            raise ApiProblem(400, "validation", f"limit: must be 0-{MAX_PATHS_LIMIT}", "limit")
    cache = request.app[PATHS_CACHE_KEY]
    view = await cache.view(nwid, limit, lambda: svc.controller.path_reports(nwid), svc.now())
    return web.json_response(view)


async def get_member(request: web.Request) -> web.Response:
    svc = service(request)
    record = _member(svc, path_nwid(request), path_address(request))
    return web.json_response(_member_json(record))


async def patch_member(request: web.Request) -> web.Response:
    """Name, IPs and bridging first, then (de)authorization: IPs given together with an
    approval are the member's, instead of one picked from the pools. Naming a node that
    never asked creates its row (pending); approving one needs force (module docstring)."""
    svc = service(request)
    nwid, address = path_nwid(request), path_address(request)
    network = _hosted(svc, nwid)
    data = check_object(await read_body(request))
    check_known_keys(data, MEMBER_REQUEST_FIELDS)
    authorized = check_flag(data["authorized"], "authorized") if "authorized" in data else None
    force = check_flag(data["force"], "force") if "force" in data else False
    if "force" in data and authorized is not True:
        raise ValidationError("force", 'only goes with "authorized": true')
    if "ips" in data and not isinstance(data["ips"], list):
        raise ValidationError("ips", "must be a list of addresses")
    controller, now = svc.controller, svc.now()
    before = controller.get_member(nwid, address)
    if authorized is True and not force:
        # Before any change: a refused approval must not leave a half-made member behind.
        _refuse_unasked(nwid, address, before)
    if any(key in data for key in ("name", "ips", "active_bridge")):
        controller.set_member(
            nwid,
            address,
            name=data.get("name"),
            ips=data.get("ips"),
            active_bridge=data.get("active_bridge"),
            now=now,
        )
    if authorized is True:
        try:
            controller.authorize(nwid, address, now, force=force)
        except NotAskedError as exc:  # asked state changed since the check above? never mind
            raise _not_asked(exc) from None
    elif authorized is False:
        _member(svc, nwid, address)
        controller.deauthorize(nwid, address, now)
    after = _member(svc, nwid, address)
    _publish_member(svc, network, before, after)
    return web.json_response(_member_json(after))


def _refuse_unasked(nwid: int, address: int, before: MemberRecord | None) -> None:
    if before is None or not (before.authorized or before.has_asked):
        raise _not_asked(NotAskedError(nwid, address))


def _not_asked(exc: NotAskedError) -> ApiProblem:
    nwid, text = format_nwid(exc.nwid), format_address(exc.address)
    reason = (
        f"{text} has not asked to join {nwid} yet: run `ztui join {nwid}` on it first, or "
        f'pre-authorize it with `ztui approve --force` (API: "force": true)'
    )
    return ApiProblem(409, "not_asked", reason, "authorized")


def _member_changes(before: MemberRecord | None, after: MemberRecord) -> list[str]:
    """What a PATCH changed, in words: "approved: 10.147.17.3", "renamed to 'phone'"."""
    words: list[str] = []
    was_authorized = before is not None and before.authorized
    approved = after.authorized and not was_authorized
    if approved and not after.has_asked and not after.ips:
        words.append("pre-authorized: it gets an address when it first asks")
    elif approved:
        words.append(f"approved: {', '.join(after.ips) or 'no IP assigned'}")
    elif not after.authorized and was_authorized:
        words.append("deauthorized")
    elif before is not None and before.state == "pending" and after.state == "deauthorized":
        words.append("refused")
    if after.name != (before.name if before is not None else ""):
        words.append(f"renamed to {after.name!r}")
    if not approved and after.ips != (before.ips if before is not None else ()):
        words.append(f"IPs {', '.join(after.ips) or 'none'}")
    if after.active_bridge != (before.active_bridge if before is not None else False):
        words.append("now a bridge" if after.active_bridge else "no longer a bridge")
    if before is None and not words:
        words.append("added, pending")
    return words


def _publish_member(
    svc: ControlService, network: NetworkRecord, before: MemberRecord | None, after: MemberRecord
) -> None:
    words = _member_changes(before, after)
    if words:
        text = format_address(after.address)
        message = f"{text} in {_network_words(network)}: {'; '.join(words)}"
        svc.events.publish("member", message, nwid=format_nwid(network.nwid), address=text)


async def delete_member(request: web.Request) -> web.Response:
    svc = service(request)
    nwid, address = path_nwid(request), path_address(request)
    await refuse_body(request)
    _member(svc, nwid, address)
    svc.controller.delete_member(nwid, address)
    text = format_address(address)
    network = _hosted(svc, nwid)
    message = f"{text} in {_network_words(network)}: deleted"
    svc.events.publish("member", message, nwid=format_nwid(nwid), address=text)
    body: schema.DeletedJson = {"deleted": f"{format_nwid(nwid)}/{format_address(address)}"}
    return web.json_response(body)
