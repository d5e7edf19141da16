"""The node's own configuration: `ztui roots` and `ztui roots set FILE|-`.

    ztui roots [--json]                       the roots in use and the link to each
    ztui roots set FILE|- [--wait S] [--json] new roots for the running node, saved in its
                                              home for its next start (PUT /roots)

`roots set` sends the file's text, not its path: the node (a systemd service, say) may be
unable to read the caller's files. The node checks the text with the parser its start
uses; a bad line comes back as 400 naming it, which is exit 2 like any usage error, as is
a file that cannot be read. Exit 1 means the node could not be reached or refused.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from overlay_core.api.schema import RootJson, RootLink, RootsJson

from ..client import ApiClient
from .common import EXIT_OK, Handler, Subparsers, UsageError, add_json, print_json, show

# The API takes bodies up to 64 KiB; a roots file of the most roots a node takes (64
# lines of ~90 characters) is a tenth of this, so anything bigger is the wrong file.
MAX_FILE_BYTES = 48 * 1024
SET_WAIT_S = 3.0  # HELLO and OK with a root on another continent, with a retry
MAX_WAIT_S = 600.0
POLL_S = 0.2


def add_parsers(sub: Subparsers, common: list[argparse.ArgumentParser]) -> dict[str, Handler]:
    roots = sub.add_parser(
        "roots",
        parents=common,
        help="the roots this node uses and its link to each; `roots set FILE` changes them",
    )
    add_json(roots)
    roots_sub = roots.add_subparsers(dest="roots_command", metavar="set")
    set_ = roots_sub.add_parser(
        "set",
        parents=common,
        help="give the running node new roots (no restart), saved for its next start",
        description=(
            "FILE is a roots file, one root per line (`overlayd roots-entry` on a root "
            "prints its line); - reads it from standard input."
        ),
    )
    set_.add_argument("file", metavar="FILE|-", help="the roots file, or - for stdin")
    set_.add_argument(
        "--wait",
        type=seconds,
        default=SET_WAIT_S,
        metavar="S",
        help=f"seconds to wait for new roots to answer (default {SET_WAIT_S:g}; 0: none)",
    )
    # SUPPRESS: `ztui roots --json set F` keeps the --json given before `set`.
    set_.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    return {"roots": cmd_roots}


def seconds(text: str) -> float:
    """An argparse `type=` for --wait: 0 to MAX_WAIT_S seconds ("nan" would wait forever)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_S:  # False for nan too
        raise argparse.ArgumentTypeError(f"{text!r} is not 0-{MAX_WAIT_S:g} seconds")
    return value


def cmd_roots(client: ApiClient, args: argparse.Namespace) -> int:
    if getattr(args, "roots_command", None) == "set":
        return cmd_roots_set(client, args)
    roots = client.roots()
    return show(args, roots, lambda: roots_lines(roots))


def cmd_roots_set(client: ApiClient, args: argparse.Namespace) -> int:
    text = read_roots_file(args.file)  # before any request: a bad file is exit 2 offline too
    answer = client.set_roots(text)
    roots = wait_for_roots(client, answer, args.wait)
    if args.json:
        print_json(roots)
        return EXIT_OK
    print(set_summary(answer))
    print("\n".join(roots_lines(roots)))
    silent = [r["address"] for r in roots["roots"] if r["link"] == RootLink.NONE]
    if silent:
        print(
            f"not answering yet: {', '.join(silent)}; check each endpoint, and that the "
            "root's UDP port (or TCP, for the fallback) is open to this node",
            file=sys.stderr,
        )
    return EXIT_OK


def read_roots_file(name: str) -> str:
    """The text of FILE, or of stdin for "-"; UsageError (exit 2) when it is unreadable,
    not text, or far too big to be a roots file."""
    label = "standard input" if name == "-" else name
    try:
        data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1) if name == "-" else _read(name)
    except OSError as exc:
        raise UsageError(f"cannot read {label}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{label} is over {MAX_FILE_BYTES // 1024} KiB: not a roots file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{label} is not a roots file (not UTF-8 text)") from None


def _read(name: str) -> bytes:
    with Path(name).open("rb") as file:  # at most the limit: /dev/zero must not hang us
        return file.read(MAX_FILE_BYTES + 1)


def wait_for_roots(client: ApiClient, answer: RootsJson, wait_s: float) -> RootsJson:
    """The roots again once every root just added answers, or after `wait_s`."""
    added = set(answer["added"])
    roots = answer
    deadline = time.monotonic() + wait_s
    while any(r["link"] == RootLink.NONE and r["address"] in added for r in roots["roots"]):
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
        roots = client.roots()
    return roots


def set_summary(answer: RootsJson) -> str:
    count = len(answer["roots"])
    added = ", ".join(answer["added"]) or "none"
    removed = ", ".join(answer["removed"]) or "none"
    saved = answer["saved_in"] or "nowhere"
    return (
        f"{count} root{'' if count == 1 else 's'} in use (added {added}; removed {removed}); "
        f"saved in {saved} for the next start"
    )


def roots_lines(roots: RootsJson) -> list[str]:
    """A table that fits 80 columns: the listed endpoints go last, where they may wrap."""
    if not roots["roots"]:
        return [
            "no roots: this node finds no peers by itself; give it roots with "
            "`ztui roots set FILE` (one line per root, from `overlayd roots-entry` on each)"
        ]
    lines = [f"{'ROOT':<10}  {'LINK':<4}  {'LATENCY':>9}  {'PATH':<22}  LISTED AT"]
    lines += [_root_line(root) for root in roots["roots"]]
    if roots["saved_in"]:
        lines.append(f"saved in {roots['saved_in']}")
    return lines


def _root_line(root: RootJson) -> str:
    latency = "-" if root["latency_ms"] is None else f"{root['latency_ms']:.1f} ms"
    path = root["endpoint"] if root["link"] not in (RootLink.NONE, RootLink.SELF) else "-"
    listed = " ".join(root["endpoints"])
    return f"{root['address']:<10}  {root['link']:<4}  {latency:>9}  {path or '-':<22}  {listed}"
