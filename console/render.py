"""Plain-text renderings of API JSON for the `ztui` subcommands. Pure: dicts in, lines out.

The layouts follow `zerotier-cli` where it has an equivalent (`info`, `peers`), so people
who know that tool read these at a glance; what it lacks (why a peer is relayed, which
path an echo came back on) is added on indented lines or at the end of a line.
"""

from __future__ import annotations

from collections.abc import Sequence

from overlay_core.api.schema import EchoJson, PeerJson, StatusJson

PEER_COLUMNS = ("ADDRESS", "VER", "ROLE", "LAT", "LINK", "LASTTX", "LASTRX", "PATH")


def ago(seconds: float | None) -> str:
    """Compact time since: 0.4s, 12s, 5m, 3h; '-' for never."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}ms" if value >= 100 else f"{value:.1f}ms"


def info_lines(status: StatusJson) -> list[str]:
    external = ", ".join(status["external_endpoints"]) or "unknown (no root has answered)"
    rows = [
        ("role", status["role"]),
        ("roots", f"{status['roots_reachable']}/{status['roots_total']} reachable"),
        ("external", external),
        ("nat", status["nat"]),
        ("uptime", duration(status["uptime_s"])),
        ("peers", str(status["peer_count"])),
    ]
    dropped = sum(status["drops"].values())
    if dropped:
        top = sorted(status["drops"].items(), key=lambda kv: -kv[1])[:3]
        rows.append(("drops", f"{dropped} ({', '.join(f'{k} {v}' for k, v in top)})"))
    lines = [f"info {status['address']} {status['version']} {status['state']}"]
    lines += [f"  {key:<9} {value}" for key, value in rows]
    return lines


def _peer_row(peer: PeerJson) -> tuple[str, ...]:
    latency = peer["latency"]
    rtt = latency["smoothed_ms"] if latency["smoothed_ms"] is not None else latency["last_ms"]
    return (
        peer["address"],
        peer["version"] or "-",
        peer["role"],
        ms(rtt),
        peer["link"],
        ago(peer["last_send_ago_s"]),
        ago(peer["last_receive_ago_s"]),
        peer["preferred_path"] or "-",
    )


def peers_lines(peers: Sequence[PeerJson]) -> list[str]:
    rows = [PEER_COLUMNS, *(_peer_row(p) for p in peers)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(PEER_COLUMNS) - 1)]
    lines: list[str] = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        peer = peers[index - 1] if index else None
        if peer is not None and peer["link"] in ("RELAY", "TCP") and peer["relay_reason"]:
            lines.append(f"    {peer['link'].lower()} because: {peer['relay_reason']['summary']}")
    if not peers:
        lines.append("(no peers yet)")
    return lines


def pong_line(reply: EchoJson) -> str:
    via = f"{reply['link']} through root {reply['relay']}" if reply["relay"] else reply["link"]
    return f"pong from {reply['peer']}: {reply['rtt_ms']:.1f} ms via {reply['endpoint']} ({via})"


def ping_summary(address: str, sent: int, rtts_ms: Sequence[float]) -> list[str]:
    received = len(rtts_ms)
    loss = 100.0 * (sent - received) / sent if sent else 0.0
    line = f"{sent} sent, {received} received, {loss:.0f}% loss"
    if rtts_ms:
        avg = sum(rtts_ms) / received
        line += f", rtt min/avg/max {min(rtts_ms):.1f}/{avg:.1f}/{max(rtts_ms):.1f} ms"
    return [f"--- {address} ping statistics ---", line]
