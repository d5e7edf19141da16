"""`overlayd`: run the node, or print this node's roots-file line.

    overlayd [--home DIR] [--port N] [--root] [--roots FILE] [--bind ADDR ...]
             [--advertise CIDR ...] [--tcp-fallback auto|force|off] [--api-tcp PORT|off]
             [--log-level LEVEL]
    overlayd [--home DIR] roots-entry [--endpoint HOST:PORT ...]

Options given on the command line are remembered in `<home>/settings.json`, so a later
plain `overlayd --home DIR` (or a systemd unit) starts the node the same way; an option
given again replaces the remembered value. Precedence: command line > settings.json >
built-in default. `roots-entry` reads the settings but never changes them.

Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 could not start (one line on stderr, no
traceback), 2 bad arguments (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from overlay_core import __version__
from overlay_core.api.schema import DEFAULT_UDP_PORT
from overlay_core.proto.roots import RootEntry, parse_endpoint, parse_roots

from .daemon import (
    DEFAULT_BINDS,
    OFFLOAD_MODES,
    TCP_FALLBACK_MODES,
    Daemon,
    DaemonConfig,
    StartupError,
)
from .home import Home, HomeError
from .interfaces import interface_addresses, parse_networks, select_advertised

log = logging.getLogger("overlayd")

# settings.json key -> built-in default. Everything else in the file is ignored.
DEFAULTS: dict[str, Any] = {
    "port": DEFAULT_UDP_PORT,
    "bind": list(DEFAULT_BINDS),
    "root": False,
    "roots": None,
    "advertise": None,
    "tcp_fallback": "auto",
    "api_tcp": None,
    "api_group": None,
    "offload": "auto",
}


class ConfigError(Exception):
    """A bad setting or file found after argument parsing; one line for the operator."""


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _api_port(text: str) -> int | str:
    return "off" if text == "off" else _port(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="overlayd",
        description="Run a ztui overlay node (leaf or root).",
        epilog="Options are remembered in HOME/settings.json for the next start.",
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
    parser.add_argument("--roots", type=Path, metavar="FILE", help="roots file to use")
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
        "TAP only (tap, as on kernels before 4.18), or none (off)",
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
    return parser


def merge_settings(home: Home, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Defaults < settings.json < command line. Returns (settings, command line changed any)."""
    stored = home.load_settings()
    settings = {key: stored.get(key, default) for key, default in DEFAULTS.items()}
    given: dict[str, Any] = {}
    for key in ("port", "bind", "root", "advertise", "tcp_fallback", "api_group", "offload"):
        value = getattr(args, key)
        if value is not None:
            given[key] = value
    if args.roots is not None:
        given["roots"] = str(args.roots.resolve())
    if args.api_tcp is not None:
        given["api_tcp"] = None if args.api_tcp == "off" else args.api_tcp
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
    home = Home(args.home)
    try:
        settings, changed = merge_settings(home, args)
        if args.command == "roots-entry":
            print(roots_entry_line(home, settings, args.endpoint))
            return 0

        def remember() -> None:
            # Only once the node is up, so a typo that stopped it is not remembered.
            if changed:
                home.save_settings({**home.load_settings(), **settings})

        return asyncio.run(run(daemon_config(home, settings), remember))
    except (StartupError, HomeError, ConfigError) as exc:
        print(f"overlayd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130


if __name__ == "__main__":
    sys.exit(main())
