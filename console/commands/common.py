"""What every `ztui` subcommand shares: exit codes, usage errors, id and number checks, JSON
output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from overlay_core.api.schema import check_address_text, check_nwid_text

from ..client import ApiClient

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

Handler = Callable[[ApiClient, argparse.Namespace], int]
# Subparsers of argparse are not exported as a type; this is what add_parser returns from.
Subparsers = Any


class UsageError(Exception):
    """Bad input found after parsing (a mistyped address or network id); exit 2."""


def ascii_number(text: str) -> int | None:
    """`text` as a whole number when it is 1 to 9 ASCII digits, else None.

    str.isdigit() alone also says yes to "²" (which int() then refuses with a ValueError)
    and to "١٤٠٠" (which int() reads as 1400); nobody types those on purpose, and the API
    takes ASCII digits only, so they are typos like any other.
    """
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    return None


def whole_number(text: str) -> int:
    """An argparse `type=` for a whole number >= 0 in ASCII digits (see ascii_number)."""
    number = ascii_number(text)
    if number is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return number


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def show(args: argparse.Namespace, data: Any, lines: Callable[[], list[str]]) -> int:
    """How a command that succeeded ends: `data` as JSON with --json, else `lines()` for
    people (called only then, as it may ask the daemon for more); exit status 0."""
    if args.json:
        print_json(data)
    else:
        print("\n".join(lines()))
    return EXIT_OK


def address(text: str) -> str:
    try:
        return check_address_text(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def nwid(text: str) -> str:
    try:
        return check_nwid_text(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def check_ids(args: argparse.Namespace) -> None:
    """Check every id argument's shape, so a typo is a usage error even with no daemon."""
    if getattr(args, "nwid", None) is not None:
        nwid(args.nwid)
    if getattr(args, "address", None) is not None:
        address(args.address)
