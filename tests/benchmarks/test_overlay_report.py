"""The full table of bench-overlay (bench/overlay/report.py) with bare-UDP rows in it.

Rows are built here the way bench/bench_overlay.py records them; the table is read back
from what print_matrix prints. What is pinned down: the bare-UDP numbers of an MTU and
loss go on each DIRECT row of that MTU and loss (in the results and as a column), relayed
lines get a dash, the bare-UDP rows are lines under the table rather than in it, a row
from a results file of before the mmsg mode prints with a dash for it, and a run without
them prints the table as before. Then the DIRECT-WHOLE lines: their ratio against tinc on
the same path, their bare-UDP column of GSO alone, the legend under the table, and the
ratios table's column for them.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.overlay.report import (
    BARE_HEADER,
    DIRECT_WHOLE,
    WHOLE_LEGEND,
    add_bare_udp,
    add_ratios,
    print_matrix,
    print_ratios,
)

PATHS = ("DIRECT", DIRECT_WHOLE, "RELAY")


def tcp_row(impl: str, path: str = "DIRECT", mtu: int = 1500, loss: float = 0.0,
            gbit: float = 1.25) -> dict[str, Any]:  # fmt: skip
    return {
        "underlay_mtu": mtu, "loss_pct": loss, "path": path, "impl": impl, "target": "x",
        "tcp": {"gbit_per_s": gbit, "mbit_per_s": gbit * 1e3, "retransmits": 7},
        "ping_idle": {"avg_ms": 0.1, "loss_pct": 0.0},
        "ping_load": {"avg_ms": 0.5, "loss_pct": 0.0},
        "cpu": {"seconds_per_gbit": 3.0}, "rss_mb": {"pc1": 40.0, "pc2": 41.0},
    }  # fmt: skip


def mode(name: str, gbit: float | None, segments: int = 1) -> dict[str, Any]:
    result: dict[str, Any] = {"mode": name, "datagram_bytes": 1432,
                              "datagrams_per_send": segments}  # fmt: skip
    if gbit is None:
        return {**result, "error": "sender: this kernel has no UDP_SEGMENT"}
    return {**result, "gbit_per_s": gbit, "sent": 600_000, "received": 594_000,
            "loss_pct": 1.0, "receive_gro": name == "gso", "seconds": 6.0}  # fmt: skip


def udp_row(single: float | None, mmsg: float | None, gso: float | None, mtu: int = 1500,
            loss: float = 0.0) -> dict[str, Any]:  # fmt: skip
    return {
        "underlay_mtu": mtu, "loss_pct": loss, "path": "DIRECT", "impl": "udp",
        "target": "198.18.1.12", "datagram_bytes": 1432,
        "bare_udp": {"single": mode("single", single), "mmsg": mode("mmsg", mmsg, 45),
                     "gso": mode("gso", gso, 45)},
    }  # fmt: skip


def old_udp_row(single: float, gso: float, **kw: Any) -> dict[str, Any]:
    """A udp row as bench-overlay recorded it before the mmsg mode: no "mmsg" key."""
    row = udp_row(single, None, gso, **kw)
    del row["bare_udp"]["mmsg"]
    return row


def table_lines(out: str) -> dict[tuple[str, str, str, str], str]:
    """Each table line by (MTU, loss, path, impl), from what print_matrix printed."""
    lines = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) > 4 and cells[0].isdigit() and cells[2] in PATHS:
            lines[(cells[0], cells[1], cells[2], cells[3])] = line
    return lines


def test_add_bare_udp_same_mtu_and_loss_direct_only() -> None:
    """Each DIRECT row gets the bare-UDP Gbit/s of its own MTU and loss (None for a mode
    that failed); relayed rows, rows of an MTU or loss without bare UDP, and the bare-UDP
    rows themselves get nothing."""
    rows = [
        tcp_row("underlay"), tcp_row("ztui"), udp_row(1.01, 1.25, 2.05),
        tcp_row("ztui", loss=1.0), udp_row(0.98, None, None, loss=1.0),
        tcp_row("ztui", path="RELAY"),
        tcp_row("ztui", mtu=1280),
        tcp_row("ztui-nogso", mtu=9000), old_udp_row(1.1, 2.2, mtu=9000),
    ]  # fmt: skip
    add_bare_udp(rows)
    assert rows[0]["bare_udp_gbit_per_s"] == {"single": 1.01, "mmsg": 1.25, "gso": 2.05}
    assert rows[1]["bare_udp_gbit_per_s"] == {"single": 1.01, "mmsg": 1.25, "gso": 2.05}
    assert rows[3]["bare_udp_gbit_per_s"] == {"single": 0.98, "mmsg": None, "gso": None}
    # A udp row from before mmsg: no mmsg key, rather than a failed (None) measurement.
    assert rows[7]["bare_udp_gbit_per_s"] == {"single": 1.1, "gso": 2.2}
    for untouched in (rows[2], rows[4], rows[5], rows[6], rows[8]):
        assert "bare_udp_gbit_per_s" not in untouched


def test_table_has_the_bare_udp_column(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        tcp_row("underlay", gbit=3.5), udp_row(1.012, 1.253, 2.051), tcp_row("ztui"),
        tcp_row("ztui", path="RELAY"),
        tcp_row("ztui", loss=1.0), udp_row(0.981, 1.204, None, loss=1.0),
    ]  # fmt: skip
    add_bare_udp(rows)
    print_matrix(rows, seconds=6, pings=20)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("MTU"))
    assert header.rstrip().endswith("bare UDP 1/send | mmsg | GSO") and BARE_HEADER in header
    assert "bare UDP: Gbit/s of one datagram per send, sendmmsg and GSO" in out
    lines = table_lines(out)
    assert lines[("1500", "0%", "DIRECT", "underlay")].endswith("  1.012 | 1.253 | 2.051")
    assert lines[("1500", "0%", "DIRECT", "ztui")].endswith("  1.012 | 1.253 | 2.051")
    assert lines[("1500", "1%", "DIRECT", "ztui")].endswith("  0.981 | 1.204 | error")
    assert lines[("1500", "0%", "RELAY", "ztui")].endswith("—")
    # The bare-UDP rows are no lines of the table, but lines of their own under it.
    assert not any(key[3] == "udp" for key in lines)
    below = [line.strip() for line in out.splitlines() if line.startswith("  MTU ")]
    assert below == [
        "MTU 1500, loss 0%, 1432-byte datagrams: 1/send 1.012 Gbit/s (1.00% of 600,000 "
        "lost); mmsg 45/send + recvmmsg 1.253 Gbit/s (1.00% of 600,000 lost); "
        "GSO 45/send + GRO 2.051 Gbit/s (1.00% of 600,000 lost)",
        "MTU 1500, loss 1%, 1432-byte datagrams: 1/send 0.981 Gbit/s (1.00% of 600,000 "
        "lost); mmsg 45/send + recvmmsg 1.204 Gbit/s (1.00% of 600,000 lost); "
        "GSO 45/send + GRO error (sender: this kernel has no UDP_SEGMENT)",
    ]
    # The column is as wide as its header, and the numbers line up at its right edge.
    width = len(header.rstrip())
    assert all(len(lines[key].rstrip()) == width for key in lines)


def test_rows_from_before_mmsg_still_print(capsys: pytest.CaptureFixture[str]) -> None:
    """An older results file: its udp rows have no "mmsg", and its DIRECT rows carry
    bare_udp_gbit_per_s with only single and gso (as written then, not recomputed). Both
    print, with a dash where mmsg would be, never "error" (nothing failed)."""
    stored = tcp_row("ztui", mtu=1280)
    stored["bare_udp_gbit_per_s"] = {"single": 0.95, "gso": 1.9}
    rows = [tcp_row("ztui"), old_udp_row(1.012, 2.051), stored]
    add_bare_udp(rows)
    print_matrix(rows, seconds=6, pings=20)
    out = capsys.readouterr().out
    lines = table_lines(out)
    assert lines[("1500", "0%", "DIRECT", "ztui")].endswith("  1.012 | - | 2.051")
    assert lines[("1280", "0%", "DIRECT", "ztui")].endswith("  0.950 | - | 1.900")
    below = [line.strip() for line in out.splitlines() if line.startswith("  MTU ")]
    assert below == [
        "MTU 1500, loss 0%, 1432-byte datagrams: 1/send 1.012 Gbit/s (1.00% of 600,000 "
        "lost); mmsg -; GSO 45/send + GRO 2.051 Gbit/s (1.00% of 600,000 lost)",
    ]


def test_table_without_bare_udp_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    """No udp rows (--impl without udp): no column, no lines about bare UDP."""
    rows = [tcp_row("underlay"), tcp_row("ztui"), tcp_row("ztui", path="RELAY")]
    add_bare_udp(rows)
    print_matrix(rows, seconds=6, pings=20)
    out = capsys.readouterr().out
    assert "bare UDP" not in out
    assert next(line for line in out.splitlines() if line.lstrip().startswith("MTU")).endswith(
        "ztui/tinc"
    )
    assert len(table_lines(out)) == 3


def test_only_bare_udp_prints_its_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """--impl udp alone: no empty table, just the bare-UDP lines."""
    rows = [udp_row(1.0, 1.25, 2.0)]
    add_bare_udp(rows)
    print_matrix(rows, seconds=6, pings=20)
    out = capsys.readouterr().out
    assert not any(line.startswith("MTU") for line in out.splitlines())
    assert "1/send 1.000 Gbit/s" in out and "GSO 45/send + GRO 2.000 Gbit/s" in out
    assert "mmsg 45/send + recvmmsg 1.250 Gbit/s" in out


# ---- DIRECT-WHOLE: the DIRECT rig with UDP segmentation offload left on ------------------


def whole_udp_row(gso: float, mtu: int = 1500) -> dict[str, Any]:
    """A DIRECT-WHOLE udp row as bench-overlay records it: the gso mode alone."""
    row = udp_row(None, None, gso, mtu=mtu)
    row["path"] = DIRECT_WHOLE
    row["bare_udp"] = {"gso": row["bare_udp"]["gso"]}
    return row


def whole_run() -> list[dict[str, Any]]:
    """One MTU's DIRECT and DIRECT-WHOLE lines, as a run with both paths records them."""
    return [
        tcp_row("tinc", gbit=0.5), tcp_row("ztui", gbit=0.9), udp_row(0.972, 1.109, 2.055),
        whole_udp_row(22.646),
        tcp_row("tinc", path=DIRECT_WHOLE, gbit=0.52),
        tcp_row("ztui", path=DIRECT_WHOLE, gbit=1.56),
    ]  # fmt: skip


