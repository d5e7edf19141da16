"""`ztui doctor`'s report: one line per check, its fix under it, a summary, an exit status.

    ok    /dev/net/tun   present and openable
    FAIL  daemon         not running: no socket at /var/lib/ztui/control.sock
                         -> start it: `sudo systemctl start overlayd`
    skip  roots          needs overlayd, which gave no usable answer (see daemon)
    1 failed, 1 skipped, 1 ok

FAIL is in capitals so it stands out in a column of lowercase words, on any terminal and
in a mail. Long details wrap under their own column at 80 characters. Pure: results in,
lines out.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .result import NAMES, CheckResult

WIDTH = 80
LABELS = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skipped": "skip"}
STATUS_WIDTH = 6
NAME_WIDTH = max(len(name) for name in NAMES) + 2
INDENT = " " * (STATUS_WIDTH + NAME_WIDTH)
EXIT_HEALTHY, EXIT_FAILED = 0, 1


def result_lines(result: CheckResult, width: int = WIDTH) -> list[str]:
    head = f"{LABELS[result.status]:<{STATUS_WIDTH}}{result.check:<{NAME_WIDTH}}"
    # break_on_hyphens off: paths and commands such as `--api-group` must stay whole.
    lines = textwrap.wrap(
        result.detail,
        width,
        initial_indent=head,
        subsequent_indent=INDENT,
        break_on_hyphens=False,
    ) or [head.rstrip()]
    if result.fix:
        lines += textwrap.wrap(
            result.fix,
            width,
            initial_indent=f"{INDENT}-> ",
            subsequent_indent=f"{INDENT}   ",
            break_on_hyphens=False,
        )
    return lines


def summary_line(results: Sequence[CheckResult]) -> str:
    counts = Counter(r.status for r in results)
    words = {"fail": "failed", "warn": "warn", "skipped": "skipped", "ok": "ok"}
    parts = [f"{counts[s]} {words[s]}" for s in ("fail", "warn", "skipped", "ok") if counts[s]]
    verdict = "something failed" if counts["fail"] else "nothing failed"
    return f"{verdict}: {', '.join(parts)}"


def report_lines(results: Sequence[CheckResult], width: int = WIDTH) -> list[str]:
    lines = [line for result in results for line in result_lines(result, width)]
    return [*lines, summary_line(results)]


def report_json(results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    return [result.to_json() for result in results]


def exit_status(results: Sequence[CheckResult]) -> int:
    """1 when any check failed; a warning alone is not a failure."""
    return EXIT_FAILED if any(r.status == "fail" for r in results) else EXIT_HEALTHY
