"""One measurement of bench-overlay, and the router rules the measurements run under.

A measurement, from pc1 to a target served in pc2's namespace (an overlay address, a tinc
address, or home2's public address for the bare underlay):

1. idle RTT: `ping -c --pings -i 0.1` with nothing else running;
2. one iperf3 TCP stream for --seconds; from 1 s after it starts until shortly before it
   ends, `ping -i 0.2` beside it: the RTT under load (what an ssh session feels while a
   copy runs through the same tunnel);
3. the daemons' CPU (user + system seconds, psutil, by their own PIDs) over step 2, per
   Gbit received by iperf3, and their RSS right after it.

Router rules, all inserted at the head of the chain in a home router's namespace and
deleted again when the measurement (or phase) that needed them ends, also on errors:

* loss, for one measurement at a time: `-m statistic --mode random --probability P -j
  DROP` in FORWARD on both home routers, for packets entering (`-i wan0`) and leaving
  (`-o wan0`) through the WAN. A packet from one home to the other (directly, or through
  the relay) crosses one home's WAN outwards and the other's inwards, two such rules, so
  each rule drops with P = 1 - sqrt(1 - loss): the end-to-end loss in each direction is
  exactly --loss (1 %), not twice that. This kernel has no netem, the usual tool. The
  rule drops what crosses the router: one UDP datagram at a time for the overlays (UDP
  segmentation offload is off on the hosts' uplinks, see set_udp_segmentation_offload),
  but a whole TSO super-packet (tens of KB, up to ~45 segments) of the bare underlay's
  TCP, so the underlay's lossy line is a harsher loss than a wire's; the results record
  the packets and bytes each lossy run lost.
* no direct UDP between the homes: in FORWARD on each home router, UDP to or from the
  other home's public address is dropped (TCP and UDP to the root still pass). That is a
  pair of NATs that cannot be punched through, so ztui relays through its root, and
  tinc, whose probes to the other home go unanswered, through its hub.
* port forwards (nat PREROUTING on home2's WAN, DNAT to pc2): TCP to the iperf3 port and
  ICMP echo for the bare-underlay measurement, UDP to bare_udp.PORT for the bare-UDP one,
  UDP and TCP 655 for tinc. These stay for the world's life and go with its namespaces.

UDP segmentation offload: a veth offers it, and left on, a UDP GSO send (ztui's, bare
UDP's gso mode: up to ~45 datagrams in one skb) crosses both routers as one packet and is
split only at pc2's socket. The bench turns it off on the hosts' uplinks for the world's
life, as on a NIC without USO (most NAS NICs): the batch is split into wire datagrams as it
leaves pc1, each is forwarded on its own, and a loss rule drops one datagram, not a batch.
The price on this rig is that every datagram is then forwarded one by one through both
routers and the bridges, on the same two cores as both ends. The DIRECT-WHOLE lines turn it
back on for their measurements only (udp_segmentation_offload_on), at 0 % loss.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psutil

from overlay_core.lab.netns import Host, Site

IPERF_PORT = 5201
IDLE_PING_INTERVAL_S = 0.1
LOAD_PING_INTERVAL_S = 0.2
LOAD_PING_DELAY_S = 1.0
MB = 1024 * 1024
_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")
_LOSS = re.compile(r"([\d.]+)% packet loss")

Rule = tuple[Site, list[str]]


# ---- router rules -------------------------------------------------------------------------


def forward_ports(site: Site, host: Host, ports: Sequence[tuple[str, int]], icmp: bool) -> None:
    """The router DNATs (proto, port) pairs and ICMP echo arriving on its WAN to host."""
    matches = [["-p", proto, "--dport", str(port)] for proto, port in ports]
    if icmp:
        matches.append(["-p", "icmp", "--icmp-type", "8"])
    for match in matches:
        site.run(
            ["iptables", "-t", "nat", "-A", "PREROUTING", "-i", Site.WAN_IF, *match,
             "-j", "DNAT", "--to-destination", host.addr],
            check=True,
        )  # fmt: skip


def loss_rules(sites: Sequence[Site], loss_pct: float) -> list[Rule]:
    """Random drops on every site's WAN side, both directions (see the module docstring)."""
    if loss_pct <= 0:
        return []
    p = 1.0 - math.sqrt(1.0 - loss_pct / 100.0)
    return [
        (site, ["FORWARD", way, Site.WAN_IF, "-m", "statistic", "--mode", "random",
                "--probability", f"{p:.8f}", "-j", "DROP"])
        for site in sites
        for way in ("-i", "-o")
    ]  # fmt: skip


