"""The bare-UDP ceiling of bench-overlay (bench/overlay/bare_udp.py), without the rig.

The pure parts: how many datagrams one GSO send carries (the same runs ztui's sender
makes, and the mmsg mode's sendmmsg), how many datagrams a coalesced receive held, and how
the two ends' reports become a result. Then both programs for real over 127.0.0.1 in each
mode, through the same parent code the bench runs, with a stand-in for the rig's Host that
runs commands here instead of in a namespace; and what either end says without
sendmmsg / recvmmsg.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from bench.overlay import bare_udp
from bench.overlay.bare_udp import (
    NO_MMSG,
    datagrams_in,
    gso_segments,
    measure_bare_udp,
    segments_for,
    summarize,
)
from overlay_core.io.udp_offload import MAX_SEGMENTS, gso_runs


@pytest.mark.parametrize("size", [1432, 1400, 1212, 1200, 576, 100, 9000, 65487])
def test_gso_segments_is_the_run_ztui_sends(size: int) -> None:
    """A run of equal datagrams is cut by udp_offload.gso_runs, the daemon's sender; the
    bare sender puts exactly as many in one send."""
    runs = gso_runs([bytes(size)] * 200)
    assert gso_segments(size) == len(runs[0])


def test_gso_segments_limits() -> None:
    """45 of 1432 bytes fill a send (46 would pass 64 KB); small datagrams stop at 64;
    a datagram too large to segment goes alone; a size of zero is a caller's bug."""
    assert gso_segments(1432) == 45
    assert gso_segments(1432) * 1432 <= 65535 - 8 - 20 < (gso_segments(1432) + 1) * 1432
    assert gso_segments(100) == MAX_SEGMENTS
    assert gso_segments(70000) == 1
    with pytest.raises(ValueError):
        gso_segments(0)


@pytest.mark.parametrize("size", [1432, 1200, 100])
def test_mmsg_sends_the_runs_gso_sends(size: int) -> None:
    """mmsg's sendmmsg carries as many datagrams as gso's UDP_SEGMENT send, so the two
    modes differ only in the call; single sends one."""
    assert segments_for("mmsg", size) == segments_for("gso", size) == gso_segments(size)
    assert segments_for("single", size) == 1


@pytest.mark.parametrize(
    ("nbytes", "segment", "count"),
    [
        (1432, 0, 1),  # a plain read: one datagram, whatever its size
        (60000, 0, 1),
        (1432 * 3, 1432, 3),  # a coalesced run of full datagrams
        (1432 * 2 + 100, 1432, 3),  # ... whose last one is shorter
        (1000, 1432, 1),  # a run of one, shorter than its segment size
    ],
)
def test_datagrams_in_a_receive(nbytes: int, segment: int, count: int) -> None:
    assert datagrams_in(nbytes, segment) == count


def _sent(datagrams: int, seconds: float = 6.0) -> dict[str, Any]:
    return {"datagrams": datagrams, "calls": datagrams // 45, "seconds": seconds,
            "send_errors": {}}  # fmt: skip


def _got(datagrams: int, seconds: float, gro: bool = True) -> dict[str, Any]:
    return {"datagrams": datagrams, "bytes": datagrams * 1432, "reads": datagrams,
            "seconds": seconds, "gro": gro}  # fmt: skip


def test_summarize_rate_and_loss() -> None:
    """Gbit/s is the payload received over the receiver's first-to-last span; loss is
    what the sender handed the kernel and the receiver never counted."""
    result = summarize("gso", 1432, 45, _sent(1_000_000), _got(990_000, 5.5))
    assert result["gbit_per_s"] == round(990_000 * 1432 * 8 / 5.5 / 1e9, 4)
    assert result["loss_pct"] == 1.0
    assert result["sent"] == 1_000_000 and result["received"] == 990_000
    assert result["calls"] == 1_000_000 // 45
    assert result["sent_gbit_per_s"] == round(1_000_000 * 1432 * 8 / 6.0 / 1e9, 4)
    assert result["datagrams_per_send"] == 45 and result["receive_gro"] is True
    assert "error" not in result and "note" not in result


