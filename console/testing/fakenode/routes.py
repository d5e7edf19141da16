"""The routes of FakeNode: the node, peer, event and joined-network handlers, and the routing.

The routing is built from the daemon's own route table (overlay_core.api.schema.ROUTES):
every name there has a handler here, in controller.py or in roots.py, checked at import,
and nothing the table does not list is answered but with the daemon's 404 or 405. The
checks and limits are the schema's too, so a form in the console meets the same
"mtu: must be 1280-9000" it would meet for real; tests/daemon/test_api_parity.py replays
the same requests against this and a real daemon. It is not a second daemon: pool
addresses are handed out in order, not hashed, and roots are checked for shape only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from overlay_core.api.schema import (
    ROUTES,
    ApiProblem,
    FieldError,
    Link,
    NetworkState,
    PeerJson,
    RelayReasonJson,
    allowed_methods,
    check_path_params,
    decode_body,
    echo_timeout,
    error_json,
    event_since,
    member_message,
    metrics_text,
    network_words,
    not_allowed_reason,
    not_found_reason,
    not_joined,
    refuse_body,
    settings_changes,
    unknown_peer,
)

from ..fake_data import direct_lost, member, netcheck, network, network_change, relay_reason
from . import controller, roots  # noqa: F401  (their @handles bind the rest of the routes)
from .controller import assign_ip
from .http import address_arg, body_of, handlers, handles, nwid_arg, raw_body, reply

if TYPE_CHECKING:
    from ..fake import FakeNode


# --------------------------------------------------------------------------- the node


@handles("status")
def get_status(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    node.state.status["peer_count"] = len(node.state.peers)
    return reply(node.state.status)


@handles("peers")
def get_peers(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(list(node.state.peers.values()))


def known_peer(node: FakeNode, args: dict[str, str]) -> PeerJson:
    address = address_arg(args)
    if address not in node.state.peers:
        raise unknown_peer(address)
    return node.state.peers[address]


@handles("peer")
def get_peer(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(known_peer(node, args))


@handles("echo")
def post_echo(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    address = address_arg(args)
    timeout_s = echo_timeout(decode_body(raw_body(request)))
    if address == node.address:
        raise ApiProblem(400, "bad_request", "cannot echo this node itself")
    peer = node.state.peers.get(address)
    roots_up = [
        p for p in node.state.peers.values() if p["role"] == "ROOT" and p["link"] != Link.NONE
    ]
    if peer is None:
        root = roots_up[0]["address"] if roots_up else "(none reachable)"
        raise ApiProblem(404, "unknown_address", f"no node {address} is known to root {root}")
    if peer["link"] == Link.NONE or (peer["link"] == Link.RELAY and not roots_up):
        raise ApiProblem(504, "timeout", f"no echo reply from {address} within {timeout_s:g} s")
    if peer["link"] == Link.RELAY:
        via = roots_up[0]
        rtt = 2 * (via["latency"]["smoothed_ms"] or 20.0) + 12.5
        endpoint, relay = via["preferred_path"] or "", via["address"]
    else:
        rtt = peer["latency"]["last_ms"] or peer["latency"]["smoothed_ms"] or 1.0
        endpoint, relay = peer["preferred_path"] or "", None
    return reply(
        {"peer": address, "rtt_ms": rtt, "endpoint": endpoint, "link": peer["link"], "relay": relay}
    )


@handles("retry_direct")
def post_retry_direct(
    node: FakeNode, request: httpx.Request, args: dict[str, str]
) -> httpx.Response:
    """The daemon punches again; nothing visible changes until a path answers."""
    return reply(known_peer(node, args), 202)


@handles("probe_mtu")
def post_probe_mtu(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    """Live direct paths search their MTU again, until the next tick()."""
    peer = known_peer(node, args)
    for item in peer["paths"]:
        if item["alive"] and item["transport"] == "udp":
            item["mtu_searching"] = True
    return reply(peer, 202)


@handles("netcheck")
def get_netcheck(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(netcheck(node.state))


@handles("metrics")
def get_metrics(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    """The daemon's families, rendered by the daemon's own writer from the fake's state."""
    state = node.state
    networks = list(state.networks.values())
    ports = {n["nwid"]: n["port_counters"] for n in networks if n["port_counters"] is not None}
    text = metrics_text(state.status, list(state.peers.values()), networks, {}, ports)
    return httpx.Response(200, text=text, headers={"content-type": "text/plain; charset=utf-8"})