def no_direct_udp_rules(one: Site, other: Site) -> list[Rule]:
    """Each router drops UDP to and from the other home's public address."""
    return [
        (site, ["FORWARD", "-p", "udp", flag, peer.addr, "-j", "DROP"])
        for site, peer in ((one, other), (other, one))
        for flag in ("-d", "-s")
    ]


def dropped(sites: Sequence[Site]) -> dict[str, int]:
    """Packets and bytes the loss rules on these sites' FORWARD chains have dropped so
    far (bytes per packet tells what the rule saw: wire packets or GSO super-packets)."""
    packets = size = 0
    for site in sites:
        for line in site.run(["iptables", "-v", "-S", "FORWARD"]).stdout.splitlines():
            fields = line.split()
            if "statistic" in fields and "-c" in fields:
                at = fields.index("-c")
                packets += int(fields[at + 1])
                size += int(fields[at + 2])
    return {"packets": packets, "bytes": size}


def set_udp_segmentation_offload(host: Host, on: bool) -> bool:
    """Turn UDP segmentation offload on the host's uplink on or off (see the module
    docstring); False without ethtool, or when ethtool refused."""
    if shutil.which("ethtool") is None:
        return False
    state = "on" if on else "off"
    proc = host.run(["ethtool", "-K", host.iface, "tx-udp-segmentation", state])
    return proc.returncode == 0


def _all_off(hosts: Sequence[Host]) -> list[str]:
    """Segmentation offload off on every host's uplink; the names where that failed.
    Each host is tried even if one before it raised, so none is left on by accident."""
    failed = []
    for host in hosts:
        try:
            ok = set_udp_segmentation_offload(host, on=False)
        except (OSError, subprocess.SubprocessError):
            ok = False
        if not ok:
            failed.append(host.name)
    return failed


class OffloadStuck(RuntimeError):
    """UDP segmentation offload could not be turned off again: the lines measured after
    it would lose whole GSO batches to a drop, so the run must stop there."""


@contextlib.contextmanager
def udp_segmentation_offload_on(hosts: Sequence[Host]) -> Iterator[dict[str, bool]]:
    """UDP segmentation offload on for the block on these hosts' uplinks, off again after
    it, also when the block raises or is interrupted (Ctrl-C, SIGTERM's SystemExit): the
    lines measured after it would otherwise run with batches a drop takes whole.

    Yields, by host name, whether turning it on took; the caller decides whether a
    measurement is worth making when one did not. Turning it off again failing is an
    error (OffloadStuck) unless the block is already raising, whose error then wins."""
    took: dict[str, bool] = {}
    try:
        for host in hosts:
            took[host.name] = set_udp_segmentation_offload(host, on=True)
        yield took
    except BaseException:
        _all_off(hosts)
        raise
    failed = _all_off(hosts)
    if failed:
        raise OffloadStuck(
            f"could not turn UDP segmentation offload off again on {', '.join(failed)}"
        )


@contextlib.contextmanager
def router_rules(rules: Sequence[Rule]) -> Iterator[None]:
    """Insert the rules (filter table) for the duration of the block; delete them after."""
    added: list[Rule] = []
    try:
        for site, spec in rules:
            site.run(["iptables", "-I", *spec], check=True)
            added.append((site, spec))
        yield
    finally:
        for site, spec in reversed(added):
            with contextlib.suppress(Exception):
                site.run(["iptables", "-D", *spec], timeout=30)


# ---- processes ---------------------------------------------------------------------------