def test_whole_ratios_are_against_tinc_on_the_same_path() -> None:
    """ztui on DIRECT-WHOLE is divided by tinc on DIRECT-WHOLE, not by tinc on DIRECT of
    the same MTU and loss, and each ratio names its path."""
    rows = whole_run()
    ratios = add_ratios(rows)
    assert rows[1]["ratio_ztui_tinc"] == 1.8
    assert rows[5]["ratio_ztui_tinc"] == 3.0
    assert [(r["path"], r["ratio"]) for r in ratios] == [("DIRECT", 1.8), (DIRECT_WHOLE, 3.0)]


def test_whole_rows_get_the_whole_bare_udp() -> None:
    """A DIRECT-WHOLE row gets the GSO number of the DIRECT-WHOLE udp row, a DIRECT row
    keeps its own three; neither takes the other's."""
    rows = whole_run()
    add_bare_udp(rows)
    assert rows[1]["bare_udp_gbit_per_s"] == {"single": 0.972, "mmsg": 1.109, "gso": 2.055}
    assert rows[4]["bare_udp_gbit_per_s"] == {"gso": 22.646}
    assert rows[5]["bare_udp_gbit_per_s"] == {"gso": 22.646}


def test_whole_in_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    """The DIRECT-WHOLE lines sit beside the DIRECT ones with their ratio and "— | — | X"
    (only GSO measured, by design); the legend follows the table once; the bare-UDP line
    under it names the path and its one mode. The table gets no wider than these rows'
    was before DIRECT-WHOLE (134 columns: path 6 wide, the bare header 7 longer)."""
    relayed = tcp_row("ztui-nogso", path="RELAY")
    relayed["rss_mb"] = {"pc1": 65.0, "pc2": 67.0, "root1": 60.0}
    rows = [*whole_run(), relayed]
    add_ratios(rows)
    add_bare_udp(rows)
    print_matrix(rows, seconds=6, pings=20)
    out = capsys.readouterr().out
    lines = table_lines(out)
    direct, whole = (
        lines[("1500", "0%", "DIRECT", "ztui")],
        lines[("1500", "0%", DIRECT_WHOLE, "ztui")],
    )
    assert direct.endswith("  0.972 | 1.109 | 2.055") and "1.80x" in direct.split()
    assert whole.endswith("  — | — | 22.646") and "3.00x" in whole.split()
    assert lines[("1500", "0%", DIRECT_WHOLE, "tinc")].endswith("  — | — | 22.646")
    assert out.count(WHOLE_LEGEND) == 1
    text = out.splitlines()
    last_table_line = max(text.index(line) for line in lines.values())
    assert text[last_table_line + 1] == WHOLE_LEGEND
    below = [line.strip() for line in text if line.startswith("  MTU ")]
    assert below[1] == (
        "MTU 1500, loss 0%, DIRECT-WHOLE, 1432-byte datagrams: "
        "GSO 45/send + GRO 22.646 Gbit/s (1.00% of 600,000 lost)"
    )
    assert "on DIRECT-WHOLE only GSO" in out
    header = next(line for line in text if line.lstrip().startswith("MTU"))
    assert all(len(line) <= len(header.rstrip()) <= 134 for line in lines.values())


