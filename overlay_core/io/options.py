"""Remembered options: the ones `overlayd` starts with, `overlayd options` to see and reset
them, and what `overlayd --OPTION ...` does when a node already runs on the home.

Options given on the command line are remembered in HOME/settings.json (only those given,
so a default that changes in a later version is not pinned by an old start), and a plain
`overlayd --home DIR`, such as the systemd unit's, starts with them. Precedence: command
line > settings.json > DEFAULTS.

A node already running on the home (its control.sock answers) is not started twice:
`overlayd --roots FILE` hands the roots to it through the API (`PUT /roots`, which applies
and saves them), and any other option is remembered for the next start, with a line
saying that it needs `systemctl restart overlayd`: the UDP port, the bind addresses, the
root role and the API sockets are what the running process is built on.

`overlayd options` shows the options beside their defaults, marking the remembered ones;
`--reset NAME` / `--reset-all` forget them. This is a command of `overlayd` working on the
home's files, not a `ztui` command over the API, because:
- it must work with no node running: a remembered option that stops the node from
  starting (a port now taken, a group that was deleted) is exactly when one needs it;
- settings.json belongs to whoever runs overlayd (root, for the service; the file is
  0600), while `ztui` runs as any member of the API group, who should be able to hand
  the node roots but not to change the socket's group or the port it binds;
- none of these options but the roots can change in a running node anyway, so an API
  for them could only write the file, which this does without a daemon in between.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from overlay_core.api.schema import DEFAULT_UDP_PORT
from overlay_core.proto.roots import RootEntry, parse_roots, roots_text

from .home import Home
from .roots_live import roots_file_path
from .startup import DEFAULT_BINDS

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
    "on_member_request": "",  # a shell command (hooks.py); "" is off
}
LIVE = frozenset({"roots"})  # what a running node takes without a restart
RESTART = "systemctl restart overlayd"
API_TIMEOUT_S = 10.0  # a PUT /roots checks each root's key: well under a second


class ConfigError(Exception):
    """A bad setting or file found after argument parsing; one line for the operator."""


class UsageError(Exception):
    """Bad input to a subcommand found after parsing; one line, exit 2."""


def flag(key: str) -> str:
    """The command-line spelling of a settings.json key: tcp_fallback -> --tcp-fallback."""
    return "--" + key.replace("_", "-")


def describe(key: str, value: Any) -> str:
    """A remembered or default value as a person reads it."""
    if key == "root":
        return "yes" if value else "no"
    if key == "on_member_request" and not value:
        return "off"
    if value is None:
        return {"roots": "none", "advertise": "every interface address", "api_tcp": "off"}.get(
            key, "none"
        )
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


# --------------------------------------------------------------------------- overlayd options


def add_parser(sub: Any) -> None:
    options = sub.add_parser(
        "options",
        help="show the remembered options (settings.json) beside the defaults; reset them",
        description="Works with or without a running node; a reset applies at the next start.",
    )
    resets = options.add_mutually_exclusive_group()
    resets.add_argument(
        "--reset",
        nargs="+",
        default=[],
        metavar="NAME",
        help="forget these: " + ", ".join(k.replace("_", "-") for k in DEFAULTS),
    )
    resets.add_argument("--reset-all", action="store_true", help="forget every one")
    options.add_argument("--json", action="store_true", help="print JSON for scripts")


def options_command(home: Home, args: argparse.Namespace) -> list[str]:
    """`overlayd options [--reset NAME ... | --reset-all] [--json]`: the lines to print."""
    if args.reset or args.reset_all:
        keys = list(DEFAULTS) if args.reset_all else [_option_key(n) for n in args.reset]
        lines = reset(home, keys, running=node_running(home))
        return [json.dumps(options_json(home), indent=2)] if args.json else lines
    if args.json:
        return [json.dumps(options_json(home), indent=2)]
    return show(home)


def _option_key(name: str) -> str:
    key = name.lstrip("-").replace("-", "_")
    if key not in DEFAULTS:
        known = ", ".join(k.replace("_", "-") for k in DEFAULTS)
        raise UsageError(f"options --reset: no option {name!r}; one of {known}")
    return key


def _remembered(home: Home) -> dict[str, Any]:
    stored = home.load_settings()
    return {key: stored[key] for key in DEFAULTS if key in stored}


def options_json(home: Home) -> dict[str, Any]:
    remembered = _remembered(home)
    return {
        "home": str(home.path),
        "settings": str(home.settings_path),
        "options": {
            key: {
                "value": remembered.get(key, default),
                "default": default,
                "remembered": key in remembered,
            }
            for key, default in DEFAULTS.items()
        },
    }


def show(home: Home) -> list[str]:
    remembered = _remembered(home)
    lines = [f"Options overlayd starts with on {home.path} (* remembered in settings.json):"]
    width = max(len(flag(key)) for key in DEFAULTS)
    for key, default in DEFAULTS.items():
        mark = "*" if key in remembered else " "
        value = remembered.get(key, default)
        text = describe(key, value)
        if key == "roots" and isinstance(value, str):
            text += f" ({_count_roots(value)})"
        if key in remembered:
            same = value == default
            text += "  (the default too)" if same else f"  (default: {describe(key, default)})"
        lines.append(f"{mark} {flag(key):<{width}}  {text}")
    lines.append("Change one by giving it to overlayd (a running node takes --roots at once);")
    lines.append("forget one with `overlayd options --reset NAME` (a restart applies that).")
    return lines


def _count_roots(path: str) -> str:
    """How many roots the remembered file lists, or why it cannot be used: a start would
    fail on it, so `options` is where to find out."""
    try:
        entries = parse_roots(Path(path).read_text())
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not a roots file: {exc}"
    return f"{len(entries)} root{'' if len(entries) == 1 else 's'}"


def reset(home: Home, keys: list[str], *, running: bool) -> list[str]:
    stored = home.load_settings()
    forgotten = [key for key in dict.fromkeys(keys) if key in stored]
    if not forgotten:
        names = ", ".join(flag(key) for key in dict.fromkeys(keys))
        what = "no option is" if set(keys) == set(DEFAULTS) else f"{names}: not"
        return [f"overlayd: {what} remembered in {home.settings_path}; nothing to reset"]
    home.save_settings({k: v for k, v in stored.items() if k not in forgotten})
    copy = roots_file_path(home)
    if "roots" in forgotten and stored.get("roots") == str(copy.resolve()):
        copy.unlink(missing_ok=True)  # the node's own copy (roots_live.py); nothing uses it now
    names = ", ".join(flag(k) for k in forgotten)
    back = ", ".join(describe(k, DEFAULTS[k]) for k in forgotten)
    when = (
        f"the running node keeps its current ones until `{RESTART}`"
        if running
        else "that applies at the next start"
    )
    return [f"overlayd: forgot {names} in {home.settings_path} (default: {back}); {when}"]


# --------------------------------------------------------------------------- a running node


@dataclass(slots=True)
class RunningNode:
    """A node answering on the home's control socket."""

    socket: Path
    address: str


