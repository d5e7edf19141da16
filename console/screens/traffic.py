"""Tab 4, Traffic: what is moving, live. The node's total with a sparkline; each joined
network's TAP port (frames from and to this host) with rates, totals and a history strip;
each peer's rates; and every drop counter with its reason, biggest first."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.widgets import Sparkline, Static

from .. import fmt
from ..live import LiveStore
from ..widgets.base import LiveView, show
from ..widgets.keyed_table import Cell, Column, KeyedTable

BARS = "▁▂▃▄▅▆▇█"
STRIP_SAMPLES = 16
# Ids never cut; at 80 columns the totals go before the rates and the history strip.
NETWORK_COLUMNS = [
    Column("nwid", "NWID"),
    Column("name", "NAME", priority=2, max_width=16),
    Column("tx", "OUT/s", priority=1),
    Column("rx", "IN/s", priority=1),
    Column("history", "LAST 16 s", priority=3),
    Column("frames", "FRAMES OUT/IN", priority=5),
    Column("bytes", "BYTES OUT/IN", priority=4),
    Column("drops", "WRITE DROPS", priority=4),
]
PEER_COLUMNS = [
    Column("address", "PEER"),
    Column("link", "LINK", priority=1),
    Column("tx", "TX/s", priority=1),
    Column("rx", "RX/s", priority=1),
    Column("history", "LAST 16 s", priority=2),
    Column("sent", "SENT", priority=3),
    Column("received", "RECEIVED", priority=3),
]


def strip(values: Iterable[float], width: int = STRIP_SAMPLES) -> str:
    """A one-line sparkline of the last `width` values, scaled to their maximum."""
    tail = list(values)[-width:]
    top = max(tail, default=0.0)
    if top <= 0:
        return BARS[0] * len(tail)
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))] for v in tail)


def drop_rows(store: LiveStore) -> list[tuple[str, int]]:
    """Every nonzero drop counter: the node's, each network's drop_* counters and rules."""
    counts: dict[str, int] = {}
    if store.status is not None:
        for reason, count in store.status["drops"].items():
            counts[reason] = counts.get(reason, 0) + count
    for network in store.networks.values():
        label = network["name"] or network["nwid"]
        for name, count in network["counters"].items():
            # drop_rule is the sum of the per-rule counts listed next: don't count it twice.
            if name.startswith("drop_") and name != "drop_rule":
                key = f"{label}: {name.removeprefix('drop_').replace('_', ' ')}"
                counts[key] = counts.get(key, 0) + count
        for rule in network["rule_drops"]:
            key = f"{label}: rule {rule['rule']}"
            counts[key] = counts.get(key, 0) + rule["drops"]
    return sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))


class TrafficView(LiveView):
    TOPICS = frozenset({"status", "peers", "networks"})

    def compose(self) -> ComposeResult:
        yield Static(id="traffic-total", classes="label")
        yield Sparkline([], id="traffic-spark")
        yield Static(id="traffic-drops", classes="drops")
        yield KeyedTable(NETWORK_COLUMNS, id="traffic-networks")
        yield KeyedTable(PEER_COLUMNS, id="traffic-peers")

    def focus_main(self) -> None:
        self.query_one("#traffic-peers", KeyedTable).focus()

    def refresh_view(self) -> None:
        store = self.store
        rate = store.node_rates.rate("node")
        counters = store.status["counters"] if store.status else {}
        show(
            self.query_one("#traffic-total", Static),
            f"node out {fmt.rate(rate.tx_bps)} in {fmt.rate(rate.rx_bps)} · sent "
            f"{fmt.bytes_count(counters.get('tx_bytes'))} received "
            f"{fmt.bytes_count(counters.get('rx_bytes'))} · relayed "
            f"{fmt.bytes_count(counters.get('relayed_bytes', 0))}",
        )
        self.query_one("#traffic-spark", Sparkline).data = list(
            store.node_rates.history.get("node", ())
        )
        self.query_one("#traffic-networks", KeyedTable).sync(self._network_rows(store))
        drops = drop_rows(store)
        show(
            self.query_one("#traffic-drops", Static),
            "dropped: " + (" · ".join(f"{reason} {count}" for reason, count in drops) or "nothing"),
        )
        self.query_one("#traffic-peers", KeyedTable).sync(self._peer_rows(store))

    def _network_rows(self, store: LiveStore) -> list[tuple[str, tuple[Cell, ...]]]:
        rows: list[tuple[str, tuple[Cell, ...]]] = []
        for nwid, network in sorted(store.networks.items()):
            port = network["port_counters"]
            rate = store.network_rates.rate(nwid)
            history = store.network_rates.history.get(nwid, ())
            if port is None:
                totals = (fmt.DASH, fmt.DASH, fmt.DASH)
            else:
                totals = (
                    f"{port['frames_read']}/{port['frames_written']}",
                    f"{fmt.bytes_count(port['bytes_read'])}/{fmt.bytes_count(port['bytes_written'])}",
                    str(port["write_drops"]),
                )
            cells = (
                nwid,
                network["name"] or fmt.DASH,
                fmt.rate(rate.tx_bps),
                fmt.rate(rate.rx_bps),
                strip(history),
                *totals,
            )
            rows.append((nwid, cells))
        return rows

    def _peer_rows(self, store: LiveStore) -> list[tuple[str, tuple[Cell, ...]]]:
        def busiest(address: str) -> tuple[float, str]:
            return (-(store.peer_rates.rate(address).total_bps or 0.0), address)

        rows: list[tuple[str, tuple[Cell, ...]]] = []
        for address in sorted(store.peers, key=busiest):
            peer = store.peers[address]
            rate = store.peer_rates.rate(address)
            counters = peer["counters"]
            cells = (
                address,
                fmt.link(peer["link"]),
                fmt.rate(rate.tx_bps),
                fmt.rate(rate.rx_bps),
                strip(store.peer_rates.history.get(address, ())),
                fmt.bytes_count(counters.get("tx_bytes", 0)),
                fmt.bytes_count(counters.get("rx_bytes", 0)),
            )
            rows.append((address, cells))
        return rows
