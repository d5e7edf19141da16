"""`ztui`: the console's command-line side. Every subcommand is one or a few API calls.

    ztui [--home DIR | --api unix:PATH | --api http://127.0.0.1:PORT [--token T]]
                                                       (no command: the console, app.py)
         --version
         info | peers | ping TARGET [-c N] [-i S] [--timeout S] | netcheck
         networks | join NWID [--allow-global] [--allow-default] [--no-allow-managed]
         leave NWID | set NWID KEY=VALUE...
         net create NAME [--pool P] [--route R] [--public] [--mtu N] [--mss M] [--preset P]
         net list | net delete NWID
         members NWID | approve NWID ADDR | deauth NWID ADDR
         member NWID ADDR [--name N] [--ip IP]... [--no-ips] [--bridge | --no-bridge]
                                                                  (each with --json)
         demo [--no-console] [--keep-running-seconds N] [--loopback]   (console/demo.py)

`ping`'s TARGET is an address, or a member's name or overlay IP as `ztui peers` shows
them (the names this node's networks' configs give its peers): exactly one peer must match.

The member-side commands live in commands/networks.py, the controller's in
commands/controller.py. With no --home or --api, the node is the system one if its socket
is there, else the user's own (console/discovery.py); `ztui info` says which it reached.

Exit codes: 0 success, 1 the daemon could not be reached or refused (one line on stderr),
2 bad usage such as a mistyped address or network id, an unknown option, or a value the
daemon rejected (HTTP 400). No traceback is ever printed, and a usage error is one line
too (`ztui COMMAND --help` has the rest).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast

from overlay_core.api.schema import (
    VERSION,
    EchoJson,
    NetworkJson,
    PeerJson,
    PeerNameJson,
    check_address_text,
)

from . import demo, render
from .client import ApiClient, ApiError
from .commands import controller, doctor, networks, node, paths
from .commands.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    Handler,
    Subparsers,
    UsageError,
    add_json,
    ascii_number,
    check_ids,
    print_json,
    show,
)

__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def _connection_options(defaults: bool) -> argparse.ArgumentParser:
    """Options accepted both before and after the subcommand (`ztui --home D info` and
    `ztui info --home D`). Only the top level sets defaults, so a later one never
    overwrites an earlier one with None."""
    suppress: Any = None if defaults else argparse.SUPPRESS
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--home", default=suppress, help="overlayd's home directory")
    parent.add_argument(
        "--api", default=suppress, metavar="URL", help="unix:PATH or http://127.0.0.1:PORT"
    )
    parent.add_argument("--token", default=suppress, help="API token for --api http://...")
    return parent


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2, like every other
    `ztui` failure: the full usage block buries the one thing that was wrong."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = _Parser(
        prog="ztui",
        description=(
            "Console for a ztui overlay node (overlayd): the node and its peers, the networks "
            "it has joined, and the networks its controller hosts."
        ),
        parents=[_connection_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"ztui {VERSION}")
    # Any, as in commands/: typeshed ties subparsers' parents to the parser's own class.
    sub: Subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = [_connection_options(defaults=False)]
    info = sub.add_parser("info", parents=common, help="this node: address, state, roots, NAT")
    peers = sub.add_parser("peers", parents=common, help="known peers, their links and paths")
    ping = sub.add_parser("ping", parents=common, help="overlay echo to a peer, like ping")
    # Not "address": check_ids would refuse a name before the daemon could resolve it.
    ping.add_argument(
        "target", metavar="TARGET", help="a node address, or a peer's member name or overlay IP"
    )
    ping.add_argument("-c", "--count", type=_positive_int, default=4, help="echoes (default 4)")
    ping.add_argument(
        "-i", "--interval", type=_positive_float, default=1.0, help="seconds between echoes"
    )
    ping.add_argument(
        "--timeout", type=_positive_float, default=2.0, help="seconds to wait for each reply"
    )
    netcheck = sub.add_parser(
        "netcheck",
        parents=common,
        help="can this node connect directly? UDP, NAT type, roots, and what to do",
    )
    for command in (info, peers, ping, netcheck):
        add_json(command)
    handlers: dict[str, Handler] = {
        "info": cmd_info,
        "peers": cmd_peers,
        "ping": cmd_ping,
        "netcheck": cmd_netcheck,
    }
    handlers.update(networks.add_parsers(sub, common))
    handlers.update(controller.add_parsers(sub, common))
    handlers.update(paths.add_parsers(sub, common))
    handlers.update(node.add_parsers(sub, common))
    handlers.update(doctor.add_parsers(sub, common))
    demo.add_parser(sub)  # no API client: main runs it before connecting
    return parser, handlers


def _positive_int(text: str) -> int:
    number = ascii_number(text)
    if number is None or number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return number


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


# --------------------------------------------------------------------------- commands


def cmd_info(client: ApiClient, args: argparse.Namespace) -> int:
    status = client.status()
    # Which node answered matters when several could have (the system node, or one in
    # the user's own home): say where this one was reached.
    return show(
        args, status, lambda: [*render.info_lines(status), f"  {'api':<9} {client.endpoint}"]
    )


def cmd_peers(client: ApiClient, args: argparse.Namespace) -> int:
    peers = client.peers()
    return show(args, peers, lambda: render.peers_lines(peers))


def cmd_netcheck(client: ApiClient, args: argparse.Namespace) -> int:
    report = client.netcheck()
    return show(args, report, lambda: render.netcheck_lines(report))


def ping_target(text: str, peers: Sequence[PeerJson], networks: Sequence[NetworkJson] = ()) -> str:
    """The address `ztui ping TARGET` echoes. An address is taken as it is (known or not:
    the roots may know it); otherwise exactly one peer must hold `text` as an overlay IP,
    or as its name in some network (exact case first, then any case). UsageError otherwise:
    none or several match. Members of joined `networks` count as peers here even before
    this node has talked to them: their configs name them (`roster`), and pinging one is
    how a conversation starts."""
    peers = [*peers, *_roster_peers(networks, {p["address"] for p in peers})]
    try:
        return check_address_text(text)
    except ValueError:
        pass
    wanted = text.strip()
    ip = _ip(wanted)
    if ip is not None:
        found = _peers_where(peers, lambda entry: any(_ip(x) == ip for x in entry["ips"]))
        what, hint = f"the overlay IP {ip}", ""
    else:
        found = _peers_where(peers, lambda entry: entry["name"].strip() == wanted)
        if not found:  # `ztui ping NAS` for "nas": unless some peer is called "NAS"
            folded = wanted.casefold()
            found = _peers_where(peers, lambda e: e["name"].strip().casefold() == folded)
        # It may be a mistyped address as well as an unknown name: say what an address is.
        what, hint = f"the name {wanted!r}", "an address is 10 hex digits; "
    addresses = sorted({address for address, _ in found})
    if not addresses:
        raise UsageError(
            f"no peer has {what} ({hint}`ztui peers` lists the names and IPs this node knows)"
        )
    if len(addresses) > 1:
        where = ", ".join(f"{a} in {render.printable(n)}" for a, n in sorted(found))
        raise UsageError(f"{len(addresses)} peers have {what}: {where}; ping one by its address")
    return addresses[0]


def _roster_peers(networks: Sequence[NetworkJson], known: set[str]) -> list[PeerJson]:
    """The members the joined networks' configs name that are not peers yet, shaped as
    peers with only `address` and `names`, which is all ping_target reads."""
    out: dict[str, list[PeerNameJson]] = {}
    for network in networks:
        for entry in network.get("roster", []):
            if entry["address"] in known:
                continue
            out.setdefault(entry["address"], []).append(
                {
                    "nwid": network["nwid"],
                    "network": network["name"] or "",
                    "name": entry["name"],
                    "ips": list(entry["ips"]),
                }
            )
    return [cast(PeerJson, {"address": a, "names": names}) for a, names in sorted(out.items())]


def _peers_where(
    peers: Sequence[PeerJson], match: Callable[[PeerNameJson], bool]
) -> set[tuple[str, str]]:
    """(address, network name) of each peer whose name entry in a network matches."""
    return {
        (peer["address"], entry["network"] or entry["nwid"])
        for peer in peers
        for entry in peer.get("names", [])
        if match(entry)
    }


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`text` as an IP address (a config's "10.147.17.2/24" too), None if it is not one."""
    try:
        return ipaddress.ip_address(text.split("/", 1)[0])
    except ValueError:
        return None


