"""The DIRECT-WHOLE lines of bench-overlay (bench/bench_overlay.py), without the rig.

What is pinned down: --paths takes `whole`, by default too, and the paths run in the order
direct, whole, relay whatever order they are given in; why the path is skipped without a 0
in --loss or without any of its impls; UDP segmentation offload goes on on the uplinks for
the block and off again after it, also when the measurement raises or is interrupted;
Bench.whole measures udp, tinc and ztui at 0 % loss while it is on, and nothing (saying
why) when nothing was turned off; Bench.direct brings tinc up once for both paths.

The hosts are stand-ins that record the ethtool commands they are given and keep the
offload state those commands leave, so each test can ask what the state was at any moment.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from bench.overlay import measure
from bench.overlay.measure import set_udp_segmentation_offload, udp_segmentation_offload_on

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def _load_bench_overlay() -> ModuleType:
    """bench_overlay.py runs as a script, importing its helpers as `overlay.*` and
    `record` from its own directory: that directory is on sys.path for the import only."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        return importlib.import_module("bench_overlay")
    finally:
        sys.path.remove(str(BENCH_DIR))


bench_overlay = _load_bench_overlay()
# Its command line, as bench_overlay imported it (`overlay.options`, not `bench.overlay.options`:
# a second copy of the module would not see a monkeypatch).
bench_options = sys.modules["overlay.options"]


class FakeHost:
    """A rig host with an uplink: records commands, and keeps what ethtool left."""

    def __init__(self, name: str, *, refuse: Sequence[str] = ()) -> None:
        self.name = name
        self.iface = "eth0"
        self.commands: list[list[str]] = []
        self.segmentation = "off"  # as build() leaves it
        self.refuse = refuse  # ethtool states this host's uplink will not take

    def run(self, cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(cmd))
        assert cmd[:4] == ["ethtool", "-K", "eth0", "tx-udp-segmentation"], cmd
        state = cmd[4]
        if state in self.refuse:
            return subprocess.CompletedProcess(list(cmd), 1, "", "Operation not supported")
        self.segmentation = state
        return subprocess.CompletedProcess(list(cmd), 0, "", "")


@pytest.fixture
def ethtool(monkeypatch: pytest.MonkeyPatch) -> None:
    """ethtool is "installed" (the fake hosts run it), whatever this machine has."""
    which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *a, **kw: f"/sbin/{name}" if name == "ethtool" else which(name, *a, **kw),
    )


def _states(hosts: Sequence[FakeHost]) -> list[str]:
    return [h.segmentation for h in hosts]


# ---- the command line -------------------------------------------------------------------


def test_paths_default_to_all_four_in_run_order() -> None:
    assert bench_overlay.parse_args([]).paths == ["direct", "wan", "whole", "relay"]


@pytest.mark.parametrize(
    ("given", "runs"),
    [
        (["relay", "whole", "direct"], ["direct", "whole", "relay"]),
        (["whole", "wan", "relay", "direct"], ["direct", "wan", "whole", "relay"]),
        (["whole"], ["whole"]),
        (["relay", "whole"], ["whole", "relay"]),
        (["whole", "whole"], ["whole"]),
    ],
)
def test_paths_run_in_order(given: list[str], runs: list[str]) -> None:
    assert bench_overlay.parse_args(["--paths", *given]).paths == runs


def test_unknown_path_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench_overlay.parse_args(["--paths", "full"])
    assert "invalid choice" in capsys.readouterr().err


def test_whole_skipped_without_zero_loss_or_impls() -> None:
    """Skipped only when --loss has no 0 or --impl none of udp, tinc, ztui; the reason
    says which."""
    everything = list(bench_overlay.IMPLS)
    assert bench_overlay.whole_skipped([0.0, 1.0], everything) is None
    assert bench_overlay.whole_skipped([0.0], ["ztui"]) is None
    no_zero = bench_overlay.whole_skipped([1.0], everything)
    assert no_zero is not None and "0% loss only" in no_zero
    no_impl = bench_overlay.whole_skipped([0.0], ["underlay", "ztui-nogso"])
    assert no_impl is not None and "udp, tinc, ztui" in no_impl


