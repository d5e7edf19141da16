"""GET /controller/networks/{nwid}/paths: the controller's records into pathview.py.

The view is every pair of members: 19,900 for 200 members (about 0.1-0.2 s to build here),
499,500 for 1,000 (seconds). So it is built off the event loop (`asyncio.to_thread`: the
loop keeps answering and forwarding while it runs, sharing the GIL), one build at a time,
and a view at most CACHE_S old is served again, so several consoles polling one network
cost one build per CACHE_S. The records are read on the loop's thread (SQLite
connections stay on theirs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

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


CACHE_S = 2.0
CACHE_ENTRIES = 16


@dataclass
class PathsCache:
    """Views recently built, by (nwid, limit), and the lock that makes builds one at a time."""

    clock: Callable[[], float] = time.monotonic
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    views: dict[tuple[int, int | None], tuple[float, PathsJson]] = field(default_factory=dict)

    async def view(
        self,
        nwid: int,
        limit: int | None,
        read: Callable[[], tuple[NetworkRecord, list[MemberRecord], dict[int, StoredReport]]],
        now: float,
    ) -> PathsJson:
        async with self.lock:
            kept = self.views.get((nwid, limit))
            if kept is not None and 0 <= self.clock() - kept[0] < CACHE_S:
                return kept[1]
            network, members, reports = read()
            built = await asyncio.to_thread(paths_view, network, members, reports, now, limit)
            if len(self.views) >= CACHE_ENTRIES:
                self.views.clear()
            self.views[(nwid, limit)] = (self.clock(), built)
            return built
