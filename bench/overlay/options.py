"""bench-overlay's command line: what a run measures (--paths, --impl, --loss, ...) and
why a path it was asked for cannot run here, before any world is built."""

from __future__ import annotations

import argparse
from pathlib import Path

from .report import DIRECT_WAN, DIRECT_WHOLE, IMPL_ORDER
from .wan import WAN_CONGESTION, WAN_RTT_MS, WAN_SECONDS

DESCRIPTION = "TCP throughput, RTT and daemon cost: ztui beside tinc 1.0 and the bare underlay"
CONGESTION_CONTROLS = Path("/proc/sys/net/ipv4/tcp_available_congestion_control")
IMPLS = IMPL_ORDER  # the report prints them in this order
# What a run measures without --impl: ztui-off (the one-frame path) on request only.
DEFAULT_IMPLS = IMPLS[:-1]
# --paths, in the order they run: DIRECT-WAN and DIRECT-WHOLE on the DIRECT rig, before
# RELAY's rules.
PATHS = ("direct", "wan", "whole", "relay")
# What DIRECT-WAN measures: the question it answers is the tunnels' beside the underlay's.
WAN_IMPLS = ("underlay", "tinc", "ztui")
# The impls whose datagrams UDP segmentation offload can change (bench_overlay's docstring).
WHOLE_IMPLS = ("udp", "tinc", "ztui")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --paths comes back deduplicated, in the order the paths run."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--seconds", type=int, default=8, help="iperf3 run length")
    parser.add_argument("--pings", type=int, default=20, help="pings per idle RTT measurement")
    parser.add_argument("--mtu", type=int, nargs="+", default=[1500, 1280], help="underlays")
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 1.0],
                        help="random loss in %% per direction, end to end")  # fmt: skip
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--impl", nargs="+", choices=IMPLS, default=list(DEFAULT_IMPLS))
    parser.add_argument("--wan-rtt-ms", type=float, default=WAN_RTT_MS,
                        help="round trip DIRECT-WAN adds (home2's router delays what it "
                             "receives from the WAN)")  # fmt: skip
    parser.add_argument("--wan-seconds", type=int, default=WAN_SECONDS,
                        help="iperf3 run length on DIRECT-WAN (at 1%% loss and 20 ms, 8 s "
                             "see ~45 losses: too few to compare)")  # fmt: skip
    parser.add_argument("--cc", metavar="NAME",
                        help="iperf3's TCP congestion control (e.g. cubic, a NAS's usual "
                             "default); default: the host's, and cubic on DIRECT-WAN")  # fmt: skip
    args = parser.parse_args(argv)
    if any(not 0 <= loss < 100 for loss in args.loss):
        parser.error("--loss takes percentages in [0, 100)")
    if not 0 < args.wan_rtt_ms <= 1000:
        parser.error("--wan-rtt-ms takes milliseconds in (0, 1000]")
    if args.wan_seconds < 1 or args.seconds < 1:
        parser.error("--seconds and --wan-seconds take at least 1")
    known = available_congestion_controls()
    if args.cc is not None and known and args.cc not in known:
        parser.error(f"--cc {args.cc}: this kernel offers {', '.join(sorted(known))}")
    args.paths = [p for p in PATHS if p in args.paths]
    return args


def available_congestion_controls() -> set[str]:
    """The TCP congestion controls the kernel has loaded (empty if it won't say)."""
    try:
        return set(CONGESTION_CONTROLS.read_text().split())
    except OSError:
        return set()


def whole_skipped(loss: list[float], impls: list[str]) -> str | None:
    """Why --paths whole measures nothing with this --loss and these impls, or None."""
    if 0 not in loss:
        return (f"{DIRECT_WHOLE} skipped: it is measured at 0% loss only (a drop would take "
                "a whole GSO batch), and --loss has no 0")  # fmt: skip
    if not any(i in WHOLE_IMPLS for i in impls):
        return f"{DIRECT_WHOLE} skipped: it measures {', '.join(WHOLE_IMPLS)}, none in --impl"
    return None


def wan_skipped(cc: str | None) -> str | None:
    """Why --paths wan measures nothing (it runs under CUBIC, which --cc may replace), or
    None."""
    offered = available_congestion_controls() or {WAN_CONGESTION}  # unknown: try it
    if cc is None and WAN_CONGESTION not in offered:
        return f"{DIRECT_WAN} skipped: this kernel lacks {WAN_CONGESTION} (--cc picks another)"
    return None
