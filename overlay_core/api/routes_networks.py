"""API routes for virtual networks: those this node has joined, and those its controller hosts.

Member side: GET /networks, and GET, POST (join), PATCH (settings), DELETE (leave)
/networks/{nwid}. Controller side (networks whose id starts with this node's address):
/controller/networks, /controller/pools, and a hosted network's /members and /paths. The
table of every route, with what each answers, is schema/routes.py.

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
from typing import cast

from aiohttp import web

from overlay_core.controller import MemberRecord, NetworkRecord, NotAskedError
from overlay_core.controller.overlap import spans
from overlay_core.proto.effects import NetworkStatus
from overlay_core.proto.identity import format_address
from overlay_core.proto.netconf import format_nwid

from . import schema
from .http import (
    ApiProblem,
    ControlService,
    TapCountersLike,
    handles,
    path_address,
    path_nwid,
    read_body,
    service,
)
from .paths import PathsCache
from .schema import FieldError, check_flag, check_known_keys, check_object
from .validate import settings_from_json

PATHS_CACHE_KEY = web.AppKey("paths_cache", PathsCache)


def setup(app: web.Application) -> None:
    app[PATHS_CACHE_KEY] = PathsCache()


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
    return schema.not_joined(format_nwid(nwid))


def _joined(svc: ControlService, nwid: int) -> NetworkStatus:
    network = svc.network(nwid)
    if network is None:
        raise _not_joined(nwid)
    return network


@handles("networks")
async def get_networks(request: web.Request) -> web.Response:
    svc = service(request)
    return web.json_response([_network_json(svc, n) for n in svc.networks()])


@handles("network")
async def get_network(request: web.Request) -> web.Response:
    svc = service(request)
    return web.json_response(_network_json(svc, _joined(svc, path_nwid(request))))


@handles("join")
async def post_network(request: web.Request) -> web.Response:
    """Join. A body (partial settings) applies on top of the current or default settings."""
    svc = service(request)
    nwid = path_nwid(request)
    body = check_object(await read_body(request))
    settings = settings_from_json(body, svc.network_settings(nwid)) if body else None
    created = svc.join(nwid, settings)
    return web.json_response(_network_json(svc, _joined(svc, nwid)), status=201 if created else 200)


@handles("set_network")
async def patch_network(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
    current = svc.network_settings(nwid)
    if current is None:
        raise _not_joined(nwid)
    settings = settings_from_json(await read_body(request), current)
    svc.set_network_settings(nwid, settings)
    return web.json_response(_network_json(svc, _joined(svc, nwid)))


@handles("leave")
async def delete_network(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
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
        raise schema.unknown_network(format_nwid(nwid))
    return record


def _member(svc: ControlService, nwid: int, address: int) -> MemberRecord:
    _hosted(svc, nwid)
    record = svc.controller.get_member(nwid, address)
    if record is None:
        raise schema.unknown_member(format_address(address), format_nwid(nwid))
    return record


@handles("controller_networks")
async def get_controller_networks(request: web.Request) -> web.Response:
    svc = service(request)
    records = svc.controller.list_networks()
    return web.json_response([_controller_network_json(svc, r, records) for r in records])


@handles("pools")
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
    return schema.network_words(record.name, format_nwid(record.nwid))


def _publish_network(svc: ControlService, what: str, record: NetworkRecord) -> None:
    nwid = format_nwid(record.nwid)
    message = schema.controller_message(what, record.name, nwid)
    svc.events.publish("controller", message, nwid=nwid)


@handles("create_network")
async def post_controller_network(request: web.Request) -> web.Response:
    svc = service(request)
    changes = schema.network_changes(await read_body(request), creating=True)
    if "name" not in changes:
        raise FieldError("name", "is required")
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


@handles("controller_network")
async def get_controller_network(request: web.Request) -> web.Response:
    svc = service(request)
    record = _hosted(svc, path_nwid(request))
    return web.json_response(_controller_network_json(svc, record))


@handles("update_network")
async def patch_controller_network(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
    _hosted(svc, nwid)
    changes = schema.network_changes(await read_body(request), creating=False)
    record = svc.controller.update_network(nwid, now=svc.now(), **changes)
    if changes:
        _publish_network(svc, f"changed {', '.join(sorted(changes))} of", record)
    return web.json_response(_controller_network_json(svc, record))


@handles("delete_network")
async def delete_controller_network(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
    record = _hosted(svc, nwid)
    svc.controller.delete_network(nwid)
    _publish_network(svc, "deleted network", record)
    body: schema.DeletedJson = {"deleted": format_nwid(nwid)}
    return web.json_response(body)


@handles("members")
async def get_members(request: web.Request) -> web.Response:
    svc = service(request)
    nwid = path_nwid(request)
    _hosted(svc, nwid)
    return web.json_response([_member_json(m) for m in svc.controller.list_members(nwid)])


@handles("paths")
async def get_paths(request: web.Request) -> web.Response:
    """Every pair of authorized members with both sides' path reports (api/pathview.py);
    `?limit=N` keeps the N worst pairs (the counts cover all)."""
    svc = service(request)
    nwid = path_nwid(request)
    _hosted(svc, nwid)
    limit = schema.paths_limit(request.query.get("limit"))
    cache = request.app[PATHS_CACHE_KEY]
    view = await cache.view(nwid, limit, lambda: svc.controller.path_reports(nwid), svc.now())
    return web.json_response(view)


@handles("member")
async def get_member(request: web.Request) -> web.Response:
    svc = service(request)
    record = _member(svc, path_nwid(request), path_address(request))
    return web.json_response(_member_json(record))


@handles("update_member")
async def patch_member(request: web.Request) -> web.Response:
    """Name, IPs and bridging first, then (de)authorization: IPs given together with an
    approval are the member's, instead of one picked from the pools. Naming a node that
    never asked creates its row (pending); approving one needs force (module docstring)."""
    svc = service(request)
    nwid, address = path_nwid(request), path_address(request)
    network = _hosted(svc, nwid)
    data = check_object(await read_body(request))
    check_known_keys(data, schema.MEMBER_REQUEST_FIELDS)
    authorized = check_flag(data["authorized"], "authorized") if "authorized" in data else None
    force = check_flag(data["force"], "force") if "force" in data else False
    if "force" in data and authorized is not True:
        raise FieldError("force", 'only goes with "authorized": true')
    if "ips" in data and not isinstance(data["ips"], list):
        raise FieldError("ips", "must be a list of addresses")
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
    return schema.not_asked(format_address(exc.address), format_nwid(exc.nwid))


def _publish_member(
    svc: ControlService, network: NetworkRecord, before: MemberRecord | None, after: MemberRecord
) -> None:
    words = schema.member_changes(
        None if before is None else _member_json(before), _member_json(after)
    )
    if words:
        text = format_address(after.address)
        message = schema.member_message(text, _network_words(network), words)
        svc.events.publish("member", message, nwid=format_nwid(network.nwid), address=text)


@handles("delete_member")
async def delete_member(request: web.Request) -> web.Response:
    svc = service(request)
    nwid, address = path_nwid(request), path_address(request)
    _member(svc, nwid, address)
    svc.controller.delete_member(nwid, address)
    text = format_address(address)
    network = _hosted(svc, nwid)
    message = schema.member_message(text, _network_words(network), ["deleted"])
    svc.events.publish("member", message, nwid=format_nwid(nwid), address=text)
    body: schema.DeletedJson = {"deleted": f"{format_nwid(nwid)}/{format_address(address)}"}
    return web.json_response(body)