# ---- on for the block, off after it -----------------------------------------------------


@pytest.mark.usefixtures("ethtool")
def test_on_for_the_block_then_off() -> None:
    hosts = [FakeHost("pc1"), FakeHost("pc2")]
    with udp_segmentation_offload_on(hosts) as took:  # type: ignore[arg-type]
        assert took == {"pc1": True, "pc2": True}
        assert _states(hosts) == ["on", "on"]
    assert _states(hosts) == ["off", "off"]
    assert [c[4] for c in hosts[0].commands] == ["on", "off"]


@pytest.mark.usefixtures("ethtool")
@pytest.mark.parametrize("error", [ValueError("iperf3 died"), KeyboardInterrupt()])
def test_off_again_when_the_measurement_raises(error: BaseException) -> None:
    """An error or Ctrl-C inside the block: offload is off again on every host, and the
    error that left the block is the one the caller sees."""
    hosts = [FakeHost("pc1"), FakeHost("pc2")]
    with pytest.raises(type(error)):
        with udp_segmentation_offload_on(hosts):  # type: ignore[arg-type]
            raise error
    assert _states(hosts) == ["off", "off"]


@pytest.mark.usefixtures("ethtool")
def test_a_refused_on_is_reported_and_still_turned_off() -> None:
    hosts = [FakeHost("pc1"), FakeHost("pc2", refuse=("on",))]
    with udp_segmentation_offload_on(hosts) as took:  # type: ignore[arg-type]
        assert took == {"pc1": True, "pc2": False}
    assert _states(hosts) == ["off", "off"]
    assert [c[4] for c in hosts[1].commands] == ["on", "off"]


@pytest.mark.usefixtures("ethtool")
def test_a_refused_off_is_an_error_but_not_over_the_blocks() -> None:
    """Left on, later lines would run under another condition: an error, after every
    other host was turned off. If the block raised, its error wins."""
    stuck, other = FakeHost("pc1", refuse=("off",)), FakeHost("pc2")
    with pytest.raises(measure.OffloadStuck, match="off again on pc1"):
        with udp_segmentation_offload_on([stuck, other]):  # type: ignore[list-item]
            pass
    assert other.segmentation == "off"
    other.segmentation = "on"
    with pytest.raises(ValueError):
        with udp_segmentation_offload_on([stuck, other]):  # type: ignore[list-item]
            raise ValueError("measurement failed")
    assert other.segmentation == "off"


def test_without_ethtool_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure.shutil, "which", lambda name, *a, **kw: None)
    host = FakeHost("pc1")
    assert set_udp_segmentation_offload(host, on=True) is False  # type: ignore[arg-type]
    assert host.commands == []


# ---- Bench.whole and Bench.direct --------------------------------------------------------


class Recorder:
    """Stands in for Bench._one: the row it would record, and the offload state of the
    uplinks at the moment each measurement was made."""

    def __init__(self, hosts: Sequence[FakeHost], fail_on: str | None = None) -> None:
        self.hosts = hosts
        self.fail_on = fail_on
        self.calls: list[tuple[str, float, str, Any, list[str]]] = []

    def __call__(self, path: str, loss: float, impl: str, tinc: Any) -> dict[str, Any]:
        self.calls.append((path, loss, impl, tinc, _states(self.hosts)))
        if impl == self.fail_on:
            raise RuntimeError(f"{impl} failed")
        return {"path": path, "loss_pct": loss, "impl": impl}


def _bench(hosts: Sequence[FakeHost], turned_off: dict[str, bool]) -> Any:
    args = argparse.Namespace(seconds=3, pings=5, loss=[0.0, 1.0], cc=None)
    bench = bench_overlay.Bench(world=None, args=args, mtu=1500)
    bench.hosts = list(hosts)
    bench.segmentation_off = turned_off
    return bench


