"""NodeHeader: one line that answers "is my node online?" before anything else.

    ztui  8056c2e21c  ● ONLINE  0.1.0  roots 2/2  NAT cone  up 3h 12m  ↑1.2kB/s ↓30kB/s

While the daemon is unreachable it says so instead, in the error colour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.widgets import Static

from .. import fmt
from ..render import duration
from .base import show

if TYPE_CHECKING:
    from ..app import ZtuiApp


def nat_short(nat: str) -> str:
    """The NAT verdict in a word: the API's sentence is for the detail views."""
    head = nat.split(":")[0]
    if "(cone)" in head:
        return "cone"
    if head.startswith("none"):
        return "none (public)"
    return head.split(" (")[0]


class NodeHeader(Static):
    """Redraws on the app's "status" and "connection" topics."""

    DEFAULT_CSS = "NodeHeader { height: 1; }"

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    def on_mount(self) -> None:
        self.ztui.changed.subscribe(self, self._changed)
        self._redraw()

    def _changed(self, topic: str) -> None:
        if topic in ("status", "connection"):
            self._redraw()

    def _redraw(self) -> None:
        app = self.ztui
        line = Text()
        line.append(" ztui ", style="bold reverse")
        status = app.store.status
        if app.offline_reason is not None or status is None:
            what = "connecting…" if app.offline_reason is None else "cannot reach overlayd"
            line.append(f"  {app.client.endpoint}  ")
            line.append(what, style="bold red" if app.offline_reason else "yellow")
            show(self, line)
            return
        state = status["state"]
        line.append(f" {status['address']}  ")
        line.append(f"● {state}", style=f"bold {fmt.STATE_STYLES.get(state, '')}")
        roots = f"roots {status['roots_reachable']}/{status['roots_total']}"
        roots_style = "" if status["roots_reachable"] else "red"
        line.append(f"  {status['version']}  ")
        line.append(roots, style=roots_style)
        line.append(f"  NAT {nat_short(status['nat'])}  up {duration(status['uptime_s'])}")
        rate = app.store.node_rates.rate("node")
        if rate.tx_bps is not None:
            line.append(f"  ↑{fmt.rate(rate.tx_bps)} ↓{fmt.rate(rate.rx_bps)}", style="dim")
        if app.demo_notice:
            line.append("  SIMULATED", style="bold yellow")
        show(self, line)
