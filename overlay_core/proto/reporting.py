"""Sending path reports to a network's controller, and taking them in as one.

The format, and when a member sends, are in report.py. This is the node's side of it:

- `Reporter.tick` (once a second at most) builds, for every network this node is an
  admitted member of with reporting on, what it would report now, and sends it when it
  is due. A node that is its own network's controller hands its report over as an effect,
  as it does its config requests.
- `Reporter.on_report` is a controller receiving PATH_REPORT. A report costs the
  controller a signature check and an SQLite write, so each sender gets a token bucket
  per network (REPORT_BURST, refilled at REPORT_RATE/s) and all of them share one
  (REPORT_TOTAL_*), spent before anything is verified; the bucket map is bounded
  (ratelimit.KeyedBuckets). Whether the sender is an authorized
  member is the controller's question, answered in the I/O layer (controller/reports.py).

The Reporter reads the node through `Source`: the `Sender` it sends with (sender.py),
the facts netcheck reads, and two more, never the node itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .diagnose import infer_nat, link_of, reason_code
from .effects import Effect, PathReportIn
from .netcheck import Facts, netcheck
from .netconf import controller_of
from .peer import Peer
from .ratelimit import KeyedBuckets, TokenBucket
from .report import (
    MAX_ENTRIES,
    MAX_LATENCY_MS,
    REPORT_EVERY_S,
    REPORT_MIN_GAP_S,
    PathReport,
    ReportEntry,
    endpoint_kind,
)
from .sender import Sender
from .states import Link, NetworkState
from .vnet import Network
from .wire import MalformedError, Reader, Verb

if TYPE_CHECKING:
    from .membership import Memberships

CHECK_EVERY_S = 1.0
# Per sender and network: a member's link changes come in bursts (several peers move at
# once), and 1 per 2 s is 15 times what a steady member needs. Keyed by network too, so a
# member of many networks of one controller, whose heartbeats fall due in the same tick,
# is not cut in some of them.
REPORT_RATE = 0.5
REPORT_BURST = 4.0
# All senders together: each report costs a signature check and an SQLite write. 1,000
# members heartbeating every 30 s send 33/s; strangers with fresh identities cannot make
# the controller do more than this.
REPORT_TOTAL_RATE = 100.0
REPORT_TOTAL_BURST = 200.0


class Source(Sender, Facts, Protocol):
    """What a report is made of and sent with: the node's core (outbound.Outbound)."""

    @property
    def started(self) -> float:
        """When the node started (its uptime counts from here)."""
        ...

    def root_link(self, now: float) -> Link:
        """How peers without a direct path are reached now (outbound.Outbound)."""
        ...


@dataclass(slots=True)
class _Sent:
    at: float
    shape: tuple[object, ...]