@pytest.mark.usefixtures("ethtool")
def test_whole_measures_with_offload_on_at_zero_loss() -> None:
    """Each impl is measured once, at 0 %, as DIRECT-WHOLE, with offload on on the uplinks
    build() turned it off on (not on one it could not), and off after."""
    hosts = [FakeHost("pc1"), FakeHost("pc2"), FakeHost("root1")]
    hosts[2].segmentation = "default"  # build() could not turn it off: left alone
    bench = _bench(hosts, {"pc1": True, "pc2": True, "root1": False})
    bench._one = Recorder(hosts)
    tinc = object()
    bench.whole(["udp", "tinc", "ztui"], tinc)
    assert bench._one.calls == [
        ("DIRECT-WHOLE", 0.0, impl, tinc, ["on", "on", "default"])
        for impl in ("udp", "tinc", "ztui")
    ]
    assert _states(hosts) == ["off", "off", "default"]
    assert hosts[2].commands == []


@pytest.mark.usefixtures("ethtool")
def test_whole_turns_offload_off_when_a_measurement_fails() -> None:
    hosts = [FakeHost("pc1"), FakeHost("pc2")]
    bench = _bench(hosts, {"pc1": True, "pc2": True})
    bench._one = Recorder(hosts, fail_on="tinc")
    with pytest.raises(RuntimeError, match="tinc failed"):
        bench.whole(["udp", "tinc", "ztui"], None)
    assert [c[2] for c in bench._one.calls] == ["udp", "tinc"]
    assert _states(hosts) == ["off", "off"]


@pytest.mark.usefixtures("ethtool")
def test_whole_skipped_when_nothing_was_turned_off(capsys: pytest.CaptureFixture[str]) -> None:
    """No ethtool at build(): the DIRECT lines already were whole; one line, no
    measurement, no command."""
    hosts = [FakeHost("pc1"), FakeHost("pc2")]
    bench = _bench(hosts, {"pc1": False, "pc2": False})
    bench._one = Recorder(hosts)
    bench.whole(["udp", "tinc", "ztui"], None)
    assert bench._one.calls == [] and hosts[0].commands == []
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "DIRECT-WHOLE skipped" in out[0] and "already are whole" in out[0]
    assert bench.whole_skipped is not None and "already are whole" in bench.whole_skipped


@pytest.mark.usefixtures("ethtool")
def test_whole_skipped_when_offload_will_not_go_on(capsys: pytest.CaptureFixture[str]) -> None:
    hosts = [FakeHost("pc1", refuse=("on",)), FakeHost("pc2")]
    bench = _bench(hosts, {"pc1": True, "pc2": True})
    bench._one = Recorder(hosts)
    bench.whole(["ztui"], None)
    assert bench._one.calls == []
    assert _states(hosts) == ["off", "off"]
    assert "would not turn UDP segmentation offload back on for pc1" in capsys.readouterr().out


class FakeTinc:
    def __init__(self) -> None:
        self.stopped = 0

    def stop(self) -> None:
        self.stopped += 1


@pytest.fixture
def direct_bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[Any]]]:
    """A Bench whose tinc net, DIRECT phase and DIRECT-WHOLE lines are recorded."""
    bench = _bench([], {})
    seen: list[Any] = []
    tinc = FakeTinc()

    def tinc_direct() -> FakeTinc:
        seen.append("tinc net")
        return tinc

    def tinc_up(net: FakeTinc, pairs: list[tuple[str, str]]) -> bool:
        seen.append("tinc up")
        return True

    monkeypatch.setattr(bench, "tinc_direct", tinc_direct)
    monkeypatch.setattr(bench, "_tinc_up", tinc_up)
    monkeypatch.setattr(bench, "phase", lambda path, impls, net: seen.append((path, impls, net)))
    monkeypatch.setattr(bench, "whole", lambda impls, net: seen.append(("whole", impls, net)))
    monkeypatch.setattr(bench, "wan_lines", lambda impls, net: seen.append(("wan", impls, net)))
    bench.fake_tinc = tinc
    yield bench, seen


