"""`overlayd`: run the node, hand options to the one running, print this node's roots-file
line, or show and reset the remembered options.

    overlayd [--home DIR] [--port N] [--root] [--roots FILE] [--bind ADDR ...]
             [--advertise CIDR ...] [--tcp-fallback auto|force|off] [--api-tcp PORT|off]
             [--on-member-request CMD] [--log-level LEVEL]
    overlayd [--home DIR] roots-entry [--endpoint HOST:PORT ...]
    overlayd [--home DIR] options [--reset NAME ... | --reset-all] [--json]

Options given on the command line are remembered in `<home>/settings.json`, so a later
plain `overlayd --home DIR` (or a systemd unit) starts the node the same way; an option
given again replaces the remembered value. Precedence: command line > settings.json >
built-in default. `roots-entry` reads the settings but never changes them. A roots file
is copied into the home (roots.txt, see roots_live.py), so the node keeps its roots when
the file given is edited or deleted.

When a node already runs on the home, `overlayd --roots FILE` gives it the roots through
the API instead of failing on the taken port, and other options are remembered for its
next start (options.py).

Exit codes: 0 clean shutdown (SIGTERM/SIGINT) or done, 1 could not start or hand over
(one line on stderr, no traceback), 2 bad arguments (one line).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from overlay_core import __version__
from overlay_core.api.schema import DEFAULT_UDP_PORT
from overlay_core.proto.roots import RootEntry, parse_endpoint, parse_roots

from .daemon import Daemon
from .home import Home, HomeError
from .hooks import check_command
from .interfaces import interface_addresses, parse_networks, select_advertised
from .options import (
    DEFAULTS,
    ConfigError,
    UsageError,
    add_parser,
    hand_over,
    options_command,
    running_node,
)
from .roots_live import save_roots
from .startup import OFFLOAD_MODES, TCP_FALLBACK_MODES, DaemonConfig, StartupError

log = logging.getLogger("overlayd")

__all__ = ["DEFAULTS", "ConfigError", "build_parser", "main", "merge_settings"]


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _api_port(text: str) -> int | str:
    return "off" if text == "off" else _port(text)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2: the usage block buries the one
    thing that was wrong (`overlayd --help` has the rest)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see overlayd --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="overlayd",
        description="Run a ztui overlay node (leaf or root).",
        epilog="Options are remembered in HOME/settings.json for the next start; a node "
        "already running on HOME takes --roots at once (the others at its next start).",
    )
    parser.add_argument("--version", action="version", version=f"overlayd {__version__}")
    parser.add_argument(
        "--home",
        type=Path,
        help="state directory (default: $ZTUI_HOME, "
        "/var/lib/ztui as root, ~/.local/share/ztui otherwise)",
    )
    parser.add_argument(
        "--port", type=_port, help=f"UDP port, 0 = any (default {DEFAULT_UDP_PORT})"
    )
    parser.add_argument(
        "--root",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="act as a root: relay, answer WHOIS, accept TCP fallback",
    )
    parser.add_argument(
        "--roots",
        type=Path,
        metavar="FILE",
        help="roots file to use (copied into HOME; a running node takes it at once)",
    )
    parser.add_argument(
        "--bind",
        nargs="+",
        metavar="ADDR",
        help="addresses to listen on (default 0.0.0.0 and :: when available)",
    )
    parser.add_argument(
        "--advertise",
        nargs="+",
        metavar="CIDR",
        help="only advertise interface addresses inside these networks",
    )
    parser.add_argument(
        "--tcp-fallback",
        choices=TCP_FALLBACK_MODES,
        help="reach roots over TCP when UDP fails (auto), always, or never",
    )
    parser.add_argument(
        "--offload",
        choices=OFFLOAD_MODES,
        help="data-path offloads: TAP TSO and UDP GSO/GRO where the kernel has them (auto), "
        "TAP TSO and UDP by sendmmsg/recvmmsg (tap, as on kernels before 4.18), or none and "
        "one datagram per system call (off)",
    )
    parser.add_argument(
        "--api-tcp",
        type=_api_port,
        metavar="PORT|off",
        help="also serve the API on 127.0.0.1:PORT (token required)",
    )
    parser.add_argument(
        "--api-group",
        metavar="GROUP",
        help="let members of GROUP use the control socket (home becomes 0750, socket 0660)",
    )
    parser.add_argument(
        "--on-member-request",
        metavar="CMD",
        help="run CMD with /bin/sh for each join request to a network this node hosts, "
        "the request as JSON on stdin (see README); '' turns it off",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    entry = sub.add_parser("roots-entry", help="print this node's line for a roots file")
    entry.add_argument(
        "--endpoint",
        nargs="+",
        metavar="HOST:PORT",
        default=[],
        help="where others reach this root (default: bound address and port)",
    )
    add_parser(sub)
    return parser


# settings.json keys whose command-line value is stored as given (roots and api_tcp are not)
PLAIN_OPTIONS: tuple[str, ...] = ("port", "bind", "root", "advertise", "tcp_fallback")
PLAIN_OPTIONS += ("api_group", "offload", "on_member_request")


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The settings.json keys the command line gave, with their values."""
    given: dict[str, Any] = {}
    for key in PLAIN_OPTIONS:
        value = getattr(args, key)
        if value is not None:
            given[key] = value
    if args.roots is not None:
        given["roots"] = str(args.roots.resolve())
    if args.api_tcp is not None:
        given["api_tcp"] = None if args.api_tcp == "off" else args.api_tcp
    return given


