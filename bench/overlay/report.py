"""The tables bench-overlay prints, and what its results add to the rows: the ztui/tinc
ratios, and on each DIRECT and DIRECT-WHOLE row the bare-UDP ceiling of its MTU, loss and
path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

IMPL_ORDER = ("underlay", "udp", "tinc", "ztui", "ztui-nogso", "ztui-off")
# The bare-UDP rows (bench/overlay/bare_udp.py) are no lines of the full table: their
# numbers are a column on every DIRECT (and DIRECT-WHOLE) line, and lines of their own
# below it.
BARE_UDP = "udp"
# bare_udp.MODES, in the column's order; a results file from before mmsg lacks that mode.
BARE_MODES = ("single", "mmsg", "gso")
# The DIRECT rig with UDP segmentation offload left on the hosts' uplinks (bench_overlay.py
# docstring). Its bare-UDP row holds the gso mode only: the others make no GSO sends.
DIRECT_WHOLE = "DIRECT-WHOLE"
# Paths with a bare-UDP row (the relayed path has no port forward).
BARE_PATHS = ("DIRECT", DIRECT_WHOLE)
# The DIRECT rig with a WAN's round trip added (bench/overlay/wan.py).
DIRECT_WAN = "DIRECT-WAN"
# The link state ztui reports on each path (DIRECT-WHOLE and DIRECT-WAN are DIRECT links).
LINK_OF = {DIRECT_WHOLE: "DIRECT", DIRECT_WAN: "DIRECT"}
WHOLE_LEGEND = (
    f"{DIRECT_WHOLE}: DIRECT with UDP segmentation offload left on the hosts' uplinks (the "
    "veth default): a GSO batch crosses both routers as one packet and is split at pc2's "
    "socket, so the routers' per-datagram forwarding, which on this rig runs on the same "
    "two cores as both ends, drops out; 0% loss only (a drop would take a whole batch)."
)


def wan_legend(rows: Sequence[dict[str, Any]]) -> str:
    """What the DIRECT-WAN lines are, with the round trip and congestion control used."""
    wan = [r for r in rows if r["path"] == DIRECT_WAN]
    added = sorted({float(r["wan_rtt_ms"]) for r in wan if r.get("wan_rtt_ms") is not None})
    used = sorted({c for r in wan if (c := r.get("tcp", {}).get("congestion"))})
    seconds = sorted({int(r["iperf3_seconds"]) for r in wan if r.get("iperf3_seconds")})
    return (
        f"{DIRECT_WAN}: DIRECT with {'/'.join(f'{ms:g}' for ms in added) or '?'} ms added to "
        "every round trip, as between two cities (home2's router delays what it receives "
        f"from the WAN: bench/overlay/wan.py), iperf3 under {', '.join(used) or '?'}"
        + (f" for {'/'.join(map(str, seconds))} s" if seconds else "")
        + ". A Python delay line: the underlay's 0% line is its ceiling, not the path's."
    )


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


def add_bare_udp(rows: list[dict[str, Any]]) -> None:
    """Put the bare-UDP Gbit/s (one datagram per send, sendmmsg, GSO) of the same MTU, loss
    and path on each DIRECT or DIRECT-WHOLE row of another impl, as `bare_udp_gbit_per_s`
    (None where that mode failed, no key where the udp row has no such mode: one from
    before mmsg, or a DIRECT-WHOLE one): the ceiling that row's datagrams had on this rig."""
    bare = {_key(r): r["bare_udp"] for r in rows if r["impl"] == BARE_UDP}
    for row in rows:
        if row["impl"] == BARE_UDP or row["path"] not in BARE_PATHS or _key(row) not in bare:
            continue
        got = bare[_key(row)]
        row["bare_udp_gbit_per_s"] = {
            mode: got[mode].get("gbit_per_s") for mode in BARE_MODES if mode in got
        }


def _bare_cell(row: dict[str, Any]) -> str:
    if row["path"] not in BARE_PATHS:
        return "—"  # the relayed path has no port forward, hence no bare-UDP line
    gbit = row.get("bare_udp_gbit_per_s")
    if gbit is None:
        return "-"
    # On DIRECT-WHOLE only GSO is measured, by design ("—"); a DIRECT row lacking a mode
    # is from before that mode existed ("-").
    absent = "—" if row["path"] == DIRECT_WHOLE else "-"
    return " | ".join(_bare_number(gbit, mode, absent) for mode in BARE_MODES)


def _bare_number(gbit: dict[str, float | None], mode: str, absent: str) -> str:
    if mode not in gbit:
        return absent
    value = gbit[mode]
    return f"{value:.3f}" if value is not None else "error"


# How the lines under the table name each mode (with its datagrams per send, when known).
BARE_LABELS = {"single": "1/send", "mmsg": "mmsg", "gso": "GSO"}


def _bare_text(result: dict[str, Any] | None, mode: str) -> str:
    """One mode of a bare-UDP row, for the lines under the table."""
    if not result:
        return f"{BARE_LABELS[mode]} -"
    if mode == "gso":
        label = f"GSO {result['datagrams_per_send']}/send + " + (
            "GRO" if result.get("receive_gro", True) else "plain recv"
        )
    elif mode == "mmsg":
        label = f"mmsg {result['datagrams_per_send']}/send + recvmmsg"
    else:
        label = "1/send"
    if "gbit_per_s" not in result:
        return f"{label} error ({result.get('error', '?')})"
    return (
        f"{label} {result['gbit_per_s']:.3f} Gbit/s "
        f"({result['loss_pct']:.2f}% of {result['sent']:,} lost)"
    )


