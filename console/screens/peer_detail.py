"""The peer detail screen (Enter on a peer): its name and overlay IPs in each network, every
path, a latency sparkline, why it is relayed in plain words, and the actions that help:
ping through the overlay, retry a direct path, probe the path MTU.

It shows what the app's pollers already fetched (the store), so opening it costs no
request; only the actions call the API. The ping log sits under the scrolling part, so at
80x24 the replies show where the user is looking, however long the relay reason is.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Sparkline, Static

from overlay_core.api.schema import PathJson, PeerJson, PeerNameJson

from .. import fmt, render
from ..client import ApiError
from ..live import peer_latency_ms
from ..widgets.base import show
from ..widgets.header import NodeHeader
from ..widgets.keyed_table import Cell, Column, KeyedTable
from ..widgets.requests_bar import RequestsBar

if TYPE_CHECKING:
    from ..app import ZtuiApp

PING_COUNT = 4
PING_TIMEOUT_S = 2.0
# The endpoint is the path's identity: never cut. At 80 columns the counters go first.
PATH_COLUMNS = [
    Column("endpoint", "ENDPOINT"),
    Column("pref", "PREF", priority=2),
    Column("kind", "KIND", priority=6),
    Column("transport", "VIA", priority=3),
    Column("alive", "ALIVE", priority=1),
    Column("latency", "LATENCY", priority=1),
    Column("mtu", "MTU", priority=3),
    Column("last_tx", "LAST TX", priority=5),
    Column("last_rx", "LAST RX", priority=4),
    Column("packets", "PKTS TX/RX", priority=7),
    Column("bytes", "BYTES TX/RX", priority=6),
]


def path_cells(path: PathJson) -> tuple[Cell, ...]:
    latency = path["latency"]
    rtt = latency["smoothed_ms"] if latency["smoothed_ms"] is not None else latency["last_ms"]
    mtu = f"{path['mtu']}{'…' if path['mtu_searching'] else ''}"
    return (
        path["endpoint"],
        Text("yes", style=fmt.GOOD) if path["preferred"] else "",
        path["kind"],
        path["transport"],
        Text("alive", style=fmt.GOOD) if path["alive"] else Text("dead", style=fmt.BAD),
        fmt.ms(rtt),
        mtu,
        fmt.ago(path["last_send_ago_s"]),
        fmt.ago(path["last_receive_ago_s"]),
        f"{path['packets_sent']}/{path['packets_received']}",
        f"{fmt.bytes_count(path['bytes_sent'])}/{fmt.bytes_count(path['bytes_received'])}",
    )


def name_line(entry: PeerNameJson) -> str:
    """`in home (8056c2e21c000001) as nas: 10.147.17.22, fd00::22`, as markup. The name
    comes from a controller's admin: escaped, so "[b]" in it is shown, not obeyed."""
    network = escape(render.printable(entry["network"])) or "a network"
    name = escape(render.printable(entry["name"].strip()))
    ips = escape(", ".join(render.printable(ip) for ip in entry["ips"])) or "no IP"
    as_name = f" as [b]{name}[/b]" if name else ", no name"
    return f"in {network} ({entry['nwid']}){as_name}: {ips}"


def summary_text(peer: PeerJson) -> str:
    """Who the peer is (its name in each network both are in), its link, and totals."""
    counters = peer["counters"]
    session = fmt.ago(peer["session_age_s"]) if peer["session_age_s"] is not None else "none"
    lines = [
        f"[b]{peer['address']}[/b]  {peer['role']}  version {peer['version'] or '-'}  "
        f"link [b]{peer['link']}[/b]  latency {fmt.ms(peer_latency_ms(peer))}"
        f"  jitter {fmt.ms(peer['latency']['jitter_ms'])}",
        *(name_line(entry) for entry in peer.get("names", [])),
        f"preferred path {peer['preferred_path'] or '-'}  session {session}, "
        f"{peer['rekeys']} rekeys  sent {fmt.bytes_count(counters.get('tx_bytes', 0))}  "
        f"received {fmt.bytes_count(counters.get('rx_bytes', 0))}",
    ]
    return "\n".join(lines)


def reason_text(peer: PeerJson) -> str | None:
    """Why a peer is relayed, in plain words; None for a direct peer."""
    reason = peer["relay_reason"]
    if not render.is_relayed(peer) or reason is None:
        return None
    lines = [f"[b]{peer['link']} because:[/b] {reason['summary']}"]
    lines += [f"  • {detail}" for detail in reason["details"]]
    learned = ", ".join(reason["endpoints_learned"]) or "none yet"
    lines.append(
        f"  punches sent {reason['punch_attempts']}, answered {reason['punch_replies']}; "
        f"endpoints learned: {learned}"
    )
    lines.append(f"  this node's NAT: {reason['local_nat']}")
    return "\n".join(lines)


