"""GET /controller/networks/{nwid}/paths: the controller's records into pathview.py."""

from __future__ import annotations

from collections.abc import Iterable

from overlay_core.controller.records import MemberRecord, NetworkRecord
from overlay_core.controller.reports import StoredReport
from overlay_core.proto.identity import format_address
from overlay_core.proto.netconf import format_nwid

from .pathview import Member, Report
from .pathview import paths_view as build
from .schema import PathsJson


def paths_view(
    network: NetworkRecord,
    members: Iterable[MemberRecord],
    reports: dict[int, StoredReport],
    now: float,
    limit: int | None = None,
) -> PathsJson:
    """The view of `network`'s authorized members from their stored reports."""
    return build(
        format_nwid(network.nwid),
        network.name,
        [Member(format_address(m.address), m.name, list(m.ips)) for m in members if m.authorized],
        {format_address(a): Report(r.received, r.report) for a, r in reports.items()},
        now,
        limit,
    )
