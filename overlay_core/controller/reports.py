"""The controller's store of path reports: the newest from each authorized member.

A report (proto/report.py) arrives signature-checked and rate-limited by the node; here
the controller decides whether to keep it: only from a member that is authorized now,
and not older than the one it has. A restarted member counts its sequence from 1 again:
its report is taken when its uptime says so (less than the kept report's uptime plus the
time since), or once the kept one is RESTART_AFTER_S old. Deauthorizing a member deletes its
report (Controller.deauthorize), and deleting the member or its network cascades.

Reports are soft state, rewritten every REPORT_EVERY_S by every member: they are
committed with synchronous=NORMAL, so a 200-member network costs no fsyncs for them (the
next FULL commit, an approval, syncs them along); losing the last few on power loss only
shows a member as offline until its next report.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from overlay_core.proto.identity import format_address
from overlay_core.proto.netconf import format_nwid
from overlay_core.proto.report import REPORT_EVERY_S, PathReport

from . import queries as q

# A kept report this old no longer blocks a lower sequence (its member restarted).
RESTART_AFTER_S = 2 * REPORT_EVERY_S
# Uptimes are whole seconds and clocks drift: a report this much younger is a restart.
UPTIME_SLACK_S = 5


@dataclass(frozen=True, slots=True)
class StoredReport:
    address: int
    received: float
    report: dict[str, Any]  # PathReport.to_json()


def store(db: sqlite3.Connection, report: PathReport, now: float) -> str | None:
    """Keep `report`; or say why not: "not_member" (no such network or not authorized)
    or "stale" (we hold a newer one)."""
    record = q.member(db, report.nwid, report.member)
    if record is None or not record.authorized:
        return "not_member"
    key = (format_nwid(report.nwid), format_address(report.member))
    row = db.execute(
        "SELECT sequence, received, report FROM path_reports WHERE nwid = ? AND address = ?",
        key,
    ).fetchone()
    if row is not None and report.sequence <= row["sequence"]:
        elapsed = now - row["received"]
        uptime = json.loads(row["report"]).get("uptime_s", 0)  # not json_extract: old SQLites
        restarted = report.uptime_s + UPTIME_SLACK_S < uptime + elapsed
        if 0 <= elapsed < RESTART_AFTER_S and not restarted:
            return "stale"
    db.execute(
        "INSERT OR REPLACE INTO path_reports VALUES (?, ?, ?, ?, ?)",
        (*key, now, report.sequence, json.dumps(report.to_json(), separators=(",", ":"))),
    )
    return None


def delete(db: sqlite3.Connection, nwid: int, address: int) -> None:
    db.execute(
        "DELETE FROM path_reports WHERE nwid = ? AND address = ?",
        (format_nwid(nwid), format_address(address)),
    )


def load(db: sqlite3.Connection, nwid: int) -> dict[int, StoredReport]:
    rows = db.execute(
        "SELECT address, received, report FROM path_reports WHERE nwid = ?", (format_nwid(nwid),)
    )
    out = {}
    for row in rows:
        address = int(row["address"], 16)
        out[address] = StoredReport(address, row["received"], json.loads(row["report"]))
    return out


@contextmanager
def relaxed(conn: sqlite3.Connection) -> Iterator[None]:
    """synchronous=NORMAL for the duration (soft state, see the module docstring)."""
    conn.execute("PRAGMA synchronous = NORMAL")
    try:
        yield
    finally:
        conn.execute("PRAGMA synchronous = FULL")
