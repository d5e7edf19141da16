"""Networks this node's controller hosts: `ztui net create | list | delete`, `ztui members`,
`approve`, `deauth`, `remove` and `member`. They act on the controller of the node `ztui`
talks to, so run them against the node whose address starts the network id.

`approve` lets in a node that has asked to join (`ztui join NWID` on it); one that never
asked is refused (exit 1, with what to do) unless `--force` pre-authorizes it. `deauth`
cuts a member off but keeps its addresses for a later `approve`; `remove` forgets it and
frees them. `net create` without `--pool` takes the controller's first free pool; a pool
or route that overlaps another hosted network's is created all the same, with a warning
on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from overlay_core.api.schema import MAX_MTU, MIN_MTU, MemberJson

from .. import render
from ..client import ApiClient, ApiError
from .common import (
    Handler,
    Subparsers,
    UsageError,
    add_json,
    address,
    ascii_number,
    nwid,
    show,
    whole_number,
)

T = TypeVar("T")


def add_parsers(sub: Subparsers, common: list[argparse.ArgumentParser]) -> dict[str, Handler]:
    net = sub.add_parser("net", parents=common, help="networks this node's controller hosts")
    net_sub = net.add_subparsers(dest="net_command", metavar="create|list|delete", required=True)
    create = net_sub.add_parser(
        "create", parents=common, help="create a network; prints its id", description=_CREATE
    )
    create.add_argument("name", help="a name members see (at most 64 characters)")
    pools = create.add_mutually_exclusive_group()
    repeatable(
        pools.add_argument,
        "--pool",
        "CIDR|RANGE",
        "IPv4 pool for automatic addresses: 10.147.17.0/24 or 10.147.17.10-10.147.17.99 "
        "(default: the first free of 10.147.17.0/24, 10.147.18.0/24, ...)",
    )
    pools.add_argument("--no-pool", action="store_true", help="no pool: assign addresses by hand")
    repeatable(
        create.add_argument,
        "--route",
        "CIDR[@VIA]",
        "a route pushed to members: 10.147.17.0/24, or 192.168.1.0/24@10.147.17.1",
    )
    create.add_argument(
        "--public", action="store_true", help="let anyone in without approval (default: private)"
    )
    create.add_argument(
        "--mtu", type=whole_number, help=f"the network's MTU, {MIN_MTU}-{MAX_MTU} (default 2800)"
    )
    create.add_argument("--mss", help="TCP MSS clamping: auto (default), off, or a number")
    repeatable(
        create.add_argument, "--preset", "NAME", "rule preset: block-dhcp, block-ra (repeatable)"
    )
    create.add_argument(
        "--no-broadcast", action="store_true", help="carry no broadcast (ARP will not work)"
    )
    create.add_argument(
        "--multicast-limit", type=whole_number, metavar="N", help="members a multicast goes to (32)"
    )
    listing = net_sub.add_parser("list", parents=common, help="the hosted networks")
    delete = net_sub.add_parser("delete", parents=common, help="delete a network for good")
    delete.add_argument("nwid", help="16-hex-digit network id")

    members = sub.add_parser(
        "members", parents=common, help="a hosted network's members, pending ones first"
    )
    approve = sub.add_parser(
        "approve", parents=common, help="let a node that asked to join into a network"
    )
    approve.add_argument(
        "--force",
        action="store_true",
        help="pre-authorize a node that has not asked yet (it gets an address when it does)",
    )
    deauth = sub.add_parser(
        "deauth", parents=common, help="cut a member off a network (it keeps its addresses)"
    )
    remove = sub.add_parser("remove", parents=common, help="forget a member and free its addresses")
    member = sub.add_parser(
        "member", parents=common, help="show a member, or set its name, IPs, bridging"
    )
    for parser in (members, approve, deauth, remove, member):
        parser.add_argument("nwid", help="16-hex-digit network id")
    for parser in (approve, deauth, remove, member):
        parser.add_argument("address", help="the member's 10-hex-digit address")
    member.add_argument("--name", help="a name for the member")
    member.add_argument(
        "--ip",
        action="append",
        metavar="IP",
        help="assign this address (repeatable; replaces the member's addresses)",
    )
    member.add_argument("--no-ips", action="store_true", help="take every address away")
    member.add_argument(
        "--bridge",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="may carry frames for other MACs (a bridge to a LAN)",
    )
    for parser in (create, listing, delete, members, approve, deauth, remove, member):
        add_json(parser)
    return {
        "net": cmd_net,
        "members": cmd_members,
        "approve": cmd_approve,
        "deauth": cmd_deauth,
        "remove": cmd_remove,
        "member": cmd_member,
    }


def repeatable(add: Callable[..., argparse.Action], flag: str, metavar: str, help: str) -> None:
    """An option given once per value, gathered in a list ([] when never given). `add` is
    the parser's or a mutually exclusive group's add_argument."""
    add(flag, action="append", default=[], metavar=metavar, help=help)


_CREATE = (
    "Create a network on this node's controller. Its id is this node's address followed "
    "by a network number; members join with `ztui join NWID`."
)


def cmd_net(client: ApiClient, args: argparse.Namespace) -> int:
    if args.net_command == "create":
        record = client.create_network(create_body(args))
        # stderr, so NWID=$(ztui net create ...) still captures the id alone.
        for warning in record.get("warnings", []):
            print(f"ztui: warning: {warning}", file=sys.stderr)
        return show(args, record, lambda: [record["nwid"]])
    if args.net_command == "list":
        networks = client.controller_networks()
        return show(args, networks, lambda: render.controller_networks_lines(networks))
    target = nwid(args.nwid)
    deleted = hosted(client, target, lambda: client.delete_network(target))
    return show(args, deleted, lambda: [f"deleted network {target}"])


def create_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": args.name,
        "private": not args.public,
        "routes": [route(text) for text in args.route],
        "presets": list(args.preset),
    }
    if args.pool or args.no_pool:  # else the controller picks a free one
        body["pools"] = list(args.pool)
    if args.mtu is not None:
        body["mtu"] = args.mtu
    if args.mss is not None:
        body["mss"] = mss(args.mss)
    if args.no_broadcast:
        body["broadcast"] = False
    if args.multicast_limit is not None:
        body["multicast_limit"] = args.multicast_limit
    return body


def route(text: str) -> dict[str, str | None]:
    target, sep, via = text.partition("@")
    if not target or (sep and not via):
        raise UsageError(f"--route {text!r}: use CIDR or CIDR@GATEWAY")
    return {"target": target, "via": via or None}


def mss(text: str) -> str | int:
    if text in ("auto", "off"):
        return text
    number = ascii_number(text.removeprefix("fixed:"))
    if number is not None:
        return number
    raise UsageError(f"--mss {text!r}: use auto, off or a number such as 1360")


def cmd_members(client: ApiClient, args: argparse.Namespace) -> int:
    target = nwid(args.nwid)
    members = hosted(client, target, lambda: client.members(target))
    return show(args, members, lambda: render.members_lines(target, members, time.time()))


def cmd_approve(client: ApiClient, args: argparse.Namespace) -> int:
    target, who = nwid(args.nwid), address(args.address)
    body: dict[str, Any] = {"authorized": True}
    if args.force:
        body["force"] = True
    member = hosted(client, target, lambda: client.update_member(target, who, body))
    return show(args, member, lambda: [approved_words(who, target, member)])


def approved_words(who: str, target: str, member: MemberJson) -> str:
    """What `ztui approve` did: let in a node that asked, or pre-authorized one that has not."""
    if member["last_seen"] is None:
        return (
            f"pre-authorized {who} on {target}; it is let in, and gets an address, "
            f"when it joins (`ztui join {target}` on it)"
        )
    ips = f" with {', '.join(member['ips'])}" if member["ips"] else ""
    return f"approved {who} on {target}{ips}; it gets its config within seconds"


def cmd_deauth(client: ApiClient, args: argparse.Namespace) -> int:
    target, who = nwid(args.nwid), address(args.address)
    member = hosted(
        client, target, lambda: client.update_member(target, who, {"authorized": False})
    )
    return show(
        args, member, lambda: [f"deauthorized {who} on {target}; it is cut off within seconds"]
    )


def cmd_remove(client: ApiClient, args: argparse.Namespace) -> int:
    target, who = nwid(args.nwid), address(args.address)
    deleted = hosted(client, target, lambda: client.delete_member(target, who))
    words = (
        f"removed {who} from {target}; its addresses are free, it is cut off within "
        "seconds, and if it asks again it is a new pending request"
    )
    return show(args, deleted, lambda: [words])


def cmd_member(client: ApiClient, args: argparse.Namespace) -> int:
    target, who = nwid(args.nwid), address(args.address)
    if args.ip and args.no_ips:
        raise UsageError("--ip and --no-ips contradict each other")
    body: dict[str, Any] = {}
    if args.name is not None:
        body["name"] = args.name
    if args.ip or args.no_ips:
        body["ips"] = list(args.ip or [])
    if args.bridge is not None:
        body["active_bridge"] = args.bridge
    if body:
        member = hosted(client, target, lambda: client.update_member(target, who, body))
    else:
        member = hosted(client, target, lambda: client.member(target, who))
    return show(args, member, lambda: render.member_lines(member, time.time()))


def hosted(client: ApiClient, target: str, call: Callable[[], T]) -> T:
    """Run `call`; if this node's controller does not host `target`, say which node does."""
    try:
        return call()
    except ApiError as exc:
        if exc.error != "unknown_network":
            raise
        controller = render.controller_of(target)
        me = client.status()["address"]
        if controller == me:
            raise
        raise ApiError(
            f"network {target} is hosted by controller {controller}, not by this node ({me}): "
            f"run this on {controller}",
            exc.status,
            exc.error,
        ) from None