def test_no_legend_without_whole_rows(capsys: pytest.CaptureFixture[str]) -> None:
    rows = whole_run()[:3]
    add_bare_udp(rows)
    print_matrix(rows, seconds=6, pings=20)
    out = capsys.readouterr().out
    assert DIRECT_WHOLE not in out


def test_whole_link_is_direct(capsys: pytest.CaptureFixture[str]) -> None:
    """ztui's link on DIRECT-WHOLE is DIRECT: no note for that, one for any other link."""
    fine, moved = tcp_row("ztui", path=DIRECT_WHOLE), tcp_row("ztui", path=DIRECT_WHOLE)
    fine["link"], moved["link"] = "DIRECT", "RELAY"
    print_matrix([fine], seconds=6, pings=20)
    assert "note:" not in capsys.readouterr().out
    print_matrix([moved], seconds=6, pings=20)
    assert "note: ztui's link was RELAY after the DIRECT-WHOLE run" in capsys.readouterr().out


def test_ratios_table_has_the_whole_column(capsys: pytest.CaptureFixture[str]) -> None:
    """Columns go DIRECT, DIRECT-WHOLE, RELAY (by loss within a path), each value right
    under its heading, however wide the heading."""
    rows = [*whole_run(), tcp_row("tinc", loss=1.0, gbit=0.5), tcp_row("ztui", loss=1.0),
            tcp_row("tinc", path="RELAY", gbit=0.25), tcp_row("ztui", path="RELAY", gbit=0.5)]  # fmt: skip
    print_ratios(add_ratios(rows))
    head, line = capsys.readouterr().out.strip("\n").splitlines()
    names = ["DIRECT 0%", "DIRECT 1%", "DIRECT-WHOLE 0%", "RELAY 0%"]
    ends = [head.index(name) + len(name) for name in names]
    assert ends == sorted(ends)
    values = ["1.80x", "2.50x", "3.00x", "2.00x"]
    assert [line.index(v) + len(v) for v in values] == ends
    assert line.startswith("ztui, underlay MTU 1500")