def print_bare_udp(rows: Sequence[dict[str, Any]]) -> None:
    """The bare-UDP rows, one line each: every mode's Gbit/s and datagrams lost (on a
    DIRECT-WHOLE row, the one mode it measures, and the path named)."""
    bare = [r for r in rows if r["impl"] == BARE_UDP]
    if not bare:
        return
    whole = any(r["path"] == DIRECT_WHOLE for r in bare)
    print(
        "bare UDP (no overlay: pc1 -> home2's UDP port forward -> pc2 on the DIRECT path, "
        "Python at both ends, datagrams of ztui's path MTU): the ceiling of any userspace "
        "VPN's datagrams on this rig; Gbit/s of UDP payload received"
        + (f"; on {DIRECT_WHOLE} only GSO, whose sends the offload changes" if whole else "")
    )
    for row in bare:
        got = row["bare_udp"]
        if row["path"] == DIRECT_WHOLE:
            where = f"{DIRECT_WHOLE}, "
            modes = [mode for mode in BARE_MODES if mode in got]
        else:
            where, modes = "", list(BARE_MODES)
        texts = "; ".join(_bare_text(got.get(mode), mode) for mode in modes)
        print(f"  MTU {row['underlay_mtu']}, loss {row['loss_pct']:g}%, {where}"
              f"{row['datagram_bytes']}-byte datagrams: {texts}")  # fmt: skip


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
    # A lossy DIRECT-WAN line runs at a few Mbit/s: one more digit.
    digits = 4 if tcp.get("gbit_per_s", 1) < 0.1 else 3
    gbit = f"{tcp['gbit_per_s']:.{digits}f}" if "gbit_per_s" in tcp else "error"
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
# Its unit is in the sentence above the table: "Gbit/s" here would widen every line.
BARE_HEADER = "bare UDP 1/send | mmsg | GSO"


def print_matrix(rows: Sequence[dict[str, Any]], seconds: int, pings: int) -> None:
    """The full table, one line per measurement except the bare-UDP ones: those are a
    column on the DIRECT and DIRECT-WHOLE lines (see add_bare_udp) and lines of their own
    under it, after the legend of DIRECT-WHOLE when the run has that path."""
    lines = [r for r in rows if r["impl"] != BARE_UDP]
    if lines:
        _print_table(lines, seconds, pings)
    if any(r["path"] == DIRECT_WHOLE for r in rows):
        print(WHOLE_LEGEND)
    if any(r["path"] == DIRECT_WAN for r in rows):
        print(wan_legend(rows))
    print_bare_udp(rows)
    _print_notes(rows)


def _print_table(rows: Sequence[dict[str, Any]], seconds: int, pings: int) -> None:
    bare = any("bare_udp_gbit_per_s" in r for r in rows)
    headers = [*HEADERS, BARE_HEADER] if bare else HEADERS
    right = RIGHT | {len(HEADERS)}
    print(
        f"\nEvery run: pc1 -> pc2, iperf3 1 TCP stream {seconds} s (Gbit/s received, "
        f"retransmits); RTT avg ms (ping loss) idle ({pings} pings) and under load (ping "
        "beside iperf3); CPU: user+system seconds of the daemons (both ends, and the relay "
        "when relayed) per Gbit received; RSS: each daemon's, pc1/pc2[/relay]; ztui/tinc: "
        "throughput ratio, same MTU, loss and path."
        + (
            " bare UDP: Gbit/s of one datagram per send, sendmmsg and GSO, the kernel-only "
            "ceiling of the same MTU, loss and path (lines below)."
            if bare
            else ""
        )
    )
    table = [headers] + [_row_cells(r) + ([_bare_cell(r)] if bare else []) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    for n, line in enumerate(table):
        if n > 1 and rows[n - 2]["underlay_mtu"] != rows[n - 1]["underlay_mtu"]:
            print()
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]  # fmt: skip
        print("  ".join(cells).rstrip())


def _print_notes(rows: Sequence[dict[str, Any]]) -> None:
    """What the relay carried, what the loss rules dropped, ztui links that moved."""
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
             and r.get("link") not in (None, LINK_OF.get(r["path"], r["path"]))]  # fmt: skip
    for r in notes:
        print(f"note: ztui's link was {r['link']} after the {r['path']} run "
              f"(MTU {r['underlay_mtu']}, loss {r['loss_pct']:g}%)")  # fmt: skip


def print_ratios(ratios: Sequence[dict[str, Any]]) -> None:
    """One line per underlay MTU, one column per (path, loss): ztui / tinc throughput."""
    if not ratios:
        return
    # By name, the paths sort as they run: DIRECT, DIRECT-WAN, DIRECT-WHOLE, RELAY.
    columns = sorted({(r["path"], r["loss_pct"]) for r in ratios})
    lines = sorted({(r["underlay_mtu"], r["impl"]) for r in ratios}, key=lambda k: (-k[0], k[1]))
    by = {(r["underlay_mtu"], r["impl"], r["path"], r["loss_pct"]): r["ratio"] for r in ratios}
    names = [f"{path} {loss:g}%" for path, loss in columns]
    widths = [max(10, len(name)) for name in names]  # "DIRECT-WHOLE 0%" is 15 wide
    print("\n(ztui)/tinc throughput" + " " * 14
          + "".join(f"  {n:>{w}}" for n, w in zip(names, widths, strict=True)))  # fmt: skip
    for mtu, impl in lines:
        cells = []
        for path, loss in columns:
            value = by.get((mtu, impl, path, loss))
            cells.append(f"{value:.2f}x" if value is not None else "-")
        label = f"{impl}, underlay MTU {mtu}"
        print(f"{label:<36}" + "".join(f"  {c:>{w}}" for c, w in zip(cells, widths, strict=True)))


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
