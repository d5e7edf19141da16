"""The routes of FakeNode, mirroring overlay_core/api/server.py and routes_networks.py:
the same paths, methods, JSON shapes, status codes and error words, against in-memory state.

Validation follows overlay_core/api/validate.py and the controller's rules closely enough
that a form in the console meets the same "mtu: must be 1280-9000" it would meet for real;
it is not a second controller (pool addresses are handed out in order, not hashed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from overlay_core.api.schema import PeerJson, RelayReasonJson

from ..fake_data import member, netcheck, network, relay_reason
from . import metrics
from .controller import (
    assign_ip,
    delete_controller_network,
    delete_member,
    get_controller_network,
    get_controller_networks,
    get_member,
    get_members,
    get_paths,
    get_pools,
    patch_controller_network,
    patch_member,
    post_controller_network,
)
from .http import (
    Problem,
    address_arg,
    body_of,
    flag,
    invalid,
    known_keys,
    nwid_arg,
    reply,
    whole,
)

if TYPE_CHECKING:
    from ..fake import FakeNode

Handler = Callable[["FakeNode", httpx.Request, dict[str, str]], httpx.Response]
SETTING_FLAGS = ("allow_managed", "allow_global", "allow_default")
SETTING_KEYS = (*SETTING_FLAGS, "mtu", "mss")
MSS_RULE = 'must be "off", "auto" or a number 536-8960'


# --------------------------------------------------------------------------- the node


def get_status(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    node.state.status["peer_count"] = len(node.state.peers)
    return reply(node.state.status)


def get_peers(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(list(node.state.peers.values()))


def get_peer(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    address = address_arg(args)
    if address not in node.state.peers:
        raise Problem(404, "unknown_peer", f"no peer {address} is known to this node")
    return reply(node.state.peers[address])


def post_echo(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    address = address_arg(args)
    data = body_of(request) if request.content.strip() else {}
    timeout_s = data.get("timeout_s", 2.0)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
        raise Problem(400, "bad_request", "timeout_s must be a number of seconds")
    if not 0 < timeout_s <= 30:
        raise Problem(400, "bad_request", "timeout_s must be in (0, 30]")
    if address == node.address:
        raise Problem(400, "bad_request", "cannot echo this node itself")
    peer = node.state.peers.get(address)
    roots = [p for p in node.state.peers.values() if p["role"] == "ROOT" and p["link"] != "NONE"]
    if peer is None:
        root = roots[0]["address"] if roots else "(none reachable)"
        raise Problem(404, "unknown_address", f"no node {address} is known to root {root}")
    if peer["link"] == "NONE" or (peer["link"] == "RELAY" and not roots):
        raise Problem(504, "timeout", f"no echo reply from {address} within {timeout_s:g} s")
    if peer["link"] == "RELAY":
        via = roots[0]
        rtt = 2 * (via["latency"]["smoothed_ms"] or 20.0) + 12.5
        endpoint, relay = via["preferred_path"] or "", via["address"]
    else:
        rtt = peer["latency"]["last_ms"] or peer["latency"]["smoothed_ms"] or 1.0
        endpoint, relay = peer["preferred_path"] or "", None
    return reply(
        {"peer": address, "rtt_ms": rtt, "endpoint": endpoint, "link": peer["link"], "relay": relay}
    )


def post_retry_direct(
    node: FakeNode, request: httpx.Request, args: dict[str, str]
) -> httpx.Response:
    """The daemon punches again; nothing visible changes until a path answers."""
    address = address_arg(args)
    if address not in node.state.peers:
        raise Problem(404, "unknown_peer", f"no peer {address} is known to this node")
    return reply(node.state.peers[address], 202)


def post_probe_mtu(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    """Live direct paths search their MTU again, until the next tick()."""
    address = address_arg(args)
    if address not in node.state.peers:
        raise Problem(404, "unknown_peer", f"no peer {address} is known to this node")
    peer = node.state.peers[address]
    for item in peer["paths"]:
        if item["alive"] and item["transport"] == "udp":
            item["mtu_searching"] = True
    return reply(peer, 202)


def get_netcheck(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(netcheck(node.state))


def get_metrics(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    text = metrics.render(node.state)
    return httpx.Response(200, text=text, headers={"content-type": "text/plain; charset=utf-8"})


def get_events(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    text = request.url.params.get("since", request.headers.get("last-event-id"))
    if text is None or text == "":
        return node.event_stream(None)
    if not text.isascii() or not text.isdigit():
        raise Problem(400, "bad_request", "since must be an event id (a whole number >= 0)")
    return node.event_stream(int(text))


def relay_reason_for(
    node: FakeNode, peer: PeerJson, old_link: str, old_path: str | None
) -> RelayReasonJson | None:
    """What the daemon would say about a peer that just moved to its current link."""
    if peer["link"] in ("DIRECT", "NONE") or peer["role"] == "ROOT":
        return None
    if old_link == "DIRECT" and old_path:
        summary = (
            f"the direct path to {old_path} stopped answering 0 s ago; probing it again every 2 s"
        )
        return relay_reason(summary, {old_path: "the peer's own list"}, 1, 0, code="direct_lost")
    if peer["relay_reason"] is not None:
        return peer["relay_reason"]
    summary = (
        "no direct endpoint learned yet: the roots have not introduced this peer "
        "(they do once traffic flows through them) and it advertised no address we can reach"
    )
    return relay_reason(summary, {}, 0, 0, code="not_introduced")


# --------------------------------------------------------------------------- joined networks


def joined(node: FakeNode, nwid: str) -> Any:
    if nwid not in node.state.networks:
        raise Problem(404, "not_joined", f"this node has not joined network {nwid}")
    return node.state.networks[nwid]


def apply_settings(node: FakeNode, nwid: str, data: Mapping[str, Any]) -> None:
    """Check a (partial) settings body like validate.settings_from_json, then apply it."""
    known_keys(data, SETTING_KEYS)
    changes: dict[str, Any] = {key: flag(data, key) for key in SETTING_FLAGS if key in data}
    if "mtu" in data:
        if data["mtu"] is not None and not whole(data["mtu"], 1280, 9000):
            raise invalid("mtu", "must be 1280-9000")
        changes["mtu"] = data["mtu"]
    if "mss" in data:
        changes["mss"] = None if data["mss"] is None else check_member_mss(data["mss"])
    current = node.state.networks[nwid]
    current["settings"].update(changes)  # type: ignore[typeddict-item]
    if nwid in node.state.hosted and current["state"] == "OK":
        node.own_network_changed(nwid)
    else:
        current["mtu"] = current["settings"]["mtu"] or 2800
        current["mss"] = current["settings"]["mss"] or "off"


def check_member_mss(value: object) -> str:
    if value in ("off", "auto"):
        return str(value)
    number: object = value
    if isinstance(value, str):
        text = value.removeprefix("fixed:")
        number = int(text) if text.isascii() and text.isdigit() else None
    if not whole(number, 536, 8960):
        raise invalid("mss", MSS_RULE)
    return f"fixed:{number}"


def get_networks(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(list(node.state.networks.values()))


def get_network(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(joined(node, nwid_arg(args)))


def post_network(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    nwid = nwid_arg(args)
    data = body_of(request)
    new = nwid not in node.state.networks
    if new:
        if data:  # checked before anything changes, like the daemon
            known_keys(data, SETTING_KEYS)
        node.state.networks[nwid] = network(nwid, node.address)
    if data:
        try:
            apply_settings(node, nwid, data)
        except Problem:
            if new:
                del node.state.networks[nwid]
            raise
    if new:
        node.push_event("network", f"joining {nwid}", nwid=nwid)
    return reply(node.state.networks[nwid], 201 if new else 200)


def patch_network(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    nwid = nwid_arg(args)
    joined(node, nwid)
    apply_settings(node, nwid, body_of(request))
    return reply(node.state.networks[nwid])


def delete_network(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    nwid = nwid_arg(args)
    joined(node, nwid)
    del node.state.networks[nwid]
    node.push_event("network", f"left {nwid}", nwid=nwid)
    return reply({"nwid": nwid, "left": True})


def resolve_join(node: FakeNode, nwid: str) -> None:
    """A join's first answer: from this node's own controller, which lets its own node in
    at once (unless an admin deauthorized it), or ACCESS_DENIED."""
    if nwid in node.state.hosted:
        members = node.state.members.setdefault(nwid, {})
        me = members.get(node.address)
        first = me is None or me["last_seen"] is None  # pre-authorized: its address now
        admitted = me is None or me["state"] == "pending"
        if me is None:
            me = members[node.address] = member(nwid, node.address, node.now, state="authorized")
        elif admitted:
            me["state"], me["authorized"], me["last_authorized"] = "authorized", True, node.now
        me["last_seen"] = node.now
        if me["authorized"] and (first or admitted) and not me["ips"]:
            assign_ip(node, nwid, me)
        if admitted:  # as ControllerLink says it
            record = node.state.hosted[nwid]
            ips = ", ".join(me["ips"]) or "no IP assigned"
            message = (
                f"{node.address} in {record['name']} ({nwid}): admitted, the controller's "
                f"own node: {ips}"
            )
            node.push_event("member", message, nwid=nwid, address=node.address)
        node.own_network_changed(nwid)
        return
    node.state.networks[nwid]["state"] = "ACCESS_DENIED"
    message = f"{nwid}: REQUESTING_CONFIGURATION -> ACCESS_DENIED"
    node.push_event("network", message, nwid=nwid)


# --------------------------------------------------------------------------- routing

ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/status", get_status),
    ("GET", "/peers", get_peers),
    ("GET", "/peers/{address}", get_peer),
    ("POST", "/peers/{address}/echo", post_echo),
    ("POST", "/peers/{address}/retry-direct", post_retry_direct),
    ("POST", "/peers/{address}/probe-mtu", post_probe_mtu),
    ("GET", "/netcheck", get_netcheck),
    ("GET", "/metrics", get_metrics),
    ("GET", "/events", get_events),
    ("GET", "/networks", get_networks),
    ("GET", "/networks/{nwid}", get_network),
    ("POST", "/networks/{nwid}", post_network),
    ("PATCH", "/networks/{nwid}", patch_network),
    ("DELETE", "/networks/{nwid}", delete_network),
    ("GET", "/controller/networks", get_controller_networks),
    ("POST", "/controller/networks", post_controller_network),
    ("GET", "/controller/pools", get_pools),
    ("GET", "/controller/networks/{nwid}", get_controller_network),
    ("PATCH", "/controller/networks/{nwid}", patch_controller_network),
    ("DELETE", "/controller/networks/{nwid}", delete_controller_network),
    ("GET", "/controller/networks/{nwid}/members", get_members),
    ("GET", "/controller/networks/{nwid}/paths", get_paths),
    ("GET", "/controller/networks/{nwid}/members/{address}", get_member),
    ("PATCH", "/controller/networks/{nwid}/members/{address}", patch_member),
    ("DELETE", "/controller/networks/{nwid}/members/{address}", delete_member),
]
_COMPILED = [
    (method, re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)), handler)
    for method, pattern, handler in ROUTES
]


def dispatch(node: FakeNode, request: httpx.Request) -> httpx.Response:
    path, allowed = request.url.path, set[str]()
    try:
        for method, pattern, handler in _COMPILED:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            allowed.update((method, "HEAD") if method == "GET" else (method,))
            if method == request.method:
                return handler(node, request, match.groupdict())
        if allowed:
            reason = f"{request.method} is not allowed on {path}; use {', '.join(sorted(allowed))}"
            raise Problem(405, "method_not_allowed", reason)
        raise Problem(404, "not_found", f"no such resource: {request.method} {path}")
    except Problem as problem:
        body = {"error": problem.error, "reason": problem.reason, "field": problem.field}
        return reply(body, problem.status)


__all__ = ["ROUTES", "dispatch", "relay_reason_for", "resolve_join"]
