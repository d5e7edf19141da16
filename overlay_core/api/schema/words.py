"""The API's vocabularies: the link and state words (proto/states.py's StrEnums), the
paths view's reasons, the event kinds, and the sentences of the events the API itself
publishes, so the daemon and the console's fake node say the same things.
"""

from __future__ import annotations

from collections.abc import Sequence

from overlay_core.proto.states import PairLink

from .json_types import MemberJson

# A pair's link words, best first: api/pathview.py ranks pairs by this order.
PATH_LINKS: tuple[PairLink, ...] = tuple(PairLink)
# Reason words of PathSideJson (proto/report.py REASONS) and PathPairJson (api/pathview.py).
PATH_REASONS = (
    *("tcp_only", "not_introduced", "direct_lost", "symmetric_local", "symmetric_peer"),
    *("router_answers", "unreachable", "filtered", "symmetric_nat", "no_contact", "offline"),
)

# -- the event stream (GET /events, server-sent events)

# What each kind says; `peer`, `nwid` and `address` are set where the kind names them.
EVENT_KINDS: dict[str, str] = {
    "peer": "a peer was seen for the first time (peer)",
    "link": "a peer's link changed between DIRECT, RELAY, TCP and NONE (peer)",
    "handshake": "a peer did not answer HELLOs (peer)",
    "whois": "the roots could not say who an address is",
    "tcp": "the TCP fallback to the roots opened or closed",
    "roots": "the node was given new roots at run time (PUT /roots): added, removed",
    "network": "a joined network changed state (nwid), or networks.json could not be saved",
    "member_request": "an unauthorized member asked to join a network hosted here (nwid, address)",
    "member": "a member was approved, deauthorized, deleted or changed (nwid, address)",
    "controller": "a network hosted here was created, updated or deleted (nwid)",
    # Sent only to the stream that fell behind, as its last event; never buffered. Its id
    # is the last one that stream delivered: reconnect with since=id.
    "overflow": "this stream fell too far behind and was closed",
}


# -- what the controller routes publish


def network_words(name: str, nwid: str) -> str:
    """A hosted network in an event: "home (8056c2e21c000001)", or the id if unnamed."""
    return f"{name} ({nwid})" if name else nwid


def controller_message(what: str, name: str, nwid: str) -> str:
    """A `controller` event: "created network home (...)", "changed mtu of home (...)"."""
    return f"{what} {network_words(name, nwid)}"


def member_message(address: str, network: str, changes: Sequence[str]) -> str:
    """A `member` event: "5c07de91ab in home (...): approved: 10.147.17.3; renamed ..."."""
    return f"{address} in {network}: {'; '.join(changes)}"


def member_changes(before: MemberJson | None, after: MemberJson) -> list[str]:
    """What a member PATCH changed, in words: "approved: 10.147.17.3", "renamed to 'phone'".

    A member that was approved without ever having asked (pre-authorized with force) gets
    its address when it first asks, so that is what is said instead of its IPs."""
    words: list[str] = []
    was_authorized = before is not None and before["authorized"]
    approved = after["authorized"] and not was_authorized
    if approved and after["last_seen"] is None and not after["ips"]:
        words.append("pre-authorized: it gets an address when it first asks")
    elif approved:
        words.append(f"approved: {', '.join(after['ips']) or 'no IP assigned'}")
    elif not after["authorized"] and was_authorized:
        words.append("deauthorized")
    elif before is not None and before["state"] == "pending" and after["state"] == "deauthorized":
        words.append("refused")
    if after["name"] != (before["name"] if before is not None else ""):
        words.append(f"renamed to {after['name']!r}")
    if not approved and after["ips"] != (before["ips"] if before is not None else []):
        words.append(f"IPs {', '.join(after['ips']) or 'none'}")
    if after["active_bridge"] != (before["active_bridge"] if before is not None else False):
        words.append("now a bridge" if after["active_bridge"] else "no longer a bridge")
    if before is None and not words:
        words.append("added, pending")
    return words