def test_summarize_says_what_failed() -> None:
    """No GSO on the sender, a receiver that never started, nothing arriving: each is a
    result with an error (and no rate), never an exception; no GRO is a note."""
    no_gso = summarize("gso", 1432, 45, {"error": "this kernel has no UDP_SEGMENT"}, _got(0, 0))
    assert no_gso["error"].startswith("sender: this kernel has no UDP_SEGMENT")
    assert "gbit_per_s" not in no_gso
    dead = summarize("single", 1432, 1, {}, {"error": "receiver not ready within 15 s"})
    assert dead["error"] == "receiver: receiver not ready within 15 s"
    nothing = summarize("single", 1432, 1, _sent(5000), _got(0, 0.0))
    assert "gbit_per_s" not in nothing and "0 datagrams of the 5000" in nothing["error"]
    assert nothing["loss_pct"] == 100.0
    plain = summarize("gso", 1432, 45, _sent(1000), _got(1000, 1.0, gro=False))
    assert "UDP_GRO" in plain["note"] and plain["receive_gro"] is False
    assert plain["gbit_per_s"] > 0


class LocalHost:
    """The rig's Host, minus the namespace: run and popen with its defaults, right here."""

    def run(self, cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(list(cmd), check=False, **kw)

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        kw.setdefault("text", True)
        return subprocess.Popen(list(cmd), **kw)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_modes_are_the_three_data_paths() -> None:
    """One mode per overlayd data path, in the report's column order."""
    assert bare_udp.MODES == ("single", "mmsg", "gso")


@pytest.mark.parametrize("mode", bare_udp.MODES)
def test_both_programs_over_loopback(mode: str) -> None:
    """The parent starts the receiver, waits for it, runs the sender and collects both:
    over 127.0.0.1 datagrams arrive, the counts agree with the rate, and the GSO and mmsg
    modes send runs of 45 (GSO, GRO, sendmmsg and recvmmsg exist on this test machine's
    kernel, as on the rig's); only gso receives with GRO."""
    host: Any = LocalHost()
    result = measure_bare_udp(host, host, "127.0.0.1", size=1432, seconds=0.3, mode=mode,
                              port=_free_udp_port(), idle_s=0.3)  # fmt: skip
    assert "error" not in result, result
    assert result["datagrams_per_send"] == (1 if mode == "single" else 45)
    assert 0 < result["received"] <= result["sent"]
    # the rate is from the receiver's own span, which the result rounds to 0.01 s
    bits = result["received"] * 1432 * 8
    span = result["seconds"]
    assert (
        bits / (span + 0.006) / 1e9 <= result["gbit_per_s"] <= bits / max(span - 0.006, 1e-3) / 1e9
    )
    assert result["receive_gro"] is (mode == "gso")
    if mode == "mmsg":
        # Runs go out together (a call may take part of one, then the rest follows).
        assert result["calls"] < result["sent"] <= result["calls"] * 45
    else:
        assert result["sent"] == result["calls"] * result["datagrams_per_send"]


def test_without_mmsg_both_ends_say_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where Batcher.open finds no sendmmsg / recvmmsg, the sender sends nothing and the
    receiver says so instead of its ready line: an error, as gso's without UDP_SEGMENT."""
    monkeypatch.setattr(bare_udp.Batcher, "open", classmethod(lambda cls, sock, gro=False: None))
    port = _free_udp_port()
    assert bare_udp.send("127.0.0.1", port, 1432, 45, 0.2, "mmsg") == {"error": NO_MMSG}
    assert bare_udp.receive(port, "mmsg", 0.2, 0.1) == {"error": NO_MMSG}
    assert "ready" not in capsys.readouterr().out


class NoMmsgReceiverHost(LocalHost):
    """A receiver's host where recvmmsg is missing: its peer prints what bare_udp's
    receiver prints then (and no ready line); a sender must never be started."""

    def run(self, cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        raise AssertionError("the sender ran although the receiver could not start")

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        said = json.dumps({"error": NO_MMSG})
        return super().popen([sys.executable, "-c", f"print({said!r})"], **kw)


def test_receiver_without_mmsg_is_the_results_error() -> None:
    """The parent reads the receiver's error line as the reason, not as a crash."""
    host: Any = NoMmsgReceiverHost()
    result = measure_bare_udp(host, host, "127.0.0.1", size=1432, seconds=0.3, mode="mmsg",
                              port=_free_udp_port(), idle_s=0.3)  # fmt: skip
    assert result == {"mode": "mmsg", "datagram_bytes": 1432, "datagrams_per_send": 45,
                      "error": f"receiver: {NO_MMSG}"}  # fmt: skip