def merge_settings(home: Home, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Defaults < settings.json < command line. Returns (settings, command line changed any)."""
    stored = home.load_settings()
    settings = {key: stored.get(key, default) for key, default in DEFAULTS.items()}
    given = given_options(args)
    changed = any(settings[key] != value for key, value in given.items())
    settings.update(given)
    return settings, changed


def load_roots(path: str | None) -> list[RootEntry]:
    if path is None:
        return []
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read roots file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a roots file (not text)") from None
    try:
        return parse_roots(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def daemon_config(home: Home, settings: dict[str, Any]) -> DaemonConfig:
    roots = load_roots(settings["roots"])
    try:
        if settings["advertise"]:
            parse_networks(settings["advertise"])
        return DaemonConfig(
            home=home.path,
            port=int(settings["port"]),
            binds=[str(b) for b in settings["bind"]],
            is_root=bool(settings["root"]),
            roots=roots,
            advertise=settings["advertise"],
            tcp_fallback=str(settings["tcp_fallback"]),
            api_tcp_port=None if settings["api_tcp"] is None else int(settings["api_tcp"]),
            api_group=settings["api_group"],
            offload=str(settings["offload"]),
            on_member_request=check_command(settings["on_member_request"]),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad setting (command line or {home.settings_path}): {exc}") from None


def roots_entry_line(home: Home, settings: dict[str, Any], endpoints: list[str]) -> str:
    identity = home.load_or_create_identity()
    try:
        parsed = tuple(parse_endpoint(text) for text in endpoints or _bound(settings))
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    return RootEntry(identity.public(), parsed).to_text()


def _bound(settings: dict[str, Any]) -> list[str]:
    """HOST:PORT texts for where this node listens, when roots-entry got no --endpoint."""
    port = int(settings["port"])
    if port == 0:
        raise ConfigError("the port is 0 (chosen at start); pass --endpoint HOST:PORT")
    networks = parse_networks(settings["advertise"]) if settings["advertise"] else None
    hosts = select_advertised(interface_addresses(), settings["bind"], networks)
    if not hosts:
        raise ConfigError("no address to advertise; pass --endpoint HOST:PORT")
    return [f"[{h}]:{port}" if ":" in h else f"{h}:{port}" for h in hosts]


async def run(config: DaemonConfig, on_started: Callable[[], None] = lambda: None) -> int:
    daemon = Daemon(config)
    await daemon.start()
    try:
        on_started()
    except HomeError as exc:
        log.warning("%s", exc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await daemon.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO: noise around the one line a hand-over prints.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    home = Home(args.home)
    try:
        if args.command == "options":
            print("\n".join(options_command(home, args)))
            return 0
        given = given_options(args)
        node = None if args.command == "roots-entry" else running_node(home)
        if node is not None:  # not a second node on this home: hand the options over
            # Before reading settings.json: a member of the API group may hand over roots
            # without being able to read that file (0600, the service's).
            roots = given.get("roots")
            handed = None if roots is None else (roots, load_roots(roots))
            print("\n".join(hand_over(home, node, given, handed)))
            return 0
        settings, changed = merge_settings(home, args)
        if args.command == "roots-entry":
            print(roots_entry_line(home, settings, args.endpoint))
            return 0
        config = daemon_config(home, settings)

        def remember() -> None:
            # Only once the node is up, so a typo that stopped it is not remembered. Only
            # what was given: a default changed by a later version must not be pinned.
            if not changed:
                return
            if "roots" in given:  # the node keeps its own copy (roots_live.py)
                given["roots"] = str(save_roots(home, config.roots))
            home.save_settings({**home.load_settings(), **given})

        return asyncio.run(run(config, remember))
    except UsageError as exc:
        print(f"overlayd: {exc}", file=sys.stderr)
        return 2
    except (StartupError, HomeError, ConfigError) as exc:
        print(f"overlayd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130


if __name__ == "__main__":
    sys.exit(main())