def cmd_ping(client: ApiClient, args: argparse.Namespace) -> int:
    peers = client.peers()
    networks: list[NetworkJson] = []
    try:
        check_address_text(args.target)
    except ValueError:  # a name or IP: members not yet talked to are in the configs
        networks = client.networks()
    address = ping_target(args.target, peers, networks)
    # The name the pongs carry; "" for a peer known by address only (a root, a stranger).
    everyone = [*peers, *_roster_peers(networks, {p["address"] for p in peers})]
    label = next((render.peer_label(p) for p in everyone if p["address"] == address), "")
    replies: list[EchoJson | None] = []
    try:
        for index in range(args.count):
            started = time.monotonic()
            reply = _echo_once(client, address, args.timeout)
            replies.append(reply)
            if not args.json:
                if reply is not None:
                    print(render.pong_line(reply, label), flush=True)
                else:
                    print(f"no reply from {label or address} within {args.timeout:g} s", flush=True)
            if index + 1 < args.count:
                time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass  # like ping: Ctrl-C ends the run and still prints the summary
    rtts = [r["rtt_ms"] for r in replies if r is not None]
    if args.json:
        print_json(
            {
                "peer": address,
                "sent": len(replies),
                "received": len(rtts),
                "min_ms": min(rtts, default=None),
                "avg_ms": sum(rtts) / len(rtts) if rtts else None,
                "max_ms": max(rtts, default=None),
                "replies": replies,
            }
        )
    else:
        print("\n".join(render.ping_summary(address, len(replies), rtts, label)))
    return EXIT_OK if rtts else EXIT_FAIL


