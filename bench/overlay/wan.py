"""The DIRECT-WAN lines of bench-overlay: the DIRECT rig with a city-to-city round trip.

The rig's homes are namespaces on one machine, ~0.1 ms apart. There a tunnel's own
per-packet latency is most of every round trip, and under random loss CUBIC (a NAS's
usual congestion control) runs at a rate proportional to 1/RTT: a tunnel that adds
0.3 ms looks 2-3x slower than one that adds 0.1 ms, though between two cities, 10-40 ms
apart, both add a percent or two. These lines put a real WAN's round trip into the rig:
home2's router holds every packet arriving from its WAN for --wan-rtt-ms before routing
it on (one direction only, so each round trip grows by that much), and iperf3 runs under
CUBIC unless --cc names another.

How, in home2's router namespace, for the block of `wan_delay`:
* bench/overlay/delay_line.py runs there and owns two TUNs, dl0 and dl1;
* `ip rule iif wan0 lookup 100` sends everything from the WAN (after conntrack has undone
  the NAT, so to LAN addresses) to table 100, whose default route is dl0;
* the delay line holds each packet, then writes it to dl1, where the kernel routes it to
  the LAN by the main table;
* packets from dl1 are not tracked again (raw NOTRACK): conntrack would otherwise take
  the already un-NATed packet for a new flow from the outside to the LAN address, and
  the LAN host's replies would leave without being masqueraded;
* rp_filter is off for dl1, whose packets come from addresses routed via the WAN.

The loss rules match once, on the way in from wan0, as without the delay. The delay line
is Python and moves a few hundred Mbit/s at most on this rig (the run records what it
forwarded and dropped): that is plenty for the lossy lines, where CUBIC at 1 % loss and
20 ms gets a few Mbit/s on any tunnel, and the bare underlay's line at 0 % shows its
ceiling. Everything is undone when the block ends, also on errors: the rule and the
iptables rule deleted, rp_filter put back, the delay line stopped (its TUNs and their
route go with it).
"""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from overlay_core.lab.netns import RigError, Site

DELAY_LINE = Path(__file__).with_name("delay_line.py")
WAN_RTT_MS = 20.0
WAN_CONGESTION = "cubic"
# At 1 % loss and 20 ms CUBIC runs at a few Mbit/s and an 8 s line sees ~45 losses: the
# lines run longer, so that two tunnels' figures differ by more than their noise.
WAN_SECONDS = 20
TABLE = "100"
RULE_PRIORITY = "100"
READY_TIMEOUT_S = 10.0
TXQUEUELEN = "10000"  # dl0's queue: a scheduling hiccup of the delay line is no loss
NOTRACK = ["PREROUTING", "-i", "dl1", "-j", "NOTRACK"]
RP_FILTER_ALL = "/proc/sys/net/ipv4/conf/all/rp_filter"


class WanError(RuntimeError):
    """The delay line would not start or could not be routed through: the lines are
    skipped and the run goes on, rather than losing every line measured so far."""


def _start(site: Site, delay_ms: float) -> subprocess.Popen[str]:
    proc = site.popen(
        [sys.executable, str(DELAY_LINE), f"{delay_ms:g}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
    if not ready or proc.stdout.readline().strip() != "ready":
        _stop(proc)
        err = proc.stderr.read() if proc.stderr else ""
        raise WanError(f"the delay line did not start: {err.strip()[-300:] or 'no ready'}")
    return proc


def _stop(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """SIGTERM, then the counts it prints; {} if it had died or would not say."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        return {}
    lines = out.strip().splitlines()
    try:
        counts: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:  # killed mid-line
        return {}
    return counts


def _route_through(site: Site, undo: list[Callable[[], object]]) -> None:
    """The routing of the module docstring; each step's undo goes on `undo` as it lands
    (the TUNs' own settings and route go with them)."""
    site.ip("link", "set", "dl0", "txqueuelen", TXQUEUELEN, "up")
    site.ip("link", "set", "dl1", "up")
    site.ip("route", "add", "default", "dev", "dl0", "table", TABLE)
    site.ip("rule", "add", "iif", Site.WAN_IF, "lookup", TABLE, "priority", RULE_PRIORITY)
    undo.append(lambda: site.ip("rule", "del", "priority", RULE_PRIORITY))
    site.run(["iptables", "-t", "raw", "-I", *NOTRACK], check=True)
    undo.append(lambda: site.run(["iptables", "-t", "raw", "-D", *NOTRACK], timeout=30))
    # The effective value is the larger of all's and the device's: both go to 0.
    was = str(site.run(["cat", RP_FILTER_ALL]).stdout).strip()
    site.sysctl("net.ipv4.conf.all.rp_filter", 0)
    undo.append(lambda: site.sysctl("net.ipv4.conf.all.rp_filter", was))
    site.sysctl("net.ipv4.conf.dl1.rp_filter", 0)


@contextlib.contextmanager
def wan_delay(site: Site, delay_ms: float) -> Iterator[dict[str, Any]]:
    """Everything `site`'s router receives on its WAN is delayed by `delay_ms` for the
    block (module docstring). Yields a dict that holds, after the block, the delay
    line's counts (forwarded, dropped_full, write_errors, most_held)."""
    stats: dict[str, Any] = {"delay_ms": delay_ms}
    undo: list[Callable[[], object]] = []
    proc = _start(site, delay_ms)
    try:
        try:
            _route_through(site, undo)
        except (RigError, subprocess.SubprocessError, OSError) as exc:
            raise WanError(f"could not route through the delay line: {exc}") from exc
        yield stats
    finally:
        for step in reversed(undo):
            with contextlib.suppress(Exception):
                step()
        stats.update(_stop(proc))
