"""The end of a run: tables with the baseline beside every number, and PASS/FAIL checks.

report() prints what checks() concluded; both only read the run's JSON document, so a
saved bench/results/hostile.json can be re-reported. code_label() names the code run.
"""

from __future__ import annotations

import subprocess
from typing import Any

from .daemons import REPO


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rtt_cell(ping: dict[str, Any], base: dict[str, Any]) -> str:
    p50, p95 = ping["p50_ms"], ping["p95_ms"]
    text = f"{_ms(p50)}/{_ms(p95)}"
    if p50 is not None and base["p50_ms"]:
        text += f" x{p50 / base['p50_ms']:.1f}"
    return text


def _loss(ping: dict[str, Any]) -> str:
    return "-" if ping["loss_pct"] is None else f"{ping['loss_pct']:.0f}%"


def _amp(phase: dict[str, Any]) -> str:
    ratios = [v["ratio"] for v in phase["amplification"].values() if v["ratio"] is not None]
    return f"{max(ratios):.2f}" if ratios else "-"


def _num(value: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def report(doc: dict[str, Any]) -> None:
    phases = doc["phases"]
    if not phases:
        return
    base = phases[0]
    print()
    print(f"hostile traffic on loopback: {doc['config']['seconds']:g} s per phase; "
          f"echoes from A at {doc['config']['ping_rate']:g}/s per target, 1 s timeout; "
          f"RTT p50/p95 ms as A's node measures it, xN = p50 / baseline p50")  # fmt: skip
    head = (f"{'phase':<9}{'sent/s':>8}  {'A->B p50/p95':<20}{'loss':>5}  "
            f"{'A->root p50/p95':<20}{'loss':>5}  {'root CPU%':>9}{'RSS MB':>8}"
            f"{'peak':>7}{'amp':>8}  {'log lines root/A/B':<20}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for phase in phases:
        root = phase["nodes"]["root"]
        pa, pr = phase["ping"]["A->B"], phase["ping"]["A->root"]
        logs = "/".join(str(phase["nodes"][n]["log_lines"]) for n in ("root", "A", "B"))
        rate = "-" if not phase["attacks"] else f"{phase['rate']:,.0f}"
        if phase["phase"] == "huge_id":
            rate = "1 pkt"
        print(
            f"{phase['phase']:<9}{rate:>8}  {_rtt_cell(pa, base['ping']['A->B']):<20}"
            f"{_loss(pa):>5}  {_rtt_cell(pr, base['ping']['A->root']):<20}{_loss(pr):>5}  "
            f"{_num(root['cpu_pct']):>9}{_num(root['rss_mb_end']):>8}"
            f"{_num(root['rss_mb_peak']):>7}{_amp(phase):>8}  {logs:<20}"
        )
    print("(root CPU: % of one core during the phase; RSS: at the end of the phase's settle, "
          "and its peak sampled every 50 ms; amp: bytes the nodes sent to an attack's source "
          "addresses / bytes sent from them, during the phase and its settle, the largest "
          "over the phase's attack kinds)")  # fmt: skip

    print("\nper phase: the attack, links seen, CPU of the others, drops and log lines")
    for phase in phases:
        print(f"  {phase['phase']} ({phase['seconds']:g} s + settle {phase['settle_s']:g} s)"
              + (f"  GUARD: {phase['guard']}" if phase["guard"] else ""))  # fmt: skip
        for attack in phase["attacks"]:
            print(f"    {attack['kind']:<15}{attack['rate']:>8,.0f}/s "
                  f"(target {attack['target_rate']:,.0f}/s): {attack['what']}")  # fmt: skip
        links = {t: p["links"] for t, p in phase["ping"].items()}
        print(f"    echo results: {links}")
        nodes = phase["nodes"]
        cpus = ", ".join(f"{n} {_num(nodes[n]['cpu_pct'])}" for n in nodes)
        peers = ", ".join(f"{n} {nodes[n]['peer_count']}" for n in nodes)
        print(f"    CPU% {cpus}, this process (generator) {_num(phase['generator_cpu_pct'])}, "
              f"other processes {_num(phase['others_cpu_pct'])}; peers known {peers}")  # fmt: skip
        sent = ", ".join(
            f"{n} {nodes[n]['counters'].get('tx_packets', 0):,}"
            + (f" (relayed {r:,})" if (r := nodes[n]["counters"].get("relayed_packets")) else "")
            for n in nodes
        )
        print(f"    packets sent: {sent}")
        if phase["others_cpu_pct"] > 30:
            print("    WARNING: other processes were busy during this phase; on a small "
                  "machine that disturbs every number: run again when it is quiet")  # fmt: skip
        for n, node in nodes.items():
            drops = ", ".join(f"{k} {v:,}" for k, v in list(node["drops"].items())[:6]) or "none"
            state = "" if node["alive"] else f" EXITED (code {node['exit_code']})"
            print(f"    {n:<5}drops: {drops}{state}")
            if node["log_lines"]:
                shape, count = node["log_top"][0]
                print(f"    {'':<5}log: {node['log_lines']:,} lines, top {count:,}x {shape!r}")
        for kind, amp in phase["amplification"].items():
            ratio = "-" if amp["ratio"] is None else f"{amp['ratio']:.3f}"
            print(f"    amplification {kind}: out {amp['bytes_out']:,} B / in "
                  f"{amp['bytes_in']:,} B = {ratio} (from {amp['from'] or 'nobody'})")  # fmt: skip
        if "huge_id" in phase:
            print(f"    huge id: {phase['huge_id']}")

    print("\nchecks (targets from issue 8; the bench reports, it never fails):")
    for line in doc["checks"]:
        print(f"  {line}")


def checks(doc: dict[str, Any]) -> list[str]:
    phases = {p["phase"]: p for p in doc["phases"]}
    base = phases.get("baseline")
    out: list[str] = []
    if base is None:
        return out
    for name in ("garbage", "hello", "replay", "huge_id"):
        phase = phases.get(name)
        if phase is None:
            continue
        for target in ("A->root", "A->B"):
            p, b = phase["ping"][target], base["ping"][target]
            ok = (
                p["p50_ms"] is not None
                and b["p50_ms"] is not None
                and p["p50_ms"] <= 2 * b["p50_ms"]
                and (p["loss_pct"] or 0.0) <= max(5.0, b["loss_pct"] or 0.0)
            )
            ratio = "-" if p["p50_ms"] is None or not b["p50_ms"] else (
                f"{p['p50_ms'] / b['p50_ms']:.1f}x"
            )  # fmt: skip
            out.append(
                f"{'PASS' if ok else 'FAIL'}  {name:<8} {target:<8} RTT within 2x of baseline, "
                f"loss <= 5%: p50 {_ms(p['p50_ms'])} ms ({ratio}), loss {_loss(p)}"
            )
    for kind, totals in doc["amplification_totals"].items():
        if not totals["sent_bytes"]:
            continue
        ratio = totals["received_bytes"] / totals["sent_bytes"]
        out.append(
            f"{'PASS' if ratio <= 1 else 'FAIL'}  amplification {kind:<15} <= 1 over the "
            f"whole run: {ratio:.3f} ({totals['received_bytes']:,} B out / "
            f"{totals['sent_bytes']:,} B in)"
        )
    huge = phases.get("huge_id")
    if huge is not None:
        root = huge["nodes"]["root"]
        guard = doc["config"]["rss_guard_mb"]
        peak = root["rss_mb_peak"]
        ok = root["alive"] and not huge["guard"] and peak is not None and peak <= guard
        out.append(
            f"{'PASS' if ok else 'FAIL'}  huge packet id 2^{doc['config']['huge_exp']}: root "
            f"RSS peak {_num(peak)} MB (guard {guard} MB), root "
            f"{'alive' if root['alive'] else 'EXITED'}"
            + (f", {huge['guard']}" if huge["guard"] else "")
        )
    base_lines = sum(n["log_lines"] for n in base["nodes"].values())
    for name, phase in phases.items():
        if name == "baseline":
            continue
        lines = sum(n["log_lines"] for n in phase["nodes"].values())
        each = "/".join(str(n["log_lines"]) for n in phase["nodes"].values())
        sent = sum(a["sent"] for a in phase["attacks"]) or 1
        ok = lines <= max(20, 2 * base_lines)
        out.append(
            f"{'PASS' if ok else 'FAIL'}  {name:<8} logs stay quiet (<= 20 or 2x baseline): "
            f"{lines:,} lines root/A/B {each} for {sent:,} hostile datagrams "
            f"(baseline {base_lines})"
        )
    busy = [p["phase"] for p in doc["phases"] if p["others_cpu_pct"] > 30]
    if busy:
        out.append(f"NOTE  other processes were busy during {', '.join(busy)}: numbers disturbed")
    end = doc["phases"][-1]["nodes"]
    out.append(
        f"{'PASS' if all(n['alive'] for n in end.values()) else 'FAIL'}  all three daemons "
        f"still running at the end: "
        + ", ".join(f"{n} {'up' if v['alive'] else 'EXITED'}" for n, v in end.items())
    )
    return out


def code_label() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "overlay_core"],
                               capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return f"{REPO} (no git)"
    if head.returncode != 0:
        return f"{REPO} (not a git checkout)"
    changed = len(dirty.stdout.splitlines())
    return f"{REPO} at {head.stdout.strip()}" + (
        f" + {changed} changed files in overlay_core" if changed else ""
    )