def test_direct_then_wan_then_whole_on_one_tinc_net(direct_bench: tuple[Any, list[Any]]) -> None:
    bench, seen = direct_bench
    impls = list(bench_overlay.IMPLS)
    bench.direct(impls, ["direct", "wan", "whole", "relay"])
    tinc = bench.fake_tinc
    assert seen == [
        "tinc net",
        "tinc up",
        ("DIRECT", impls, tinc),
        ("wan", ["underlay", "tinc", "ztui"], tinc),
        ("whole", ["udp", "tinc", "ztui"], tinc),
    ]
    assert tinc.stopped == 1


def test_wan_alone_brings_tinc_up(direct_bench: tuple[Any, list[Any]]) -> None:
    bench, seen = direct_bench
    bench.direct(["udp", "tinc", "ztui", "ztui-nogso"], ["wan"])
    assert seen == ["tinc net", "tinc up", ("wan", ["tinc", "ztui"], bench.fake_tinc)]


def test_whole_alone(direct_bench: tuple[Any, list[Any]]) -> None:
    """--paths whole: no DIRECT lines, tinc still comes up for DIRECT-WHOLE's."""
    bench, seen = direct_bench
    bench.direct(["underlay", "tinc", "ztui-nogso"], ["whole"])
    assert seen == ["tinc net", "tinc up", ("whole", ["tinc"], bench.fake_tinc)]


