"""Cell formatting for the console's tables: compact numbers and the colours that carry
meaning. Plain-text helpers (ago, ms, duration) come from render.py, shared with the CLI.

Colours are ANSI names ("green", "yellow", "red"), not hex: they stay legible on a
16-colour console (TERM=linux, screen) where the terminal's own palette draws them.
"""

from __future__ import annotations

from rich.text import Text

from overlay_core.api.schema import Link, NetworkState, NodeState

from .render import ago, ms

# What a colour means, wherever it is used.
GOOD, WARN, BAD, MUTED = "green", "yellow", "red", "bright_black"

LINK_STYLES: dict[str, str] = {Link.DIRECT: GOOD, Link.RELAY: WARN, Link.TCP: BAD, Link.NONE: MUTED}
STATE_STYLES: dict[str, str] = {
    NetworkState.OK: GOOD,
    NodeState.ONLINE: GOOD,
    NodeState.TUNNELED: WARN,
    NetworkState.REQUESTING_CONFIGURATION: WARN,
    NetworkState.ACCESS_DENIED: WARN,
    NodeState.OFFLINE: BAD,
    NetworkState.NOT_FOUND: BAD,
    NetworkState.PORT_ERROR: BAD,
    # a member's state (MemberState)
    "pending": f"bold {WARN}",
    "authorized": GOOD,
    "deauthorized": MUTED,
}
DASH = "-"

__all__ = ["DASH", "ago", "bytes_count", "link", "ms", "rate", "state"]


def _scaled(value: float, units: tuple[str, ...]) -> str:
    for unit in units[:-1]:
        if abs(value) < 1000:
            return f"{value:.0f}{unit}" if unit == units[0] else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}{units[-1]}"


def rate(bps: float | None) -> str:
    """Bytes per second, compact: 0B/s, 950B/s, 12.3kB/s, 1.2MB/s."""
    if bps is None:
        return DASH
    return _scaled(bps, ("B/s", "kB/s", "MB/s", "GB/s"))


def bytes_count(count: int | None) -> str:
    """A byte total: 512B, 12.3kB, 4.1MB, 2.0GB."""
    if count is None:
        return DASH
    return _scaled(float(count), ("B", "kB", "MB", "GB", "TB"))


def link(name: str) -> Text:
    return Text(name, style=LINK_STYLES.get(name, ""))


def state(name: str, label: str | None = None) -> Text:
    return Text(label or name, style=STATE_STYLES.get(name, ""))
