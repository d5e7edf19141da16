"""`ztui doctor`: what stands between this machine and a working overlay, and the fix.

    facts.py          what was found, as plain data (and the API replies read into it)
    gather.py         finding it out: the TUN device, /proc, the socket, the API, pyroute2
    checks.py         the decisions, pure: host, daemon, socket, roots, clock; all in order
    kernel_checks.py  ... and the kernel's: default route MTU, routes, address clashes
    result.py         one result line (ok, warn, fail, skipped), the checks' names
    output.py         the report's lines, its JSON and the exit status

The subcommand itself is console/commands/doctor.py.
"""

from __future__ import annotations

from .checks import diagnose
from .gather import gather_facts
from .output import exit_status, report_json, report_lines
from .result import CheckResult

__all__ = ["CheckResult", "diagnose", "exit_status", "gather_facts", "report_json", "report_lines"]
