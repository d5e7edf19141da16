"""TCP throughput and ping RTT across the overlay, beside the bare underlay, in namespaces.

    sudo python bench/bench_overlay.py [--seconds 8] [--pings 20] [--mtu 1500 1280]

For each underlay MTU, a fresh world (overlay_core/testing/world.py) is built:

    root1, ctl            public hosts: a root and the controller
    home1 (NAT) -- pc1    member; WAN link MTU = the underlay MTU
    home2 (NAT) -- pc2    member; WAN link MTU = the underlay MTU

pc1 and pc2 join one network (TAP MTU 2800, MSS policy auto), punch through to DIRECT and
finish probing their path MTU; then, from pc1 to pc2, one run each of:

* overlay:  iperf3 (one TCP stream, --seconds) to pc2's overlay address, and `ping -c
  --pings -i 0.2` to it: Ethernet in the overlay, through both NATs, Python at both ends.
* underlay: the same iperf3 and ping to home2's public address, which home2's router
  forwards (DNAT: TCP to the iperf3 port, and ICMP echo) to pc2's LAN address.

Why that underlay path: it is the very path the overlay's DIRECT datagrams take (pc1 ->
home1's MASQUERADE -> the internet bridge -> home2's router -> pc2), with the same links,
MTUs and NAT/conntrack work, minus only the overlay. Measuring between the routers or to a
public host would skip a NAT and a veth hop and flatter the underlay; a port forward is
the one thing a user behind NAT would set up to reach pc2 without an overlay. With a
1280-byte underlay the bare TCP learns the path MTU from the routers' ICMP (both WANs
are 1280, so the first hop already says so); the overlay carries 2800-byte frames and
fragments them to its probed path MTU, with MSS clamping keeping TCP segments whole.

Output: one table on stdout and bench/results/overlay.json. Numbers are what this machine
gives in this run; the ratio is the point. Benchmarks never fail on speed. Everything the
run creates (namespaces, daemons, homes under /tmp) is removed at the end, also on error
or Ctrl-C. As non-root (or without iperf3) it prints one line saying why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from overlay_core.testing.netns import Host, Site, unavailable_reason
from overlay_core.testing.world import OverlayNode, OverlayWorld

RESULTS = Path(__file__).resolve().parent / "results"
IPERF_PORT = 5201
POOL = "10.147.17.0/24"
TAP_MTU = 2800
_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")
_LOSS = re.compile(r"([\d.]+)% packet loss")


def why_not() -> str | None:
    reason = unavailable_reason()
    if reason is not None:
        return reason
    if shutil.which("iperf3") is None or shutil.which("ping") is None:
        return "needs iperf3 and ping (run `make sysdeps` as root)"
    return None


def forward_to(site: Site, host: Host) -> None:
    """home2's router forwards TCP IPERF_PORT and ICMP echo arriving on its WAN to host."""
    for match in (["-p", "tcp", "--dport", str(IPERF_PORT)], ["-p", "icmp", "--icmp-type", "8"]):
        site.run(
            ["iptables", "-t", "nat", "-A", "PREROUTING", "-i", Site.WAN_IF, *match,
             "-j", "DNAT", "--to-destination", host.addr],
            check=True,
        )  # fmt: skip