def test_tinc_that_would_not_come_up_leaves_both(
    direct_bench: tuple[Any, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench, seen = direct_bench
    monkeypatch.setattr(bench, "_tinc_up", lambda net, pairs: False)
    bench.direct(["udp", "tinc", "ztui"], ["direct", "wan", "whole"])
    assert seen[1:] == [
        ("DIRECT", ["udp", "ztui"], bench.fake_tinc),
        ("wan", ["ztui"], bench.fake_tinc),
        ("whole", ["udp", "ztui"], bench.fake_tinc),
    ]
    assert bench.fake_tinc.stopped == 1


def test_direct_alone_measures_no_whole_lines(direct_bench: tuple[Any, list[Any]]) -> None:
    bench, seen = direct_bench
    bench.direct(["udp", "ztui"], ["direct", "relay"])
    assert seen == [("DIRECT", ["udp", "ztui"], None)]


# ---- the glue: Bench._one, Bench._bare_udp, main -----------------------------------------


def _node(name: str) -> Any:
    host = SimpleNamespace(name=name, addr=f"198.18.0.{len(name)}")
    proc = SimpleNamespace(pid=4000 + len(name))
    return SimpleNamespace(host=host, running=True, proc=proc, address=0x1234, site=None)


def _measuring_bench(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Any]]:
    """A Bench whose rig is stand-ins: what set_offload, measure and measure_bare_udp
    were asked is recorded, nothing is measured."""
    bench = _bench([], {})
    calls: list[Any] = []
    bench.a, bench.b, bench.root = _node("pc1"), _node("pc2"), _node("root1")
    bench.a.peer = lambda address: {"link": "DIRECT"}
    bench.home2 = SimpleNamespace(addr="198.18.1.13")
    bench.world = SimpleNamespace(check_alive=lambda: None)
    bench.target, bench.datagram_bytes = "10.147.17.2", 1432
    monkeypatch.setattr(
        bench, "set_offload", lambda mode, link: calls.append(("offload", mode, link))
    )
    monkeypatch.setattr(bench_overlay, "measure", lambda *a, **kw: {"tcp": {"gbit_per_s": 1.0}})

    def bare(*args: Any, mode: str, **kw: Any) -> dict[str, Any]:
        calls.append(("bare", mode))
        return {"mode": mode, "gbit_per_s": 1.0}

    monkeypatch.setattr(bench_overlay, "measure_bare_udp", bare)
    return bench, calls


def test_ztui_on_direct_whole_waits_for_a_direct_link(monkeypatch: pytest.MonkeyPatch) -> None:
    """The row says DIRECT-WHOLE, but the link ztui must be on is DIRECT (there is no
    DIRECT-WHOLE link state: asking for one would abort the run)."""
    bench, calls = _measuring_bench(monkeypatch)
    row = bench._one("DIRECT-WHOLE", 0.0, "ztui", None)
    assert calls == [("offload", "auto", bench_overlay.Link.DIRECT)]
    assert row["path"] == "DIRECT-WHOLE" and row["offload"] == "auto" and row["link"] == "DIRECT"


@pytest.mark.parametrize(("path", "modes"), [("DIRECT", ["single", "mmsg", "gso"]),
                                             ("DIRECT-WHOLE", ["gso"])])  # fmt: skip
def test_bare_udp_on_direct_whole_is_gso_alone(
    monkeypatch: pytest.MonkeyPatch, path: str, modes: list[str]
) -> None:
    bench, calls = _measuring_bench(monkeypatch)
    row = bench._one(path, 0.0, "udp", None)
    assert calls == [("bare", mode) for mode in modes]
    assert row["path"] == path and list(row["bare_udp"]) == modes


def _main_without_a_rig(
    monkeypatch: pytest.MonkeyPatch, offered: str = "reno cubic bbr"
) -> tuple[list[Any], list[Any]]:
    """main() with stand-ins for the rig, the results file and the kernel's congestion
    controls (`offered`), so what it decides does not depend on this machine's kernel."""
    built: list[Any] = []
    written: list[Any] = []
    monkeypatch.setattr(
        bench_options, "available_congestion_controls", lambda: set(offered.split())
    )
    monkeypatch.setattr(bench_overlay, "why_not", lambda: None)
    monkeypatch.setattr(bench_overlay, "tinc_version", lambda: "1.0.36")
    monkeypatch.setattr(
        bench_overlay,
        "measure_world",
        lambda args, mtu, impls: built.append((mtu, list(args.paths))) or {"rows": []},
    )
    monkeypatch.setattr(bench_overlay, "write_result", lambda name, doc: written.append(doc))
    monkeypatch.setattr(bench_overlay.signal, "signal", lambda *a: None)
    return built, written


@pytest.mark.parametrize("argv", [["--loss", "1"], ["--impl", "underlay", "ztui-nogso"]])
def test_only_whole_and_nothing_it_measures_builds_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """No world is built and the last results are not overwritten by an empty run."""
    built, written = _main_without_a_rig(monkeypatch)
    assert bench_overlay.main(["--paths", "whole", "--mtu", "1500", *argv]) == 2
    assert built == [] and written == []
    out = capsys.readouterr().out
    assert "DIRECT-WHOLE skipped" in out and "nothing to measure" in out


def test_the_results_name_the_paths_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    built, written = _main_without_a_rig(monkeypatch)
    assert bench_overlay.main(["--mtu", "1500", "--loss", "1"]) == 0
    assert built == [(1500, ["direct", "wan", "relay"])]
    assert [doc["paths"] for doc in written] == [["direct", "wan", "relay"]]


class _World:
    """OverlayWorld without a rig: a context manager and nothing else."""

    def __enter__(self) -> _World:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _StuckBench:
    """A Bench whose DIRECT lines are measured and whose DIRECT-WHOLE cannot turn the
    offload off again in the MTU 1500 world; records which phases ran."""

    phases: list[str] = []

    def __init__(self, world: object, args: argparse.Namespace, mtu: int) -> None:
        self.mtu, self.tinc, self.whole_skipped = mtu, None, None
        self.rows: list[dict[str, Any]] = []
        self.wan: dict[str, Any] = {}

    def build(self) -> dict[str, Any]:
        return {"underlay_mtu": self.mtu}

    def direct(self, impls: list[str], paths: list[str]) -> None:
        self.rows.append(
            {"path": "DIRECT", "loss_pct": 0, "impl": "tinc", "underlay_mtu": self.mtu}
        )
        self.phases.append(f"direct {self.mtu}")
        if self.mtu == 1500:
            raise bench_overlay.OffloadStuck("could not turn it off again on pc1")

    def relayed(self, impls: list[str]) -> None:
        self.phases.append(f"relay {self.mtu}")


def test_offload_stuck_on_skips_that_worlds_relay_lines_and_keeps_the_rest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whole batches would make that world's lossy RELAY lines lie, so they are not
    measured; its lines before stand, the next world (a rig of its own) runs whole, the
    results say why, and the exit status says something was left out."""
    measure_world = bench_overlay.measure_world  # the real one, over the fakes below
    _, written = _main_without_a_rig(monkeypatch)
    monkeypatch.setattr(bench_overlay, "measure_world", measure_world)
    monkeypatch.setattr(bench_overlay, "OverlayWorld", _World)
    monkeypatch.setattr(bench_overlay, "Bench", _StuckBench)
    monkeypatch.setattr(_StuckBench, "phases", [])
    monkeypatch.setattr(bench_overlay, "add_bare_udp", lambda rows: None)
    monkeypatch.setattr(bench_overlay, "print_legacy", lambda *a: None)
    monkeypatch.setattr(bench_overlay, "print_matrix", lambda *a: None)
    monkeypatch.setattr(bench_overlay, "print_ratios", lambda *a: None)
    assert bench_overlay.main(["--mtu", "1500", "1280"]) == 1
    assert _StuckBench.phases == ["direct 1500", "direct 1280", "relay 1280"]
    [doc] = written
    assert [run["underlay_mtu"] for run in doc["runs"]] == [1500, 1280]
    assert "off again on pc1" in doc["runs"][0]["stopped"]
    assert "stopped" not in doc["runs"][1]
    assert [row["underlay_mtu"] for row in doc["results"]] == [1500, 1280]
    assert "not measured in the MTU 1500 world" in capsys.readouterr().out


def test_the_tcp_result_names_the_congestion_control_iperf3_used() -> None:
    out = (
        '{"end": {"sum_received": {"bits_per_second": 2e9, "bytes": 2000000000, '
        '"seconds": 8}, "sum_sent": {"retransmits": 3}, "sender_tcp_congestion": "cubic"}}'
    )
    result = measure._tcp_result(out, "")
    assert result["congestion"] == "cubic" and result["gbit_per_s"] == 2.0


def test_cc_is_passed_to_iperf3_and_named_in_the_results(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench_overlay.parse_args([]).cc is None
    _, written = _main_without_a_rig(monkeypatch)
    monkeypatch.setattr(
        bench_overlay,
        "measure_world",
        lambda args, mtu, impls: {"rows": [
            {"underlay_mtu": mtu, "loss_pct": 1.0, "path": "DIRECT", "impl": "tinc",
             "tcp": {"gbit_per_s": 0.4, "congestion": args.cc}}
        ]},
    )  # fmt: skip
    assert bench_overlay.main(["--mtu", "1500", "--loss", "1", "--cc", "cubic"]) == 0
    assert written[0]["tcp_congestion_control"] == "cubic"
    assert "iperf3's TCP congestion control: cubic" in capsys.readouterr().out


def test_the_one_frame_path_is_measured_on_request_only() -> None:
    """ztui-off (--offload off) is no line of the default run, which it would lengthen by
    a line per MTU, loss and path, but --impl takes it, and it restarts the daemons so."""
    assert "ztui-off" not in bench_overlay.parse_args([]).impl
    assert bench_overlay.parse_args(["--impl", "tinc", "ztui-off"]).impl == ["tinc", "ztui-off"]
    assert bench_overlay.OFFLOAD["ztui-off"] == "off"
    assert set(bench_overlay.parse_args([]).impl) == set(bench_overlay.IMPLS) - {"ztui-off"}


def test_an_unknown_cc_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    offered = tmp_path / "tcp_available_congestion_control"
    offered.write_text("reno cubic bbr\n")
    monkeypatch.setattr(bench_options, "CONGESTION_CONTROLS", offered)
    assert bench_overlay.parse_args(["--cc", "cubic"]).cc == "cubic"
    with pytest.raises(SystemExit) as exit_:
        bench_overlay.parse_args(["--cc", "vegas"])
    assert exit_.value.code == 2
    assert "--cc vegas: this kernel offers bbr, cubic, reno" in capsys.readouterr().err
