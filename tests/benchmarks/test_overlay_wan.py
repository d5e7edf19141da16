"""The DIRECT-WAN lines of bench-overlay (bench/overlay/wan.py, delay_line.py).

Without the rig: the lines run under CUBIC unless --cc names another, with the delay in
place for every measurement and gone after; a delay line that will not start is recorded
and the run goes on; a kernel without CUBIC skips the path; the table's legend and
digits. With namespaces (root): the real delay line in a NAT router, measured by ping,
a TCP exchange through it with the NAT intact (what the NOTRACK rule is for), and
everything it changed undone afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bench.overlay import delay_line, wan
from bench.overlay.report import DIRECT_WAN, print_matrix, print_ratios
from bench.overlay.wan import WanError, wan_delay
from overlay_core.lab.netns import Rig, unavailable_reason
from tests.benchmarks.test_overlay_report import table_lines, tcp_row
from tests.benchmarks.test_overlay_whole import (
    _main_without_a_rig,
    _measuring_bench,
    bench_overlay,
)

# ---- Bench.wan_lines and main, without a rig ----------------------------------------------


def _wan_bench(
    monkeypatch: pytest.MonkeyPatch, cc: str | None, fail: str | None = None
) -> tuple[Any, list[Any]]:
    """A Bench over stand-ins whose wan_delay records when it was in place."""
    bench, calls = _measuring_bench(monkeypatch)
    bench.args = argparse.Namespace(
        seconds=3, pings=5, loss=[0.0, 1.0], cc=cc, wan_rtt_ms=20.0, wan_seconds=21
    )
    bench.home1 = object()
    monkeypatch.setattr(bench_overlay, "loss_rules", lambda homes, loss: [])
    monkeypatch.setattr(bench_overlay, "dropped", lambda homes: {"packets": 0, "bytes": 0})

    def measure(*args: Any, **kw: Any) -> dict[str, Any]:
        calls.append(("measure", kw["congestion"], kw["seconds"]))
        return {"tcp": {"gbit_per_s": 0.006, "congestion": kw["congestion"]}}

    monkeypatch.setattr(bench_overlay, "measure", measure)

    @contextlib.contextmanager
    def delay(site: Any, ms: float) -> Iterator[dict[str, Any]]:
        calls.append(("delay on", site, ms))
        if fail is not None:
            raise bench_overlay.WanError(fail)
        stats: dict[str, Any] = {"delay_ms": ms}
        try:
            yield stats
        finally:
            stats["forwarded"] = 1234
            calls.append("delay off")

    monkeypatch.setattr(bench_overlay, "wan_delay", delay)
    return bench, calls


@pytest.mark.parametrize(("cc", "used"), [(None, "cubic"), ("bbr", "bbr")])
def test_wan_lines_run_longer_under_cubic_unless_cc_says(
    monkeypatch: pytest.MonkeyPatch, cc: str | None, used: str
) -> None:
    bench, calls = _wan_bench(monkeypatch, cc)
    bench.wan_lines(["underlay", "ztui"], None)
    assert calls[0] == ("delay on", bench.home2, 20.0) and calls[-1] == "delay off"
    measured = [c for c in calls if c[0] == "measure"]
    assert measured == [("measure", used, 21)] * 4  # 2 losses x 2 impls, inside the delay
    assert ("offload", "auto", bench_overlay.Link.DIRECT) in calls  # ztui on a DIRECT link
    assert [(r["path"], r["loss_pct"], r["impl"]) for r in bench.rows] == [
        (DIRECT_WAN, 0.0, "underlay"), (DIRECT_WAN, 0.0, "ztui"),
        (DIRECT_WAN, 1.0, "underlay"), (DIRECT_WAN, 1.0, "ztui"),
    ]  # fmt: skip
    assert all(r["wan_rtt_ms"] == 20.0 and r["iperf3_seconds"] == 21 for r in bench.rows)
    assert bench.wan == {"delay_ms": 20.0, "forwarded": 1234}


def test_other_paths_keep_seconds_and_the_hosts_congestion_control(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench, calls = _wan_bench(monkeypatch, None)
    row = bench._one("DIRECT", 1.0, "underlay", None)
    assert calls == [("measure", None, 3)] and "iperf3_seconds" not in row


def test_a_delay_line_that_will_not_start_is_recorded(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench, calls = _wan_bench(monkeypatch, None, fail="the delay line did not start: boom")
    bench.wan_lines(["underlay", "ztui"], None)
    assert bench.rows == [] and not [c for c in calls if c[0] == "measure"]
    assert bench.wan == {"skipped": "the delay line did not start: boom"}
    assert "DIRECT-WAN skipped: the delay line did not start: boom" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("offered", "argv", "paths"),
    [
        ("reno cubic bbr", [], ["direct", "wan", "relay"]),
        ("reno bbr", [], ["direct", "relay"]),
        ("reno bbr", ["--cc", "bbr"], ["direct", "wan", "relay"]),
    ],
)
def test_without_cubic_the_wan_lines_are_skipped_unless_cc_names_one(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    offered: str,
    argv: list[str],
    paths: list[str],
) -> None:
    built, written = _main_without_a_rig(monkeypatch, offered)
    assert bench_overlay.main(["--mtu", "1500", "--loss", "1", *argv]) == 0
    assert built == [(1500, paths)]
    assert written[0]["wan_tcp_congestion_control"] == (argv[1] if argv else "cubic")
    out = capsys.readouterr().out
    assert ("DIRECT-WAN skipped" in out) == ("wan" not in paths)
    # Which congestion control ran where: the host's, or --cc's everywhere.
    named = "cubic on DIRECT-WAN; --cc picks one" in out
    assert named == ("wan" in paths and not argv)


def test_only_wan_without_cubic_measures_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built, written = _main_without_a_rig(monkeypatch, "reno bbr")
    assert bench_overlay.main(["--mtu", "1500", "--paths", "wan"]) == 2
    assert built == [] and written == []
    out = capsys.readouterr().out
    assert "DIRECT-WAN skipped" in out and "nothing to measure" in out


def test_a_delay_line_that_printed_no_counts_gives_none() -> None:
    """Stopped before it could print its counts (or killed): {} and no error that would
    hide the measurement's own."""
    silent = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert wan._stop(silent) == {}
    assert silent.returncode is not None


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--wan-rtt-ms", "0"], "--wan-rtt-ms takes milliseconds"),
        (["--wan-rtt-ms", "-5"], "--wan-rtt-ms takes milliseconds"),
        (["--wan-rtt-ms", "1001"], "--wan-rtt-ms takes milliseconds"),
        (["--wan-seconds", "0"], "take at least 1"),
        (["--seconds", "0"], "take at least 1"),
    ],
)
def test_wan_options_must_be_sane(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    default = bench_overlay.parse_args([])
    assert (default.wan_rtt_ms, default.wan_seconds) == (20.0, 20)
    assert bench_overlay.parse_args(["--wan-rtt-ms", "35"]).wan_rtt_ms == 35.0
    with pytest.raises(SystemExit) as exit_:
        bench_overlay.parse_args(argv)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


# ---- the table ----------------------------------------------------------------------------


def _wan_row(impl: str, loss: float, gbit: float) -> dict[str, Any]:
    row = tcp_row(impl, path=DIRECT_WAN, loss=loss, gbit=gbit)
    row.update(wan_rtt_ms=20.0, iperf3_seconds=20)
    row["tcp"]["congestion"] = "cubic"
    return row


def test_wan_lines_in_the_table_with_their_legend(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.overlay.report import add_ratios

    rows = [tcp_row("tinc"), tcp_row("ztui", gbit=2.5),
            _wan_row("tinc", 1.0, 0.0051), _wan_row("ztui", 1.0, 0.00753)]  # fmt: skip
    ratios = add_ratios(rows)
    print_matrix(rows, 8, 20)
    out = capsys.readouterr().out
    lines = table_lines(out.replace(DIRECT_WAN, "DIRECT"))  # table_lines knows its PATHS
    # A few Mbit/s get a fourth digit; the ratio is against tinc on the same path.
    assert re.search(r"\b0\.0075\b.*1\.48x$", lines[("1500", "1%", "DIRECT", "ztui")])
    assert " 2.500 " in lines[("1500", "0%", "DIRECT", "ztui")]
    assert "DIRECT-WAN: DIRECT with 20 ms added to every round trip" in out
    assert "iperf3 under cubic for 20 s." in out
    print_ratios(ratios)
    header = capsys.readouterr().out.splitlines()[1]
    assert header.index("DIRECT 0%") < header.index("DIRECT-WAN 1%")


def test_no_wan_legend_without_wan_lines(capsys: pytest.CaptureFixture[str]) -> None:
    print_matrix([tcp_row("tinc"), tcp_row("ztui")], 8, 20)
    assert "DIRECT-WAN" not in capsys.readouterr().out


def test_delay_line_usage_error() -> None:
    proc = subprocess.run([sys.executable, delay_line.__file__], capture_output=True, text=True)
    assert proc.returncode == 2 and "DELAY_MS" in proc.stderr


# ---- the real delay line, in namespaces ---------------------------------------------------

netns = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")

ECHO_SERVER = """
import socket
s = socket.create_server(("0.0.0.0", 7777))
print("ready", flush=True)
c, _ = s.accept()
while data := c.recv(100):
    c.sendall(data)
"""
# Three round trips on one connection: each reply must come back through the delay line
# un-NATed, and each next segment leave masqueraded, or the exchange stalls.
ECHO_CLIENT = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], 7777), timeout=5)
start = time.monotonic()
for n in range(3):
    c.sendall(b"ping %d" % n)
    assert c.recv(100) == b"ping %d" % n