def iperf3(server: OverlayNode, client: OverlayNode, target: str, seconds: int) -> dict[str, Any]:
    """One TCP stream client -> target (served by `server`'s namespace)."""
    srv = server.host.popen(
        ["iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while f":{IPERF_PORT}" not in server.host.run(["ss", "-ltnH"]).stdout:
            if time.monotonic() > deadline:
                return {"error": "iperf3 -s did not listen"}
            time.sleep(0.1)
        proc = client.host.run(
            ["iperf3", "-c", target, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
            timeout=seconds + 60,
        )
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            return {"error": (proc.stderr or proc.stdout).strip()[-300:]}
        if "error" in result:
            return {"error": result["error"]}
        end = result["end"]
        return {
            "mbit_per_s": end["sum_received"]["bits_per_second"] / 1e6,
            "retransmits": end["sum_sent"].get("retransmits"),
            "seconds": end["sum_received"]["seconds"],
        }
    finally:
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait(timeout=5)


def ping(client: OverlayNode, target: str, count: int) -> dict[str, Any]:
    proc = client.host.run(
        ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", target],
        timeout=count * 0.2 + 30,
    )
    rtt, loss = _RTT.search(proc.stdout), _LOSS.search(proc.stdout)
    if rtt is None:
        return {"error": proc.stdout.strip()[-300:] or proc.stderr.strip()}
    return {
        "count": count,
        "loss_pct": float(loss.group(1)) if loss else None,
        "min_ms": float(rtt.group(1)),
        "avg_ms": float(rtt.group(2)),
        "max_ms": float(rtt.group(3)),
    }


def measure(underlay_mtu: int, seconds: int, pings: int) -> dict[str, Any]:
    with OverlayWorld() as world:
        world.add_roots(1)
        world.add_controller("ctl")
        a = world.add_home("home1", "pc1", underlay_mtu=underlay_mtu)
        b = world.add_home("home2", "pc2", underlay_mtu=underlay_mtu)
        nwid = world.create_network("bench", pools=[POOL], mtu=TAP_MTU, mss="auto")
        world.bring_up(nwid, [a, b])
        target = world.overlay_ip(b, nwid)
        world.wait("pc1 to ping pc2", lambda: ping(a, target, 1).get("loss_pct") == 0.0, 15)
        world.wait_link(a, b, "DIRECT")
        world.wait_link(b, a, "DIRECT")
        path_mtu = (world.wait_path_mtu(a, b), world.wait_path_mtu(b, a))
        assert b.site is not None
        forward_to(b.site, b.host)
        return {
            "underlay_mtu": underlay_mtu,
            "overlay_mtu": TAP_MTU,
            "path_mtu": {"pc1_to_pc2": path_mtu[0], "pc2_to_pc1": path_mtu[1]},
            "overlay": {
                "target": target,
                "tcp": iperf3(b, a, target, seconds),
                "ping": ping(a, target, pings),
            },
            "underlay": {
                "target": b.site.addr,
                "tcp": iperf3(b, a, b.site.addr, seconds),
                "ping": ping(a, b.site.addr, pings),
            },
        }


def _cell(run: dict[str, Any]) -> tuple[str, str]:
    tcp, rtt = run["tcp"], run["ping"]
    tcp_text = tcp["error"] if "error" in tcp else f"{tcp['mbit_per_s']:8.1f} Mbit/s"
    rtt_text = (
        rtt["error"]
        if "error" in rtt
        else f"{rtt['min_ms']:.3f}/{rtt['avg_ms']:.3f}/{rtt['max_ms']:.3f} ms"
    )
    return tcp_text, rtt_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="iperf3 run length")
    parser.add_argument("--pings", type=int, default=20, help="pings per RTT measurement")
    parser.add_argument("--mtu", type=int, nargs="+", default=[1500, 1280], help="underlays")
    args = parser.parse_args(argv)
    reason = why_not()
    if reason is not None:
        print(f"bench-overlay: skipped: {reason}")
        return 0
    # SIGTERM unwinds like Ctrl-C, so the worlds' cleanup runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    runs = []
    for mtu in args.mtu:
        print(f"bench-overlay: underlay MTU {mtu}: building the world and measuring ...",
              flush=True)  # fmt: skip
        runs.append(measure(mtu, args.seconds, args.pings))

    print(f"\nTCP: iperf3, 1 stream, {args.seconds} s, pc1 -> pc2; "
          f"RTT: {args.pings} pings, min/avg/max")  # fmt: skip
    print(f"{'underlay MTU':>12}  {'path':<9} {'TCP':>16}  RTT")
    for run in runs:
        for kind in ("underlay", "overlay"):
            tcp_text, rtt_text = _cell(run[kind])
            print(f"{run['underlay_mtu']:>12}  {kind:<9} {tcp_text:>16}  {rtt_text}")
        pmtu = run["path_mtu"]
        print(f"{'':>12}  (overlay path MTU {pmtu['pc1_to_pc2']}/{pmtu['pc2_to_pc1']}, "
              f"TAP MTU {run['overlay_mtu']})")  # fmt: skip

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "overlay.json"
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "iperf3_seconds": args.seconds,
        "pings": args.pings,
        "runs": runs,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
