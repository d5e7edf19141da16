"""TCP throughput, RTT and daemon cost: ztui beside tinc 1.0 and the bare underlay, in namespaces.

    sudo python bench/bench_overlay.py [--seconds 8] [--pings 20] [--mtu 1500 1280]
        [--loss 0 1] [--paths direct wan whole relay] [--wan-rtt-ms 20] [--wan-seconds 20]
        [--impl underlay udp tinc ztui ztui-nogso ztui-off] [--cc cubic]

For each underlay MTU, a fresh world (overlay_core/lab/world.py) is built:

    root1, ctl            public hosts: a root (and tinc's hub) and the controller
    home1 (NAT) -- pc1    ztui member, tinc node; WAN link MTU = the underlay MTU
    home2 (NAT) -- pc2    ztui member, tinc node; WAN link MTU = the underlay MTU

pc1 and pc2 join one ztui network (TAP MTU 2800, MSS policy auto), punch through to DIRECT
and finish probing their path MTU. On the same rig, in the same run, tinc 1.0 in switch
mode connects the same two hosts (bench/overlay/tinc.py: configuration, keys, cipher;
Debian's `tinc`, installed by `make sysdeps`). Then, from pc1 to pc2, for each --loss
(iptables random drops on both home routers, --loss % end to end in each direction, in
place for one measurement at a time; UDP segmentation offload is off on the hosts'
uplinks so a drop takes one datagram: bench/overlay/measure.py), one measurement each of:

DIRECT (both NATs in the path, nothing in between):
* underlay: to home2's public address, which home2's router forwards (DNAT: TCP to the
  iperf3 port, and ICMP echo) to pc2. It is the very path the overlay's DIRECT datagrams
  take (pc1 -> home1's MASQUERADE -> the internet bridge -> home2's router -> pc2), with the
  same links, MTUs and NAT/conntrack work, minus only the overlay: a port forward is the
  one thing a user behind NAT would set up to reach pc2 without an overlay. With a 1280
  underlay the bare TCP learns the path MTU from the routers' ICMP.
* udp: bare UDP, no overlay, the same way through a UDP port forward on home2
  (bench/overlay/bare_udp.py): a Python sender in pc1 and receiver in pc2, datagrams of
  the path MTU ztui probed (the size ztui sends), --seconds each of one `sendto` per
  datagram (overlayd's calls with --offload off), of sendmmsg runs of up to 64 with
  recvmmsg receives (its calls with --offload tap, ztui-nogso's, as on kernels before
  4.18) and of UDP_SEGMENT sends of up to 64 with UDP_GRO receives (ztui's calls). Why:
  every userspace VPN's datagrams cross both NATs on the same two cores, so this
  kernel-only rate is the ceiling any overlay on this rig has, and a goal for ztui's
  Gbit/s (ztui-nogso's: the mmsg number) reads against it. It gives UDP payload Gbit/s
  received and the datagrams lost, not TCP, so it is no line of the full table but a
  column ("bare UDP 1/send | mmsg | GSO Gbit/s") on each DIRECT line of the same MTU and
  loss, and its own lines under the table.
* tinc: pc1 ConnectTo pc2 through a UDP+TCP port forward of 655 on home2, as a NAS owner
  sets up for tinc; data over UDP between the homes.
* ztui: to pc2's overlay address: Ethernet in the overlay, Python at both ends; it carries
  2800-byte frames and fragments them to its probed path MTU, MSS clamping keeping TCP
  segments whole. ztui-nogso is the same with --offload tap (no UDP GSO/GRO), and
  ztui-off, measured only when --impl names it, with --offload off: no TAP offloads, one
  frame per datagram and one datagram per system call (the path before batching).

DIRECT-WAN (the same rig and tinc net, after the DIRECT lines; every --loss; underlay,
tinc, ztui): every round trip --wan-rtt-ms (20) longer, as between two cities, iperf3 for
--wan-seconds (20) under CUBIC unless --cc names another: bench/overlay/wan.py says why.

DIRECT-WHOLE (the same rig, after the DIRECT and DIRECT-WAN lines, on tinc's same direct
net; at 0 % loss only): UDP segmentation offload is turned back on, the veth default, on
the uplinks the run turned it off on, for these lines only, and off again after them, also
on error or Ctrl-C. A GSO send then crosses both NAT routers and the bridges as one packet
and is split at pc2's socket, instead of being forwarded datagram by datagram: on this
two-core rig that forwarding runs on the same cores as both ends, inside the sender's send
calls. These lines show what ztui's batching gives on a path that does not charge the
sender's cores per datagram; a random drop would take a whole batch, hence no lossy line.
They do not replace the DIRECT lines, which stay the reference. Measured:
* udp: bare UDP's gso mode only; one datagram per send and sendmmsg make no GSO sends, so
  the setting cannot change them.
* tinc: one datagram per sendto, so in principle unchanged; measured as the reference of
  the ztui/tinc ratio under the same conditions.
* ztui: overlayd --offload auto (restarted if the last DIRECT line left it on tap).
Not measured: underlay (TCP, whose TSO super-packets cross the routers whole on every line
already; the setting concerns UDP GSO only) and ztui-nogso (sendmmsg, no GSO sends). Without
ethtool nothing was turned off, the DIRECT lines already are whole, and the path is skipped
with a line saying so; likewise without 0 in --loss.

RELAY (the homes' routers drop UDP between their public addresses, so nobody punches):
* tinc: a third tinc node on root1 is the hub both homes ConnectTo; with no UDP between
  the homes, tinc 1.0 sends every packet through it: pc1 -> hub -> pc2, over UDP.
* ztui: relayed through root1, which the daemons fall back to by themselves.

Every other measurement (bench/overlay/measure.py) gives: TCP Gbit/s (iperf3, one stream,
--seconds, with the host's TCP congestion control or --cc's; each result names the one
used, since under random loss it decides more than the tunnel: BBR barely slows for loss,
CUBIC, a NAS's usual default, is held by loss and RTT), RTT idle and under load (ping
beside iperf3), the daemons' CPU seconds per Gbit (both ends, plus the relay when
relayed: overlayd or tincd, by PID) and their RSS, and on each ztui line the ratio
ztui/tinc of the same MTU, loss and path.

Output: the earlier table (DIRECT at 0 % loss, overlay beside underlay), the full table,
the ratios, and bench/results/overlay.json (its `runs` keep the earlier keys; `results`,
`ratios` and `tinc` are new; the udp rows of `results` hold the bare-UDP measurements
under `bare_udp`, three on DIRECT and gso alone on DIRECT-WHOLE, and every other row of
those paths their Gbit/s as `bare_udp_gbit_per_s`). Numbers are what this machine gives in
this run; the ratios are the point. Benchmarks never fail on speed; the default run takes
~15-16 minutes on two cores (the udp lines ~2 of them, DIRECT-WAN ~5, DIRECT-WHOLE ~1;
--mtu, --loss, --paths and --impl choose a subset). Everything the run creates (namespaces,
daemons, iptables rules, homes and tinc directories under /tmp) is removed at the end, also
on error or Ctrl-C; only processes started here are ever signalled, by their PID. As
non-root (or without iperf3) it prints one line saying why and exits 0; without tincd it
measures the rest and says so.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench/overlay is imported as `overlay`: Python puts this script's directory first on
# sys.path when it runs as `python bench/bench_overlay.py`.
from overlay.bare_udp import MODES as BARE_UDP_MODES
from overlay.bare_udp import PORT as BARE_UDP_PORT
from overlay.bare_udp import measure_bare_udp
from overlay.measure import (
    IPERF_PORT,
    OffloadStuck,
    dropped,
    forward_ports,
    loss_rules,
    measure,
    no_direct_udp_rules,
    ping,
    router_rules,
    set_udp_segmentation_offload,
    udp_segmentation_offload_on,
)
from overlay.options import (
    IMPLS,
    WAN_IMPLS,
    WHOLE_IMPLS,
    parse_args,
    wan_skipped,
    whole_skipped,
)
from overlay.report import (
    DIRECT_WAN,
    DIRECT_WHOLE,
    LINK_OF,
    add_bare_udp,
    add_ratios,
    print_legacy,
    print_matrix,
    print_ratios,
)
from overlay.tinc import (
    DIRECT_PORT,
    DIRECT_SUBNET,
    RELAY_PORT,
    RELAY_SUBNET,
    TincError,
    TincNet,
    tinc_version,
)
from overlay.wan import WAN_CONGESTION, WanError, wan_delay
from record import run_header, write_result

from overlay_core.lab.netns import unavailable_reason
from overlay_core.lab.world import OverlayNode, OverlayWorld
from overlay_core.proto.states import Link

POOL = "10.147.17.0/24"
TAP_MTU = 2800
RELAY_WAIT_S = 30.0
# Measured without an overlay, hence only on DIRECT: the relayed path has no port forward.
UNDERLAY_ONLY = ("underlay", "udp")
# overlayd --offload per impl: ztui-nogso is the data path of a kernel without UDP GSO/GRO
# (before 4.18, as a Synology DSM 7 NAS's 4.4): TAP offloads, sendmmsg/recvmmsg (io/udp_mmsg.py).
# ztui-off: no TAP offloads, one datagram per system call (--offload off), the data path
# before batching, the one the loss criterion compares with.
OFFLOAD = {"ztui": "auto", "ztui-nogso": "tap", "ztui-off": "off"}
# The one bare-UDP mode DIRECT-WHOLE measures: single and mmsg make no GSO sends.
WHOLE_BARE_UDP_MODES = ("gso",)


def why_not() -> str | None:
    reason = unavailable_reason()
    if reason is not None:
        return reason
    if shutil.which("iperf3") is None or shutil.which("ping") is None:
        return "needs iperf3 and ping (run `make sysdeps` as root)"
    return None


def say(text: str) -> None:
    print(f"bench-overlay: {text}", flush=True)


class Bench:
    """One world (one underlay MTU) and what is measured in it."""

    def __init__(self, world: OverlayWorld, args: argparse.Namespace, mtu: int) -> None:
        self.world = world
        self.args = args
        self.mtu = mtu
        self.rows: list[dict[str, Any]] = []
        self.tinc: dict[str, Any] = {}
        self.offload = "auto"
        # Why this world measured no DIRECT-WHOLE line though --paths asked for one.
        self.whole_skipped: str | None = None
        # The delay line's counts after the DIRECT-WAN lines, or why there were none.
        self.wan: dict[str, Any] = {}

    def build(self) -> dict[str, Any]:
        """Roots, controller, two homes on DIRECT with probed path MTUs; the run's header."""
        world = self.world
        self.root = world.add_roots(1)[0]
        world.add_controller("ctl")
        self.a = world.add_home("home1", "pc1", underlay_mtu=self.mtu)
        self.b = world.add_home("home2", "pc2", underlay_mtu=self.mtu)
        for node in (self.root, self.a, self.b):
            node.args += ["--offload", self.offload]
            node.restart()
        nwid = world.create_network("bench", pools=[POOL], mtu=TAP_MTU, mss="auto")
        world.bring_up(nwid, [self.a, self.b])
        self.target = world.overlay_ip(self.b, nwid)
        ok = lambda: ping(self.a.host, self.target, 1).get("loss_pct") == 0.0  # noqa: E731
        world.wait("pc1 to ping pc2", ok, 15)
        world.wait_link(self.a, self.b, Link.DIRECT)
        world.wait_link(self.b, self.a, Link.DIRECT)
        path_mtu = (world.wait_path_mtu(self.a, self.b), world.wait_path_mtu(self.b, self.a))
        self.datagram_bytes = path_mtu[0]  # what ztui sends pc1 -> pc2: the bare UDP's size
        assert self.a.site is not None and self.b.site is not None
        self.home1, self.home2 = self.a.site, self.b.site
        self.hosts = [self.a.host, self.b.host, self.root.host]
        # Off for the world's life, but on for the DIRECT-WHOLE lines (see whole()).
        segmentation = {h.name: set_udp_segmentation_offload(h, on=False) for h in self.hosts}
        self.segmentation_off = segmentation
        forward_ports(
            self.home2,
            self.b.host,
            [
                ("tcp", IPERF_PORT),
                ("udp", BARE_UDP_PORT),
                ("udp", DIRECT_PORT),
                ("tcp", DIRECT_PORT),
            ],
            icmp=True,
        )
        return {
            "underlay_mtu": self.mtu,
            "overlay_mtu": TAP_MTU,
            "udp_segmentation_offload_off": segmentation,
            "path_mtu": {"pc1_to_pc2": path_mtu[0], "pc2_to_pc1": path_mtu[1]},
        }

    # ---- tinc -----------------------------------------------------------------------------

    def _tinc_up(self, net: TincNet, pairs: list[tuple[str, str]]) -> bool:
        """Configure, start, ping, wait for the path MTU; False (said, and recorded in
        the results) if tinc would not come up, so the phase goes on without it."""
        try:
            net.configure()
            net.start()
            took = net.wait_ping(net.nodes["pc1"], net.nodes["pc2"])
            pmtu = net.wait_pmtu(pairs)
        except (TincError, OSError, subprocess.SubprocessError) as exc:
            say(f"tinc {net.label} did not come up, measuring without it: {exc}")
            self.tinc[net.label] = {"error": str(exc)}
            return False
        if not pmtu["settled"]:
            say(f"tinc {net.label}: path MTU not fixed after {pmtu['seconds']} s; measuring")
        self.tinc[net.label] = {
            "first_ping_s": round(took, 2),
            "pmtu": pmtu,
            "config": net.config_text(),
        }
        return True

    def tinc_direct(self) -> TincNet:
        net = TincNet("direct", self.world.base, DIRECT_PORT, DIRECT_SUBNET, "tinc0")
        net.add("pc1", self.a.host, connect_to=("pc2",))
        net.add("pc2", self.b.host, address=self.home2.addr)
        return net

    def tinc_relay(self) -> TincNet:
        net = TincNet("relay", self.world.base, RELAY_PORT, RELAY_SUBNET, "tinc1")
        net.add("pc1", self.a.host, connect_to=("hub",))
        net.add("pc2", self.b.host, connect_to=("hub",))
        net.add("hub", self.root.host, address=self.root.host.addr)
        return net

    # ---- measuring ------------------------------------------------------------------------

    def set_offload(self, mode: str, link: Link) -> None:
        """Restart the three daemons with `--offload mode` (same homes: same identities and
        networks) and wait for pc1 and pc2 to be back on `link` with probed path MTUs."""
        if mode == self.offload:
            return
        say(f"  restarting the daemons with --offload {mode}")
        self.offload = mode
        for node in (self.root, self.a, self.b):
            node.args[node.args.index("--offload") + 1] = mode
            node.restart()
        world = self.world
        world.wait(
            "pc1 to ping pc2", lambda: ping(self.a.host, self.target, 1).get("loss_pct") == 0.0, 30
        )
        world.wait_link(self.a, self.b, link, RELAY_WAIT_S)
        world.wait_link(self.b, self.a, link, RELAY_WAIT_S)
        if link == Link.DIRECT:
            world.wait_path_mtu(self.a, self.b)
            world.wait_path_mtu(self.b, self.a)

    def _bare_udp(self, loss: float, path: str) -> dict[str, Any]:
        """Bare UDP, pc1 -> home2's UDP port forward -> pc2: one measurement per mode (on
        DIRECT-WHOLE the gso mode only)."""
        target, size = self.home2.addr, self.datagram_bytes
        modes = WHOLE_BARE_UDP_MODES if path == DIRECT_WHOLE else BARE_UDP_MODES
        say(f"  MTU {self.mtu}, loss {loss:g}%, {path}: udp ({size}-byte datagrams) -> "
            f"{target}:{BARE_UDP_PORT}")  # fmt: skip
        row: dict[str, Any] = {"underlay_mtu": self.mtu, "loss_pct": loss, "path": path,
                               "impl": "udp", "target": target, "datagram_bytes": size}  # fmt: skip
        row["bare_udp"] = {
            mode: measure_bare_udp(self.a.host, self.b.host, target, size=size,
                                   seconds=self.args.seconds, mode=mode)
            for mode in modes
        }  # fmt: skip
        for result in row["bare_udp"].values():
            if "error" in result or "note" in result:
                say(f"  udp {result['mode']}: {result.get('error') or result['note']}")
        self.rows.append(row)
        return row

    def _one(self, path: str, loss: float, impl: str, tinc: TincNet | None) -> dict[str, Any]:
        if impl == "udp":
            return self._bare_udp(loss, path)
        relay = {"tinc": "hub"} | dict.fromkeys(OFFLOAD, "root1")
        pids: dict[str, int | None]
        if impl == "underlay":
            target, pids = self.home2.addr, {}
        elif impl == "tinc":
            assert tinc is not None
            tinc.check_alive()
            target = tinc.nodes["pc2"].ip
            pids = {name: node.pid for name, node in tinc.nodes.items()}
        else:
            # The row's path names the rig; ztui's link on DIRECT-WHOLE is DIRECT.
            self.set_offload(OFFLOAD[impl], Link(LINK_OF.get(path, path)))
            self.world.check_alive()
            target = self.target
            pids = {"pc1": self._pid(self.a), "pc2": self._pid(self.b)}
            if path == "RELAY":
                pids["root1"] = self._pid(self.root)
        say(f"  MTU {self.mtu}, loss {loss:g}%, {path}: {impl} -> {target}")
        row: dict[str, Any] = {"underlay_mtu": self.mtu, "loss_pct": loss, "path": path,
                               "impl": impl}  # fmt: skip
        if path == "RELAY":
            row["relay"] = relay[impl]
        seconds, congestion = self.args.seconds, self.args.cc
        if path == DIRECT_WAN:  # bench/overlay/wan.py: longer lines (few losses), CUBIC
            seconds, congestion = self.args.wan_seconds, self.args.cc or WAN_CONGESTION
            row.update(wan_rtt_ms=self.args.wan_rtt_ms, iperf3_seconds=seconds)
        relay_host = self.root.host if path == "RELAY" else None
        row.update(
            measure(self.b.host, self.a.host, target, seconds=seconds,
                    pings=self.args.pings, daemons=pids, relay=relay_host,
                    congestion=congestion)
        )  # fmt: skip
        if impl in OFFLOAD:
            peer = self.a.peer(self.b.address)
            row["link"] = peer["link"] if peer else None
            row["offload"] = self.offload
        self.rows.append(row)
        return row

    @staticmethod
    def _pid(node: OverlayNode) -> int | None:
        return node.proc.pid if node.running and node.proc is not None else None

    def phase(self, path: str, impls: list[str], tinc: TincNet | None) -> None:
        homes = [self.home1, self.home2]
        for loss in self.args.loss:
            for impl in impls:
                with router_rules(loss_rules(homes, loss)):
                    row = self._one(path, loss, impl, tinc)
                    if loss > 0:
                        row["loss_dropped"] = dropped(homes)

    def direct(self, impls: list[str], paths: list[str]) -> None:
        """The DIRECT lines, then the DIRECT-WAN and DIRECT-WHOLE ones, as `paths` asks:
        one tinc net for all, brought up once."""
        direct = impls if "direct" in paths else []
        wan = [i for i in impls if i in WAN_IMPLS] if "wan" in paths else []
        whole = [i for i in impls if i in WHOLE_IMPLS] if "whole" in paths else []
        tinc = self.tinc_direct() if "tinc" in direct + wan + whole else None
        try:
            if tinc is not None and not self._tinc_up(tinc, [("pc1", "pc2"), ("pc2", "pc1")]):
                direct, wan, whole = ([i for i in x if i != "tinc"] for x in (direct, wan, whole))
            if direct:
                self.phase("DIRECT", direct, tinc)
            if wan:
                self.wan_lines(wan, tinc)
            if whole:
                self.whole(whole, tinc)
        finally:
            if tinc is not None:
                tinc.stop()

    def wan_lines(self, impls: list[str], tinc: TincNet | None) -> None:
        """The DIRECT-WAN lines (bench/overlay/wan.py): every --loss, --wan-seconds each,
        under CUBIC unless --cc names another; none (said, and recorded) if the delay line
        fails."""
        try:
            with wan_delay(self.home2, self.args.wan_rtt_ms) as self.wan:
                self.phase(DIRECT_WAN, impls, tinc)
        except WanError as exc:
            self.wan = {"skipped": str(exc)}
            say(f"{DIRECT_WAN} skipped: {exc}")

    def whole(self, impls: list[str], tinc: TincNet | None) -> None:
        """The DIRECT-WHOLE lines (module docstring): at 0 % loss, with UDP segmentation
        offload back on the uplinks build() turned it off on, off again after them."""
        uplinks = [h for h in self.hosts if self.segmentation_off.get(h.name)]
        if not uplinks:
            self.whole_skipped = ("UDP segmentation offload could not be turned off (no "
                                  "ethtool?), so the DIRECT lines already are whole")  # fmt: skip
            say(f"{DIRECT_WHOLE} skipped: {self.whole_skipped}")
            return
        with udp_segmentation_offload_on(uplinks) as took:
            if not all(took.values()):
                refused = ", ".join(name for name, ok in took.items() if not ok)
                self.whole_skipped = ("ethtool would not turn UDP segmentation offload back "
                                      f"on for {refused}")  # fmt: skip
                say(f"{DIRECT_WHOLE} skipped: {self.whole_skipped}")
                return
            for impl in impls:
                row = self._one(DIRECT_WHOLE, 0.0, impl, tinc)
                row["udp_segmentation_offload_on"] = sorted(took)

    def relayed(self, impls: list[str]) -> None:
        impls = [i for i in impls if i not in UNDERLAY_ONLY]
        if not impls:
            return
        with router_rules(no_direct_udp_rules(self.home1, self.home2)):
            if any(i in OFFLOAD for i in impls):
                self.world.wait_link(self.a, self.b, Link.RELAY, RELAY_WAIT_S)
                self.world.wait_link(self.b, self.a, Link.RELAY, RELAY_WAIT_S)
            tinc = self.tinc_relay() if "tinc" in impls else None
            try:
                pairs = [("pc1", "hub"), ("pc2", "hub"), ("hub", "pc1"), ("hub", "pc2")]
                if tinc is not None and not self._tinc_up(tinc, pairs):
                    impls = [i for i in impls if i != "tinc"]
                self.phase("RELAY", impls, tinc)
            finally:
                if tinc is not None:
                    tinc.stop()