print(round((time.monotonic() - start) * 1000 / 3, 1))
"""


def _avg_rtt_ms(host: Any, target: str) -> float:
    out = host.run(["ping", "-n", "-q", "-c", "5", "-i", "0.05", "-W", "2", target]).stdout
    match = re.search(r"= [\d.]+/([\d.]+)/", out)
    assert match, out
    return float(match.group(1))


@pytest.mark.netns
@netns
def test_delay_line_in_a_nat_router_and_undone_after() -> None:
    with Rig() as rig:
        server = rig.add_public_host("srv")
        home = rig.add_nat_site("home1")
        pc = home.add_host("pc")
        rp_before = home.run(["cat", "/proc/sys/net/ipv4/conf/all/rp_filter"]).stdout
        assert _avg_rtt_ms(pc, server.addr) < 10
        echo = server.popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE)
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        with wan_delay(home, 40) as stats:
            rtt = _avg_rtt_ms(pc, server.addr)
            assert 40 <= rtt < 80, rtt
            client = pc.run([sys.executable, "-c", ECHO_CLIENT, server.addr], timeout=30)
            assert client.returncode == 0, client.stderr
            assert float(client.stdout) >= 40  # each exchange waited in the line
        assert stats["forwarded"] >= 5 + 4 and stats["dropped_full"] == 0
        assert stats["most_held"] >= 1
        # Undone: rule, NOTRACK, TUNs (and their route), rp_filter; the RTT is back.
        assert "lookup 100" not in home.run(["ip", "rule"]).stdout
        assert "NOTRACK" not in home.run(["iptables", "-t", "raw", "-S"]).stdout
        assert home.run(["ip", "link", "show", "dl0"]).returncode != 0
        assert home.run(["cat", "/proc/sys/net/ipv4/conf/all/rp_filter"]).stdout == rp_before
        assert _avg_rtt_ms(pc, server.addr) < 10


@pytest.mark.netns
@netns
def test_delay_line_undone_when_the_block_raises() -> None:
    with Rig() as rig:
        home = rig.add_nat_site("home1")
        with pytest.raises(RuntimeError, match="measurement failed"):
            with wan_delay(home, 5):
                assert home.run(["ip", "link", "show", "dl1"]).returncode == 0
                raise RuntimeError("measurement failed")
        assert "lookup 100" not in home.run(["ip", "rule"]).stdout
        assert "NOTRACK" not in home.run(["iptables", "-t", "raw", "-S"]).stdout
        assert home.run(["ip", "link", "show", "dl0"]).returncode != 0


@pytest.mark.netns
@netns
def test_a_route_that_will_not_go_in_is_a_wan_error_and_nothing_stays() -> None:
    """Bench.wan_lines skips its lines on a WanError and keeps the run's other lines; a
    RigError would end the run. Here table 100 already has a default route."""
    with Rig() as rig:
        home = rig.add_nat_site("home1")
        home.ip("route", "add", "default", "dev", "lan0", "table", "100")
        with pytest.raises(WanError, match="could not route through the delay line"):
            with wan_delay(home, 5):
                pytest.fail("the block ran without the delay in place")
        assert "lookup 100" not in home.run(["ip", "rule"]).stdout
        assert "NOTRACK" not in home.run(["iptables", "-t", "raw", "-S"]).stdout
        assert home.run(["ip", "link", "show", "dl0"]).returncode != 0