@handles("events")
def get_events(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    text = request.url.params.get("since", request.headers.get("last-event-id"))
    return node.event_stream(event_since(text))


def relay_reason_for(
    node: FakeNode, peer: PeerJson, old_link: str, old_path: str | None
) -> RelayReasonJson | None:
    """What the daemon would say about a peer that just moved to its current link."""
    if peer["link"] in (Link.DIRECT, Link.NONE) or peer["role"] == "ROOT":
        return None
    if old_link == Link.DIRECT and old_path:
        summary = direct_lost(old_path, 0)
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
        raise not_joined(nwid)
    return node.state.networks[nwid]


def apply_settings(node: FakeNode, nwid: str, changes: dict[str, Any]) -> None:
    """Checked settings (schema.settings_changes) take effect, as a new config would."""
    current = node.state.networks[nwid]
    current["settings"].update(changes)  # type: ignore[typeddict-item]
    if nwid in node.state.hosted and current["state"] == NetworkState.OK:
        node.own_network_changed(nwid)
    else:
        current["mtu"] = current["settings"]["mtu"] or 2800
        current["mss"] = current["settings"]["mss"] or "off"


@handles("networks")
def get_networks(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(list(node.state.networks.values()))


@handles("network")
def get_network(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(joined(node, nwid_arg(args)))


@handles("join")
def post_network(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    """Join; a body (partial settings) is checked before anything changes, like the daemon."""
    nwid = nwid_arg(args)
    data = body_of(request)
    changes = settings_changes(data) if data else {}
    new = nwid not in node.state.networks
    if new:
        node.state.networks[nwid] = network(nwid, node.address)
    if changes:
        apply_settings(node, nwid, changes)
    if new:
        node.push_event("network", f"joining {nwid}", nwid=nwid)
    return reply(node.state.networks[nwid], 201 if new else 200)


@handles("set_network")
def patch_network(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    nwid = nwid_arg(args)
    joined(node, nwid)
    apply_settings(node, nwid, settings_changes(body_of(request)))
    return reply(node.state.networks[nwid])


@handles("leave")
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
            ips = ", ".join(me["ips"]) or "no IP assigned"
            words = network_words(node.state.hosted[nwid]["name"], nwid)
            said = [f"admitted, the controller's own node: {ips}"]
            node.push_event(
                "member", member_message(node.address, words, said), nwid=nwid, address=node.address
            )
        node.own_network_changed(nwid)
        return
    was = node.state.networks[nwid]["state"]
    node.state.networks[nwid]["state"] = NetworkState.ACCESS_DENIED
    message = network_change(nwid, was, NetworkState.ACCESS_DENIED)
    node.push_event("network", message, nwid=nwid)


# --------------------------------------------------------------------------- routing

handlers.check()  # every route of the table: here, in controller.py and in roots.py


def dispatch(node: FakeNode, request: httpx.Request) -> httpx.Response:
    """Route `request` by the schema's table; a refusal is the daemon's error JSON."""
    path = request.url.path
    method = "GET" if request.method == "HEAD" else request.method
    try:
        for route in ROUTES:
            args = route.match(path)
            if args is None or route.method != method:
                continue
            if method != "GET" and not route.body:
                check_path_params(args)
                refuse_body(request.method, path, raw_body(request))
            return handlers.by_name[route.name](node, request, args)
        allowed = allowed_methods(path)
        if allowed:
            reason = not_allowed_reason(request.method, path, allowed)
            raise ApiProblem(405, "method_not_allowed", reason)
        raise ApiProblem(404, "not_found", not_found_reason(request.method, path))
    except FieldError as exc:
        return reply(error_json("validation", str(exc), exc.field), 400)
    except ApiProblem as problem:
        return reply(problem.to_json(), problem.status)


__all__ = ["dispatch", "relay_reason_for", "resolve_join"]