class Reporter:
    def __init__(self, node: Source, memberships: Memberships) -> None:
        self._node = node
        self._memberships = memberships
        self._sent: dict[int, _Sent] = {}  # nwid -> our last report on it
        self._stopped: set[int] = set()  # networks told this process that we stopped
        self._sequence = 0
        self._next_check = 0.0
        self._buckets: KeyedBuckets[tuple[int, int]] = KeyedBuckets(REPORT_RATE, REPORT_BURST)
        self._total = TokenBucket.full(REPORT_TOTAL_RATE, REPORT_TOTAL_BURST)

    # ------------------------------------------------------------------ member side

    def tick(self, now: float) -> list[Effect]:
        node = self._node
        self._buckets.expire(now)
        if now < self._next_check:
            return []
        self._next_check = now + CHECK_EVERY_S
        out: list[Effect] = []
        reporting = set()
        nat: tuple[str, str] | None = None
        for nwid, network in self._memberships.networks.items():
            if network.state is not NetworkState.OK:
                self._stopped.discard(nwid)  # denied or left: say it again when back
                continue
            if not network.settings.report:
                if nwid not in self._stopped:  # once: switched off, or off since start
                    self._stopped.add(nwid)
                    out += self._send(self._stop(network, now), now)
                continue
            self._stopped.discard(nwid)
            reporting.add(nwid)
            sent = self._sent.get(nwid)
            if sent is not None and 0 <= now - sent.at < REPORT_MIN_GAP_S:
                continue  # not even worth building
            if nat is None:  # (the mapping we report, the verdict the reasons use)
                local = infer_nat(node.observed, node.config.local_endpoints)
                nat = (netcheck(node, now).mapping, local)
            report = self.build(network, nat[0], nat[1], now)
            if (
                sent is not None
                and 0 <= now - sent.at < REPORT_EVERY_S
                and report.shape() == sent.shape
            ):
                continue
            self._sent[nwid] = _Sent(now, report.shape())
            out += self._send(report, now)
        for nwid in [n for n in self._sent if n not in reporting]:
            del self._sent[nwid]  # left, denied or switched off: report at once if back
        return out

    def build(self, network: Network, nat: str, local_nat: str, now: float) -> PathReport:
        """What this node would tell `network`'s controller now (sequence not yet drawn)."""
        node = self._node
        root_link = node.root_link(now)
        tunneled = root_link == Link.TCP
        entries = []
        for address in sorted(network.members()):
            peer = node.peers.get(address)
            if address == node.address or peer is None:
                continue
            best = peer.best_path(now)
            link = link_of(peer, root_link, now) if peer.last_receive is not None else Link.NONE
            latency = best.latency if best is not None else peer.relay_latency
            smoothed = latency.smoothed_s
            entries.append(
                ReportEntry(
                    address=address,
                    link=link,
                    kind=(
                        "unknown"
                        if link == Link.NONE
                        else endpoint_kind(best.endpoint if best is not None else None)
                    ),
                    reason=reason_code(peer, link, local_nat, tunneled)
                    if link != Link.NONE
                    else "",
                    # 0.1 ms, as the wire carries it: the controller's own report, handed
                    # over in-process, reads the same as everyone else's.
                    latency_ms=(
                        None
                        if smoothed is None or link == Link.NONE
                        else round(min(smoothed * 1000, MAX_LATENCY_MS), 1)
                    ),
                )
            )
        return PathReport(
            nwid=network.nwid,
            member=node.address,
            sequence=0,
            uptime_s=int(max(0.0, now - node.started)),
            nat=nat,
            tcp_fallback=tunneled,
            truncated=len(entries) > MAX_ENTRIES,
            version=node.config.version,
            entries=tuple(entries[:MAX_ENTRIES]),
        )

    def _stop(self, network: Network, now: float) -> PathReport:
        node = self._node
        return PathReport(
            nwid=network.nwid,
            member=node.address,
            sequence=0,
            uptime_s=int(max(0.0, now - node.started)),
            nat="unknown",
            tcp_fallback=False,
            truncated=False,
            version=node.config.version,
            entries=(),
            stopped=True,
        )

    def _send(self, report: PathReport, now: float) -> list[Effect]:
        node = self._node
        self._sequence = (self._sequence % 0xFFFFFFFF) + 1
        numbered = dataclasses.replace(report, sequence=self._sequence)
        controller = controller_of(report.nwid)
        if controller == node.address:
            return [PathReportIn(numbered)]
        node.counters["reports_sent"] += 1
        signed = numbered.sign(node.identity)
        return node.send_to_address(controller, Verb.PATH_REPORT, signed, now)

    # ------------------------------------------------------------------ controller side

    def on_report(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        """PATH_REPORT from `peer` (authenticated by its session): checked and handed on."""
        node, sender = self._node, peer.address
        data = reader.rest()
        nwid = int.from_bytes(data[1:9], "big") if len(data) >= 9 else 0
        if len(data) < 9 or controller_of(nwid) != node.address:
            node.drops["report_not_ours"] += 1
            return []
        if not self._buckets.take((sender, nwid), now) or not self._total.take(now):
            node.drops["report_rate"] += 1
            return []
        try:
            report = PathReport.from_signed(data, peer.identity)
        except MalformedError:
            node.drops["bad_report"] += 1
            return []
        node.counters["reports_received"] += 1
        return [PathReportIn(report)]