class PeerScreen(Screen[None]):
    """One peer in full. Live: it redraws whenever the app's peer poll lands."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("p", "ping", "Ping"),
        Binding("r", "retry_direct", "Retry direct"),
        Binding("m", "probe_mtu", "Probe MTU"),
    ]

    @dataclass
    class PingLine(Message):
        text: str

    def __init__(self, address: str, *, ping: bool = False) -> None:
        super().__init__()
        self.address = address
        self._ping_on_open = ping

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    def compose(self) -> ComposeResult:
        yield NodeHeader()
        with VerticalScroll(id="peer-body"):
            yield Static(id="peer-summary")
            yield Static(id="peer-reason", classes="reason")
            yield KeyedTable(PATH_COLUMNS, id="peer-paths")
            yield Static(id="latency-label", classes="label")
            yield Sparkline([], id="latency-spark")
        yield RichLog(id="ping-log", max_lines=200, wrap=True)
        yield RequestsBar()
        yield Footer()

    def on_mount(self) -> None:
        self.ztui.changed.subscribe(self, self._changed)
        self._redraw()
        log = self.query_one("#ping-log", RichLog)
        log.write("p: ping through the overlay · r: retry a direct path · m: probe path MTU")
        if self._ping_on_open:
            self.action_ping()

    def _changed(self, topic: str) -> None:
        if topic == "peers":
            self._redraw()

    def _redraw(self) -> None:
        peer = self.ztui.store.peers.get(self.address)
        summary = self.query_one("#peer-summary", Static)
        if peer is None:
            show(summary, f"[b]{self.address}[/b]: not among this node's peers (any more)")
            return
        show(summary, summary_text(peer))
        reason = reason_text(peer)
        box = self.query_one("#peer-reason", Static)
        box.display = reason is not None
        show(box, reason or "")
        paths = sorted(peer["paths"], key=lambda p: (not p["preferred"], not p["alive"]))
        self.query_one(KeyedTable).sync([(p["endpoint"], path_cells(p)) for p in paths])
        history = list(self.ztui.store.latency.get(self.address, ()))
        label = "latency: no samples yet"
        if history:
            low, high = min(history), max(history)
            label = (
                f"latency, last {len(history)} polls: min {fmt.ms(low)}  "
                f"avg {fmt.ms(sum(history) / len(history))}  max {fmt.ms(high)}"
            )
        show(self.query_one("#latency-label", Static), label)
        self.query_one(Sparkline).data = history

    # -- actions

    def action_ping(self) -> None:
        log = self.query_one("#ping-log", RichLog)
        log.add_class("-active")
        log.write(f"ping {render.who(self.address, self._label())} through the overlay:")
        self._ping()

    def _label(self) -> str:
        """The peer's name and IP for the ping log; "" while it has none (or is gone)."""
        peer = self.ztui.store.peers.get(self.address)
        return render.peer_label(peer) if peer is not None else ""

    @work(exclusive=True, group="ping")
    async def _ping(self) -> None:
        client = self.ztui.client
        rtts: list[float] = []
        sent = 0
        for index in range(PING_COUNT):
            sent += 1
            try:
                reply = await client.echo(self.address, timeout_s=PING_TIMEOUT_S)
            except ApiError as exc:
                if exc.error != "timeout":
                    self.post_message(self.PingLine(f"ping failed: {exc}"))
                    return
                self.post_message(self.PingLine(f"no reply within {PING_TIMEOUT_S:g} s"))
            else:
                rtts.append(reply["rtt_ms"])
                self.post_message(self.PingLine(render.pong_line(reply, self._label())))
            if index + 1 < PING_COUNT:
                await asyncio.sleep(self.ztui.intervals.ping_s)
        for line in render.ping_summary(self.address, sent, rtts, self._label()):
            self.post_message(self.PingLine(line))

    @on(PingLine)
    def _ping_line(self, message: PingLine) -> None:
        self.query_one("#ping-log", RichLog).write(message.text)

    def action_retry_direct(self) -> None:
        self.ztui.retry_direct(self.address)

    def action_probe_mtu(self) -> None:
        self.ztui.probe_mtu(self.address)