def cpu_seconds(pids: dict[str, int | None]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times() if pid else None
        except psutil.Error:
            times = None
        out[name] = None if times is None else times.user + times.system
    return out


def rss_mb(pids: dict[str, int | None]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, pid in pids.items():
        try:
            out[name] = round(psutil.Process(pid).memory_info().rss / MB, 1) if pid else None
        except psutil.Error:
            out[name] = None
    return out


# ---- ping and iperf3 ---------------------------------------------------------------------


def ping(
    host: Host, target: str, count: int, interval: float = IDLE_PING_INTERVAL_S
) -> dict[str, Any]:
    proc = host.run(
        ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", "2", target],
        timeout=count * interval + 30,
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


def snmp(host: Host) -> dict[str, int]:
    """The namespace's UDP datagrams and TCP segments in and out (/proc/net/snmp)."""
    lines = host.run(["cat", "/proc/net/snmp"]).stdout.splitlines()
    table: dict[str, dict[str, str]] = {}
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        proto, _, names = head.partition(":")
        table[proto] = dict(zip(names.split(), values.partition(":")[2].split(), strict=False))
    wanted = {"udp_in": ("Udp", "InDatagrams"), "udp_out": ("Udp", "OutDatagrams"),
              "tcp_in": ("Tcp", "InSegs"), "tcp_out": ("Tcp", "OutSegs")}  # fmt: skip
    return {key: int(table.get(proto, {}).get(name, 0)) for key, (proto, name) in wanted.items()}


def _serve(server: Host) -> subprocess.Popen[Any]:
    """`iperf3 -s -1` in the server's namespace, listening when this returns."""
    srv = server.popen(
        ["iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while f":{IPERF_PORT}" not in server.run(["ss", "-ltnH"]).stdout:
        if time.monotonic() > deadline:
            raise RuntimeError("iperf3 -s did not listen within 10 s")
        time.sleep(0.1)
    return srv


def _reap(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _tcp_result(stdout: str, stderr: str) -> dict[str, Any]:
    try:
        result = json.loads(stdout)
    except ValueError:
        return {"error": (stderr or stdout).strip()[-300:]}
    if "error" in result:
        return {"error": result["error"]}
    end = result["end"]
    received = end["sum_received"]
    return {
        "gbit_per_s": received["bits_per_second"] / 1e9,
        "mbit_per_s": received["bits_per_second"] / 1e6,
        "bytes": received["bytes"],
        "retransmits": end["sum_sent"].get("retransmits"),
        "seconds": received["seconds"],
        # Under random loss this decides much: BBR barely slows for it, CUBIC halves.
        "congestion": end.get("sender_tcp_congestion"),
    }


def measure(
    server: Host,
    client: Host,
    target: str,
    *,
    seconds: int,
    pings: int,
    daemons: dict[str, int | None],
    relay: Host | None = None,
    congestion: str | None = None,
) -> dict[str, Any]:
    """Idle RTT, then TCP with RTT under load and the daemons' CPU and RSS (see above);
    with `relay`, what that namespace received meanwhile (UDP datagrams, TCP segments).
    `congestion`: the sender's TCP congestion control (iperf3 -C); None: the namespace's
    default, which is the host's (the result names the one used)."""
    idle = ping(client, target, pings)
    srv = _serve(server)
    try:
        relay_before = snmp(relay) if relay is not None else {}
        before = cpu_seconds(daemons)
        cc = ["-C", congestion] if congestion else []
        cli = client.popen(
            ["iperf3", "-c", target, "-p", str(IPERF_PORT), "-t", str(seconds), "-J", *cc],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(LOAD_PING_DELAY_S)
        count = max(3, int((seconds - LOAD_PING_DELAY_S - 0.5) / LOAD_PING_INTERVAL_S))
        load = ping(client, target, count, LOAD_PING_INTERVAL_S)
        try:
            out, err = cli.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            cli.kill()
            out, err = cli.communicate(timeout=10)
        after = cpu_seconds(daemons)
        rss = rss_mb(daemons)
        relay_after = snmp(relay) if relay is not None else {}
    finally:
        _reap(srv)
    tcp = _tcp_result(out, err)
    used = {
        name: round(after[name] - start, 3)  # type: ignore[operator]
        for name, start in before.items()
        if start is not None and after.get(name) is not None
    }
    cpu: dict[str, Any] = {"seconds_by_daemon": used}
    if daemons and len(used) == len(daemons):
        total = sum(used.values())
        cpu["seconds"] = round(total, 3)
        if tcp.get("bytes"):
            cpu["seconds_per_gbit"] = round(total / (tcp["bytes"] * 8 / 1e9), 3)
    result = {
        "target": target,
        "tcp": tcp,
        "ping_idle": idle,
        "ping_load": load,
        "cpu": cpu,
        "rss_mb": rss,
    }
    if relay is not None:
        result["relay_traffic"] = {k: relay_after[k] - relay_before[k] for k in relay_after}
    return result
