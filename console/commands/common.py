"""What every `ztui` subcommand shares: exit codes, usage errors, id checks, JSON output."""

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


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


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