def _echo_once(client: ApiClient, address: str, timeout_s: float) -> EchoJson | None:
    try:
        return client.echo(address, timeout_s)
    except ApiError as exc:
        if exc.error == "timeout":
            return None
        if exc.status == 400:  # e.g. a reserved address the local shape check let through
            raise UsageError(str(exc)) from None
        raise


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return run_console(args)
    if args.command == "demo":
        return demo.run(args)
    try:
        check_ids(args)  # a typo is a usage error even with no daemon running
        with ApiClient(home=args.home, api=args.api, token=args.token) as client:
            return handlers[args.command](client, args)
    except UsageError as exc:
        print(f"ztui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"ztui: {exc}", file=sys.stderr)
        # 400: a value the daemon rejected; "usage": a malformed --api, caught before sending
        return EXIT_USAGE if exc.status == 400 or exc.error == "usage" else EXIT_FAIL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `ztui peers | head`: the reader left; say nothing, and keep Python's exit-time
        # flush from raising again on the dead pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL


def run_console(args: argparse.Namespace) -> int:
    """`ztui` alone: the interactive console. Imported here, so subcommands in scripts
    don't pay for loading Textual."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # A script or a pipe: drawing a full-screen app there only makes a mess.
        print(
            "ztui: the console needs a terminal; in scripts use a subcommand "
            "(ztui info, peers, networks, ...; ztui --help lists them)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from .api import AsyncApiClient
    from .app import ZtuiApp

    try:
        client = AsyncApiClient(home=args.home, api=args.api, token=args.token)
    except ApiError as exc:  # a malformed --api: nothing to retry
        print(f"ztui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from .terminal import run_app

    app = ZtuiApp(client)  # the app closes the client as it unmounts
    app.demo_notice = getattr(args, "demo_notice", None)  # only `ztui demo` sets it
    # Ends the app when its terminal goes away, even unsignalled (su): console/terminal.py
    return run_app(app)


if __name__ == "__main__":
    sys.exit(main())