def node_running(home: Home) -> bool:
    try:
        return running_node(home) is not None
    except ConfigError:
        return True  # something answers there, even if not to us


def running_node(home: Home) -> RunningNode | None:
    """The node serving HOME/control.sock, or None if nothing answers there (no socket,
    or one a crashed node left behind). ConfigError if one answers but refuses us."""
    sock = home.control_socket_path
    try:
        if not sock.exists():
            return None
        status = _request(sock, "GET", "/status")
    except PermissionError:
        raise ConfigError(
            f"cannot tell whether a node runs on {home.path}: {sock} refuses you "
            "(permission denied); run as root, or as a member of the node's --api-group"
        ) from None
    except (httpx.TransportError, OSError):
        return None  # stale: the start removes it
    address = status.get("address") if isinstance(status, dict) else None
    return RunningNode(sock, str(address))


def _request(sock: Path, method: str, path: str, body: Any = None) -> Any:
    """One API call on the control socket; raises PermissionError, httpx.TransportError,
    or ConfigError with the node's own reason for an error answer."""
    transport = httpx.HTTPTransport(uds=str(sock))
    with httpx.Client(
        transport=transport, base_url="http://overlayd", timeout=API_TIMEOUT_S
    ) as client:
        try:
            response = client.request(method, path, json=body)
        except httpx.TransportError as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, PermissionError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise cause from None
            raise
    try:
        data = response.json()
    except ValueError:
        raise ConfigError(f"the node at {sock} answered HTTP {response.status_code}") from None
    if response.status_code >= 400:
        reason = data.get("reason") if isinstance(data, dict) else None
        raise ConfigError(f"the running node refused: {reason or response.status_code}")
    return data


def hand_over(
    home: Home,
    node: RunningNode,
    given: dict[str, Any],
    roots: tuple[str, list[RootEntry]] | None,
) -> list[str]:
    """What `overlayd` does instead of starting a second node on the home: `roots` (the
    file given and its entries) go to the running node, the other `given` options into
    settings.json for its next start. Returns the lines to print; ConfigError if there is
    nothing to hand over or the node refused."""
    later = {k: v for k, v in given.items() if k not in LIVE}
    if roots is None and not later:
        raise ConfigError(
            f"a node already runs on {home.path} ({node.socket} answers): stop it first "
            f"(systemctl stop overlayd), or give it new roots with --roots FILE"
        )
    lines: list[str] = []
    if roots is not None:
        source, entries = roots
        try:
            answer = _request(node.socket, "PUT", "/roots", {"roots": roots_text(entries)})
        except (httpx.TransportError, OSError) as exc:
            raise ConfigError(f"cannot hand the roots to the node at {node.socket}: {exc}")
        lines.append(_handed_line(node, source, answer))
    if later:
        stored = home.load_settings()
        changed = {k: v for k, v in later.items() if stored.get(k, DEFAULTS[k]) != v}
        same = [k for k in later if k not in changed]
        if changed:
            home.save_settings({**stored, **changed})
            names = ", ".join(f"{flag(k)} {describe(k, v)}" for k, v in changed.items())
            lines.append(
                f"overlayd: remembered {names} in {home.settings_path}; the running node "
                f"keeps its current settings until `{RESTART}`"
            )
        if same:
            names = ", ".join(flag(k) for k in same)
            lines.append(f"overlayd: {names}: already what the node starts with; unchanged")
    return lines


def _handed_line(node: RunningNode, source: str, answer: Any) -> str:
    roots = answer.get("roots", []) if isinstance(answer, dict) else []
    added = answer.get("added", []) if isinstance(answer, dict) else []
    removed = answer.get("removed", []) if isinstance(answer, dict) else []
    saved = answer.get("saved_in") if isinstance(answer, dict) else None
    count = f"{len(roots)} root{'' if len(roots) == 1 else 's'}"
    change = f"added {len(added)}, removed {len(removed)}"
    return (
        f"overlayd: gave the running node {node.address} the {count} in {source} "
        f"({change}), no restart needed; saved in {saved} for its next start"
    )
