"""This node's network memberships: `ztui networks | join | leave | set`.

`ztui join` waits briefly for the controller's first answer, and its exit status says how
that went: OK, ACCESS_DENIED (waiting for an admin's approval: the expected next step)
and no answer yet (still REQUESTING_CONFIGURATION) exit 0; NOT_FOUND (the controller has
no such network) and PORT_ERROR (no TAP device) exit 1 with the reason on stderr, as
every failed `ztui` command does. The network stays joined either way, and the message
says how to get rid of it.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from overlay_core.api.schema import MAX_MSS, MAX_MTU, MIN_MSS, MIN_MTU, NetworkJson, NetworkState

from .. import render
from ..client import ApiClient
from .common import (
    EXIT_FAIL,
    EXIT_OK,
    Handler,
    Subparsers,
    UsageError,
    add_json,
    ascii_number,
    nwid,
    print_json,
    show,
)

JOIN_WAIT_S = 3.0  # long enough for a controller on the same continent to answer
POLL_S = 0.2
SETTING_NAMES = ("mtu", "mss", "allow-managed", "allow-global", "allow-default", "report")
YES = ("yes", "y", "true", "on", "1")
NO = ("no", "n", "false", "off", "0")
# States a join ends in that did not work: nothing will flow until someone fixes something.
FAILED_JOIN_STATES = (NetworkState.NOT_FOUND, NetworkState.PORT_ERROR)


def add_parsers(sub: Subparsers, common: list[argparse.ArgumentParser]) -> dict[str, Handler]:
    networks = sub.add_parser(
        "networks",
        parents=common,
        help="joined networks: state, device, MAC, MTU, addresses (like listnetworks)",
    )
    join = sub.add_parser(
        "join", parents=common, help="join a network; private ones wait for approval"
    )
    join.add_argument("nwid", help="16-hex-digit network id")
    join.add_argument(
        "--allow-global", action="store_true", help="accept public addresses and routes"
    )
    join.add_argument("--allow-default", action="store_true", help="accept a default route")
    join.add_argument(
        "--no-allow-managed",
        action="store_true",
        help="take no addresses or routes from the controller",
    )
    join.add_argument(
        "--wait",
        type=float,
        default=JOIN_WAIT_S,
        metavar="S",
        help=f"seconds to wait for the controller's answer (default {JOIN_WAIT_S:g}; 0: none)",
    )
    leave = sub.add_parser("leave", parents=common, help="leave a network; its device goes away")
    leave.add_argument("nwid", help="16-hex-digit network id")
    set_ = sub.add_parser(
        "set",
        parents=common,
        help="change a joined network's local settings: mtu= mss= allow-managed= ...",
        description=(
            f"KEY=VALUE settings: mtu={MIN_MTU}-{MAX_MTU}|default, "
            f"mss=auto|off|{MIN_MSS}-{MAX_MSS}|default, "
            "allow-managed=yes|no, allow-global=yes|no, allow-default=yes|no. "
            "`default` drops the local override and uses the network's value."
        ),
    )
    set_.add_argument("nwid", help="16-hex-digit network id")
    set_.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    for parser in (networks, join, leave, set_):
        add_json(parser)
    return {"networks": cmd_networks, "join": cmd_join, "leave": cmd_leave, "set": cmd_set}


def _my_address(client: ApiClient, networks: list[NetworkJson]) -> str | None:
    """This node's address, fetched only when a hint needs it."""
    if any(n["state"] == NetworkState.ACCESS_DENIED for n in networks):
        return client.status()["address"]
    return None


def cmd_networks(client: ApiClient, args: argparse.Namespace) -> int:
    networks = client.networks()
    return show(
        args, networks, lambda: render.networks_lines(networks, _my_address(client, networks))
    )


def cmd_join(client: ApiClient, args: argparse.Namespace) -> int:
    target = nwid(args.nwid)
    settings: dict[str, Any] = {}
    if args.allow_global:
        settings["allow_global"] = True
    if args.allow_default:
        settings["allow_default"] = True
    if args.no_allow_managed:
        settings["allow_managed"] = False
    network = client.join(target, settings or None)
    deadline = time.monotonic() + max(0.0, args.wait)
    # OK can come before the TAP is open (the controller's own network answers at once).
    while time.monotonic() < deadline and (
        network["state"] == NetworkState.REQUESTING_CONFIGURATION
        or (network["state"] == NetworkState.OK and network["device"] is None)
    ):
        time.sleep(POLL_S)
        network = client.network(target)
    failed = network["state"] in FAILED_JOIN_STATES
    if args.json:
        print_json(network)  # the state is in it; the exit status says the rest
    elif failed:
        print(f"ztui: {join_failure(network)}", file=sys.stderr)
    else:
        print("\n".join(render.joined_lines(network, _my_address(client, [network]))))
    return EXIT_FAIL if failed else EXIT_OK


def join_failure(network: NetworkJson) -> str:
    """Why a join that ended NOT_FOUND or PORT_ERROR failed, and how to stop it, one line."""
    nwid = network["nwid"]
    if network["state"] == NetworkState.NOT_FOUND:
        # The node keeps asking (the network may yet be created): say how to stop it.
        return (
            f"controller {render.controller_of(nwid)} has no network {nwid}: check the id "
            f"(still joined and retrying; `ztui leave {nwid}` stops that)"
        )
    # The node does not retry a TAP that failed: leaving and joining again does.
    reason = network["port_error"] or "the TAP device failed"
    # A device that exists but was refused its addresses (they clash with another network's).
    where = f"{nwid} on {network['device']}" if network["device"] else f"no device for {nwid}"
    return f"{where}: {reason} (`ztui leave {nwid}`, fix that, and join again)"


def cmd_leave(client: ApiClient, args: argparse.Namespace) -> int:
    left = client.leave(nwid(args.nwid))
    return show(args, left, lambda: [f"left {left['nwid']}"])


def cmd_set(client: ApiClient, args: argparse.Namespace) -> int:
    target = nwid(args.nwid)
    body = dict(parse_setting(item) for item in args.settings)
    network = client.set_network(target, body)
    return show(args, network, lambda: [render.settings_line(network)])


def parse_setting(item: str) -> tuple[str, Any]:
    """`mtu=1400` -> ("mtu", 1400): shapes only; the daemon checks ranges and says why."""
    key, sep, value = item.partition("=")
    key, value = key.strip().lower().replace("_", "-"), value.strip()
    if not sep or not key or not value:
        raise UsageError(f"{item!r}: settings are KEY=VALUE, such as mtu=1400")
    field = key.replace("-", "_")
    if key == "mtu":
        if value == "default":
            return field, None
        mtu = ascii_number(value)
        if mtu is None:
            raise UsageError(f"mtu: {value!r} is not a number; use mtu=1400 or mtu=default")
        return field, mtu
    if key == "mss":
        if value in ("auto", "off"):
            return field, value
        if value == "default":
            return field, None
        mss = ascii_number(value.removeprefix("fixed:"))
        if mss is not None:
            return field, mss
        raise UsageError(f"mss: {value!r}: use auto, off, a number such as 1360, or default")
    if key in SETTING_NAMES:
        if value.lower() in YES:
            return field, True
        if value.lower() in NO:
            return field, False
        raise UsageError(f"{key}: {value!r}: use yes or no")
    raise UsageError(f"unknown setting {key!r}; use {', '.join(SETTING_NAMES)}")