def measure_world(args: argparse.Namespace, mtu: int, impls: list[str]) -> dict[str, Any]:
    with OverlayWorld() as world:
        bench = Bench(world, args, mtu)
        run = bench.build()
        if {"direct", "wan", "whole"} & set(args.paths):
            try:
                bench.direct(impls, args.paths)
            except OffloadStuck as exc:
                # The lines measured so far stand. This world's rig is left with whole
                # batches, which a lossy line would lose at once: its RELAY lines are not
                # measured. The next world builds a rig of its own.
                run["stopped"] = f"the lines after {DIRECT_WHOLE} ({exc})"
                say(f"stopping this world: {exc}")
        if "relay" in args.paths and "stopped" not in run:
            bench.relayed(impls)
        run["tinc"] = bench.tinc
        run["rows"] = bench.rows
        if bench.whole_skipped is not None:
            run["whole_skipped"] = bench.whole_skipped
        if bench.wan:
            run["wan_delay_line"] = bench.wan
        for row in bench.rows:  # the earlier keys: DIRECT, no added loss
            if (
                row["path"] == "DIRECT"
                and row["loss_pct"] == 0
                and row["impl"] in ("ztui", "underlay")
            ):
                kind = "overlay" if row["impl"] == "ztui" else "underlay"
                run[kind] = {"target": row["target"], "tcp": row["tcp"], "ping": row["ping_idle"]}
        return run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = why_not()
    if reason is not None:
        print(f"bench-overlay: skipped: {reason}")
        return 0
    impls = [i for i in IMPLS if i in args.impl]
    version = tinc_version()
    if "tinc" in impls and version is None:
        say("tincd not found (run `make sysdeps` as root): measuring without tinc")
        impls.remove("tinc")
    skipped = {"wan": wan_skipped(args.cc), "whole": whole_skipped(args.loss, impls)}
    for path, why in skipped.items():
        if path in args.paths and why is not None:
            say(why)
            # The results' `paths` say what was measured (a world that could not measure
            # one says why, under `whole_skipped` or `wan_delay_line`).
            args.paths.remove(path)
    if not args.paths:  # nothing left: say so rather than build worlds for nothing
        say("nothing to measure: no path --paths named can run here")
        return 2
    # SIGTERM unwinds like Ctrl-C, so the worlds' cleanup runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    runs = []
    try:
        for mtu in args.mtu:
            say(f"underlay MTU {mtu}: building the world and measuring ...")
            runs.append(measure_world(args, mtu, impls))
    except KeyboardInterrupt:  # the worlds have closed (with-blocks) by the time we are here
        say("interrupted; everything it made is removed, nothing written")
        return 130
    rows = [row for run in runs for row in run.pop("rows")]
    ratios = add_ratios(rows)
    add_bare_udp(rows)

    print_legacy(runs, args.seconds, args.pings)
    print_matrix(rows, args.seconds, args.pings)
    print_ratios(ratios)
    used = sorted({c for r in rows if (c := r.get("tcp", {}).get("congestion"))})
    wan = f", {WAN_CONGESTION} on {DIRECT_WAN}" if "wan" in args.paths else ""
    say(f"iperf3's TCP congestion control: {', '.join(used) or 'unknown'}"
        + ("" if args.cc else f" (the host's default{wan}; --cc picks one)"))  # fmt: skip

    doc = {
        **run_header(),
        "iperf3_seconds": args.seconds,
        "pings": args.pings,
        "loss_pct": args.loss,
        "paths": args.paths,
        "impls": impls,
        "tcp_congestion_control": args.cc or "the host's default",
        "wan_rtt_ms": args.wan_rtt_ms,
        "wan_iperf3_seconds": args.wan_seconds,
        "wan_tcp_congestion_control": args.cc or WAN_CONGESTION,
        "tinc": {
            "version": version,
            "mode": "switch",
            "cipher": "default (aes-256-cbc)",
            "digest": "default (sha256, MAC 4 bytes)",
        },
        "wall_seconds": round(time.monotonic() - started, 1),
        "runs": runs,
        "results": rows,
        "ratios": ratios,
    }
    write_result("overlay", doc)
    stopped = [f"MTU {r['underlay_mtu']} world: {r['stopped']}" for r in runs if "stopped" in r]
    for line in stopped:
        say(f"not measured in the {line}")
    return 1 if stopped else 0


if __name__ == "__main__":
    sys.exit(main())
