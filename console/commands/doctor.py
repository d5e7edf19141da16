"""`ztui doctor [--json]`: check this machine for what keeps the overlay from working.

Unlike every other subcommand it must work when the node is down or out of reach, so it
never lets an API failure end it: the failure becomes the `daemon` or `socket` line of
the report and the checks that need the daemon say they were skipped, and why. Exit 0
when nothing failed (warnings allowed), 1 when something did.
"""

from __future__ import annotations

import argparse

from .. import doctor
from ..client import ApiClient
from .common import Handler, Subparsers, add_json, print_json


def add_parsers(sub: Subparsers, common: list[argparse.ArgumentParser]) -> dict[str, Handler]:
    parser = sub.add_parser(
        "doctor",
        parents=common,
        help="check TUN, capability, daemon, socket, roots, clock, MTU, routes; say the fix",
        description=(
            "Checks, in order: /dev/net/tun, CAP_NET_ADMIN, the daemon, its socket, the "
            "roots and how they are reached, the clock, the default route's MTU, and the "
            "joined networks' routes and addresses. Exit 0 when nothing failed, 1 otherwise."
        ),
    )
    add_json(parser)
    return {"doctor": cmd_doctor}


def cmd_doctor(client: ApiClient, args: argparse.Namespace) -> int:
    results = doctor.diagnose(doctor.gather_facts(client))
    if args.json:
        print_json(doctor.report_json(results))
    else:
        print("\n".join(doctor.report_lines(results)))
    return doctor.exit_status(results)
