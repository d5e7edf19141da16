"""The tables bench-overlay prints, and the ztui/tinc ratios in its results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

IMPL_ORDER = ("underlay", "tinc", "ztui", "ztui-nogso")


def _key(row: dict[str, Any]) -> tuple[int, float, str]:
    return row["underlay_mtu"], row["loss_pct"], row["path"]


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put ztui's throughput over tinc's (same MTU, loss and path) on each ztui row; the
    list of all ratios, for the results."""
    tinc = {_key(r): r for r in rows if r["impl"] == "tinc"}
    ratios = []
    for row in rows:
        if not row["impl"].startswith("ztui") or _key(row) not in tinc:
            continue
        ours, theirs = row["tcp"].get("gbit_per_s"), tinc[_key(row)]["tcp"].get("gbit_per_s")
        if ours is None or not theirs:
            continue
        row["ratio_ztui_tinc"] = round(ours / theirs, 3)
        ratios.append(
            {
                "underlay_mtu": row["underlay_mtu"],
                "loss_pct": row["loss_pct"],
                "path": row["path"],
                "impl": row["impl"],
                "ztui_gbit_per_s": round(ours, 4),
                "tinc_gbit_per_s": round(theirs, 4),
                "ratio": row["ratio_ztui_tinc"],
            }
        )
    return ratios


def _rtt(ping: dict[str, Any] | None) -> str:
    if not ping:
        return "-"
    if "error" in ping:
        return "error"
    text = f"{ping['avg_ms']:.2f}"
    if ping.get("loss_pct"):
        text += f" ({ping['loss_pct']:.0f}%)"
    return text


def _row_cells(row: dict[str, Any]) -> list[str]:
    tcp, cpu = row["tcp"], row.get("cpu", {})
    gbit = f"{tcp['gbit_per_s']:.3f}" if "gbit_per_s" in tcp else "error"
    retr = str(tcp.get("retransmits", "-")) if "gbit_per_s" in tcp else "-"
    per_gbit = cpu.get("seconds_per_gbit")
    rss = [v for v in row.get("rss_mb", {}).values() if v is not None]
    ratio = row.get("ratio_ztui_tinc")
    return [
        f"{row['underlay_mtu']}",
        f"{row['loss_pct']:g}%",
        row["path"],
        row["impl"],
        gbit,
        retr,
        _rtt(row.get("ping_idle")),
        _rtt(row.get("ping_load")),
        f"{per_gbit:.1f}" if per_gbit is not None else "-",
        "/".join(f"{v:.0f}" for v in rss) if rss else "-",
        f"{ratio:.2f}x" if ratio is not None else "",
    ]


HEADERS = ["MTU", "loss", "path", "impl", "Gbit/s", "retr", "RTT idle", "RTT load",
           "CPU s/Gbit", "RSS MB", "ztui/tinc"]  # fmt: skip
RIGHT = {0, 1, 4, 5, 6, 7, 8}


def print_matrix(rows: Sequence[dict[str, Any]], seconds: int, pings: int) -> None:
    print(
        f"\nEvery run: pc1 -> pc2, iperf3 1 TCP stream {seconds} s (Gbit/s received, "
        f"retransmits); RTT avg ms (ping loss) idle ({pings} pings) and under load (ping "
        "beside iperf3); CPU: user+system seconds of the daemons (both ends, and the relay "
        "when relayed) per Gbit received; RSS: each daemon's, pc1/pc2[/relay]; ztui/tinc: "
        "throughput ratio, same MTU, loss and path."
    )
    table = [HEADERS] + [_row_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    for n, line in enumerate(table):
        if n > 1 and rows[n - 2]["underlay_mtu"] != rows[n - 1]["underlay_mtu"]:
            print()
        cells = [c.rjust(w) if i in RIGHT else c.ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]  # fmt: skip
        print("  ".join(cells).rstrip())
    relayed = [r for r in rows if "relay_traffic" in r]
    if relayed:
        udp = sum(r["relay_traffic"]["udp_in"] for r in relayed)
        tcp = sum(r["relay_traffic"]["tcp_in"] for r in relayed)
        print(f"RELAY runs: the relay's namespace (root1: ztui's root, tinc's hub) received "
              f"{udp:,} UDP datagrams and {tcp:,} TCP segments in all")  # fmt: skip
    lossy = [r for r in rows if r.get("loss_dropped")]
    if lossy:
        parts = []
        for impl in IMPL_ORDER:
            mine = [r["loss_dropped"] for r in lossy if r["impl"] == impl]
            packets = sum(d["packets"] for d in mine)
            if packets:
                size = sum(d["bytes"] for d in mine) / packets
                parts.append(f"{impl} {packets:,} (avg {size:,.0f} bytes)")
        print("lossy runs: the routers' random drops took " + ", ".join(parts))
    notes = [r for r in rows if r["impl"].startswith("ztui")
             and r.get("link") not in (None, r["path"])]  # fmt: skip
    for r in notes:
        print(f"note: ztui's link was {r['link']} after the {r['path']} run "
              f"(MTU {r['underlay_mtu']}, loss {r['loss_pct']:g}%)")  # fmt: skip


def print_ratios(ratios: Sequence[dict[str, Any]]) -> None:
    """One line per underlay MTU, one column per (path, loss): ztui / tinc throughput."""
    if not ratios:
        return
    columns = sorted({(r["path"], r["loss_pct"]) for r in ratios})
    lines = sorted({(r["underlay_mtu"], r["impl"]) for r in ratios}, key=lambda k: (-k[0], k[1]))
    by = {(r["underlay_mtu"], r["impl"], r["path"], r["loss_pct"]): r["ratio"] for r in ratios}
    names = [f"{path} {loss:g}%" for path, loss in columns]
    print("\n(ztui)/tinc throughput" + " " * 14 + "".join(f"  {n:>10}" for n in names))
    for mtu, impl in lines:
        cells = []
        for path, loss in columns:
            value = by.get((mtu, impl, path, loss))
            cells.append(f"{value:.2f}x" if value is not None else "-")
        label = f"{impl}, underlay MTU {mtu}"
        print(f"{label:<36}" + "".join(f"  {c:>10}" for c in cells))


def print_legacy(runs: Sequence[dict[str, Any]], seconds: int, pings: int) -> None:
    """The table bench-overlay printed before tinc was added (DIRECT, no added loss)."""
    runs = [r for r in runs if "overlay" in r or "underlay" in r]
    if not runs:
        return
    print(f"\nTCP: iperf3, 1 stream, {seconds} s, pc1 -> pc2; "
          f"RTT: {pings} pings, min/avg/max")  # fmt: skip
    print(f"{'underlay MTU':>12}  {'path':<9} {'TCP':>16}  RTT")
    for run in runs:
        for kind in ("underlay", "overlay"):
            if kind not in run:
                continue
            tcp, rtt = run[kind]["tcp"], run[kind]["ping"]
            tcp_text = tcp["error"] if "error" in tcp else f"{tcp['mbit_per_s']:8.1f} Mbit/s"
            rtt_text = (
                rtt["error"]
                if "error" in rtt
                else f"{rtt['min_ms']:.3f}/{rtt['avg_ms']:.3f}/{rtt['max_ms']:.3f} ms"
            )
            print(f"{run['underlay_mtu']:>12}  {kind:<9} {tcp_text:>16}  {rtt_text}")
        pmtu = run["path_mtu"]
        print(f"{'':>12}  (overlay path MTU {pmtu['pc1_to_pc2']}/{pmtu['pc2_to_pc1']}, "
              f"TAP MTU {run['overlay_mtu']})")  # fmt: skip
