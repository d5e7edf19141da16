"""Hostile traffic against a root and two leaves on loopback, beside the same run without it.

    python bench/bench_hostile.py [--seconds 12] [--garbage-rate 5000] [--hello-rate 5000]
                                  [--replay-rate 5000] [--ping-rate 5] [--no-huge] [--keep]

Real processes, as a user runs them: one root (`overlayd --root`) and two leaves A and B,
each `python -m overlay_core.io.cli` with its own temporary --home, bound to 127.0.0.1 on
its own port, stdout and stderr to a log file; the leaves get a roots file naming the root.
This process is the attacker (the generator) and the observer. Phases, in this order, each
of fixed length, with a settle between them (until the root is idle and answers again,
at most --settle-max seconds; counters, logs and amplification include the settle):

  0 baseline   no attack.
  1 garbage    --garbage-rate datagrams/s: random bytes, short packets, bad flag bits,
               well-formed headers from unknown sources, stray fragments and fragment
               heads; 80 % to the root, 20 % to leaf B.
  2 hello      --hello-rate HELLOs/s to the root: well-formed header, cipher HELLO, a
               random 32-byte public key and a random body. --pow-share of them carry one
               of --pow-keys keys that pass the address proof of work (made here with
               Identity.generate), so the work after the proof of work is exercised too.
  3 replay     --replay-rate datagrams/s, split 40/20/20/20 between:
               replays to the root and to B of the authenticated packets the generator's
               own node sent them (see below), from 127.0.0.22-61; packets whose source is
               the root's own address (HELLOs carrying the root's own public key, SESSION
               packets) to the root; SESSION packets with unknown key ids "from" A, B and
               the generator. Plus --plant-rate/s "plant": the generator's recorded HELLOs
               to B and to the root, each replayed from the next of 200 sources
               (127.0.0.72-91, ten ports each), so every source sends one every ten
               seconds: what an attacker does to make nodes probe addresses of its choice.
  4 huge-id    one ECHO sealed under the generator's session with the root, packet id
               2^--huge-exp (2^33), then --huge-seconds of watching. The root's RSS is
               sampled every 50 ms: the phase stops when it passes --rss-guard-mb, the root
               is killed past --rss-kill-mb, and it runs under RLIMIT_AS --root-mem-limit-mb
               so it can never take the machine down. Skipped with --no-huge.

The generator's legitimate node is the real sans-IO `Node` driven over one UDP socket on
127.0.0.1: it handshakes with the root, then reaches B (WHOIS, relayed HELLO, RENDEZVOUS,
punch) until their link is DIRECT. It rekeys every --rekey-after packets, so it also sends
HELLOs straight to B; every datagram it sends is recorded for phase 3.

Measured in every phase:
- leaf A's overlay echo to B and to the root (`POST /peers/ADDR/echo` on A's control
  socket, --ping-rate each per second, 1 s timeout): RTT median and p95 as the node measures
  it, loss, and the link. On loopback A and B punch to DIRECT, so A->B shows the leaves'
  own health and A->root is the root serving an existing peer.
- the root's CPU (% of one core, psutil on its PID) and peak RSS; the leaves' too.
- amplification: every socket the attack is sent from also receives, and each kind of
  attack has its own source addresses (127.0.0.2-91), so bytes the nodes sent to those
  unconfirmed addresses / bytes sent from them is per kind (target <= 1). The generator's
  own handshake socket is the one confirmed address and is not counted.
- drop counters (GET /status) and log lines written by root, A and B, with the commonest
  log line shapes.

Results print as tables with the baseline of the same run beside every number, then as
PASS/FAIL lines for the issue's targets; the exit status is 0 whatever the numbers (1 only
if the overlay could not be set up). JSON goes to bench/results/hostile.json. Everything
stays on 127.0.0.0/8, needs no root privileges, and only the processes started here are
ever signalled (SIGTERM, then SIGKILL), also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench/hostile is imported as `hostile`: Python puts this script's directory first on
# sys.path when it runs as `python bench/bench_hostile.py`.
from hostile.attacks import (
    PLANT_SOCKETS_PER_HOST,
    SOURCES,
    Attack,
    SocketGroup,
    cycle_maker,
    garbage_maker,
    hello_maker,
    own_address_maker,
    replay_maker,
    unknown_key_maker,
)
from hostile.daemons import (
    HOST,
    MB,
    Api,
    Daemon,
    Processes,
    SetupError,
    free_port,
    roots_entry,
    wait_for,
)
from hostile.legit import LegitNode
from hostile.measure import Bench, run_phase, take_snapshot
from hostile.report import checks, code_label, report
from record import run_header, write_result

from overlay_core.proto.effects import udp
from overlay_core.proto.identity import Identity

# --------------------------------------------------------------------------- setup


def make_pow_keys(count: int) -> list[tuple[int, bytes]]:
    return [(i.address, i.public_key) for i in (Identity.generate() for _ in range(count))]


async def bring_up(args: argparse.Namespace, procs: Processes, base: Path) -> Bench:
    t0 = time.monotonic()
    pow_keys = make_pow_keys(args.pow_keys)
    print(f"bench-hostile: {len(pow_keys)} proof-of-work keys in "
          f"{time.monotonic() - t0:.1f} s; starting root, A, B ...", flush=True)  # fmt: skip
    root_port, a_port, b_port = free_port(), free_port(), free_port()
    while len({root_port, a_port, b_port}) < 3:
        a_port, b_port = free_port(), free_port()
    line, entry = roots_entry(base, root_port)
    roots_file = base / "roots.txt"
    roots_file.write_text(line + "\n")
    common = ["--bind", HOST, "--log-level", args.log_level]
    root = procs.start("root", base, root_port, "--root", "--port", str(root_port), *common)
    with contextlib.suppress(OSError, ValueError):
        limit = args.root_mem_limit_mb * MB
        resource.prlimit(root.proc.pid, resource.RLIMIT_AS, (limit, limit))
    a = procs.start("A", base, a_port, "--port", str(a_port), "--roots", str(roots_file), *common)
    b = procs.start("B", base, b_port, "--port", str(b_port), "--roots", str(roots_file), *common)
    apis = {d.name: Api(d) for d in (root, a, b)}
    for daemon in (root, a, b):

        async def up(daemon: Daemon = daemon) -> dict[str, Any] | None:
            if not daemon.alive():
                raise SetupError(f"{daemon.name} exited:\n{daemon.log_tail()}")
            return await apis[daemon.name].status(2.0) if daemon.socket.exists() else None

        status = await wait_for(f"{daemon.name}'s API", up, 30)
        daemon.address = status["address"]
    for leaf in (a, b):

        async def online(leaf: Daemon = leaf) -> bool:
            status = await apis[leaf.name].status(2.0)
            return bool(status and status["online"])

        await wait_for(f"{leaf.name} to reach the root", online, 20)

    async def direct() -> bool:
        _, link = await apis["A"].echo(b.address, 1.0)
        return link == "DIRECT"

    await wait_for("A and B to go DIRECT", direct, 30)

    legit = LegitNode(Identity.generate(), entry, args.rekey_after)
    await legit.start()

    async def reaches(address: int, link: str | None) -> bool:
        reply = await legit.echo(address, 1.0)
        return reply is not None and (link is None or reply.link == link)

    await wait_for("the generator's session with the root",
                   lambda: reaches(entry.identity.address, None), 20)  # fmt: skip
    await wait_for("the generator to reach B DIRECT",
                   lambda: reaches(int(b.address, 16), "DIRECT"), 30)  # fmt: skip

    async def hello_to_b() -> bool:  # a rekey on the direct path: a HELLO straight to B
        await reaches(int(b.address, 16), None)
        return len(legit.hellos(b.endpoint)) >= 2

    await wait_for("the generator to send B HELLOs directly", hello_to_b, 30)
    names = {d.endpoint: d.name for d in (root, a, b)}
    groups = {
        kind: SocketGroup(kind, hosts, names, PLANT_SOCKETS_PER_HOST if kind == "plant" else 1)
        for kind, hosts in SOURCES.items()
    }
    bench = Bench(args, base, root, a, b, entry, apis, legit, groups, random.Random(args.seed))
    bench.pow_keys = pow_keys
    print(f"bench-hostile: up in {time.monotonic() - t0:.1f} s: root {root.address} "
          f"{HOST}:{root.port}, A {a.address} :{a.port}, B {b.address} :{b.port}, "
          f"generator {legit.identity.address_text} :{legit.port}", flush=True)  # fmt: skip
    return bench


# --------------------------------------------------------------------------- the run


async def run(args: argparse.Namespace, procs: Processes, base: Path) -> dict[str, Any]:
    bench = await bring_up(args, procs, base)
    try:
        await asyncio.sleep(2.0)  # let start-up traffic (MTU searches, pushes) die down
        bench.snapshot = await take_snapshot(bench)
        await phases(bench)
        await asyncio.sleep(2.0)  # late answers toward the attack addresses still count
        totals = {kind: g.totals() for kind, g in bench.groups.items()}
    finally:
        for group in bench.groups.values():
            group.close()
        bench.legit.close()
        for api in bench.apis.values():
            await api.close()
    return {
        "root": {"address": bench.root.address, "port": bench.root.port},
        "A": {"address": bench.a.address, "port": bench.a.port},
        "B": {"address": bench.b.address, "port": bench.b.port},
        "generator": {"address": bench.legit.identity.address_text, "port": bench.legit.port},
        "phases": bench.phases,
        "amplification_totals": totals,
        "logs_kept": str(base) if args.keep else None,
    }


async def phases(bench: Bench) -> None:
    args, rng = bench.args, bench.rng
    root_addr, root_ep = bench.root_entry.identity.address, bench.root.endpoint
    b_addr, b_ep = int(bench.b.address, 16), bench.b.endpoint
    await run_phase(bench, "baseline", args.seconds, [])

    garbage = garbage_maker(rng, [(root_addr, root_ep, 0.8), (b_addr, b_ep, 0.2)])
    what = "random bytes, short, bad flags, unknown sources, fragments; 80% root, 20% B"
    await run_phase(bench, "garbage", args.seconds,
                    [Attack("garbage", args.garbage_rate, garbage, what)])  # fmt: skip

    hellos = hello_maker(rng, root_addr, root_ep, bench.pow_keys, args.pow_share)
    what = (f"HELLO, random keys; {100 * args.pow_share:g}% with one of "
            f"{len(bench.pow_keys)} proof-of-work keys")  # fmt: skip
    await run_phase(bench, "hello", args.seconds,
                    [Attack("hello", args.hello_rate, hellos, what)])  # fmt: skip

    recorded = bench.legit.recorded
    to_root = recorded.get(udp(*root_ep), [])
    to_b = recorded.get(udp(*b_ep), [])
    rate = args.replay_rate
    sources = [int(bench.a.address, 16), b_addr, bench.legit.identity.address]
    attacks = [
        Attack("replay_root", 0.4 * rate, replay_maker(to_root, root_ep),
               f"{len(to_root)} recorded packets of the generator to the root"),
        Attack("own_address", 0.2 * rate, own_address_maker(rng, bench.root_entry, root_ep),
               "source = the root's own address (HELLO with its key, SESSION)"),
        Attack("unknown_key_id", 0.2 * rate, unknown_key_maker(rng, root_addr, sources, root_ep),
               "SESSION, unknown key ids, 'from' A, B and the generator"),
    ]  # fmt: skip
    if to_b:
        what = f"{len(to_b)} recorded packets of the generator to B"
        attacks.insert(1, Attack("replay_leaf", 0.2 * rate, replay_maker(to_b, b_ep), what))
    else:
        print("bench-hostile: the generator sent B nothing directly: no replays to B")
    planted = [(d, b_ep) for d in bench.legit.hellos(b_ep)]
    planted += [(d, root_ep) for d in bench.legit.hellos(root_ep)]
    if planted and args.plant_rate > 0:
        n_sources = len(bench.groups["plant"].socks)
        what = (f"{len(planted)} recorded HELLOs to B and the root, each replay from the next "
                f"of {n_sources} sources (one per source every "
                f"{n_sources / args.plant_rate:.0f} s)")  # fmt: skip
        attacks.append(Attack("plant", args.plant_rate, cycle_maker(planted), what))
    await run_phase(bench, "replay", args.seconds, attacks)

    if args.no_huge:
        return
    # The generator's session with the root must be current for the root to open it.
    reply = await bench.legit.echo(root_addr, 2.0)
    huge_id = 1 << args.huge_exp
    packet = bench.legit.seal_echo(root_addr, huge_id)
    if packet is None:
        print("bench-hostile: no session with the root; huge-id phase skipped")
        return
    sent: list[bool] = []

    def send_huge() -> None:
        bench.legit.send_raw(packet, root_ep)
        sent.append(True)

    result = await run_phase(
        bench, "huge_id", args.huge_seconds, [], before_start=send_huge, guard_mb=args.rss_guard_mb
    )
    after = await bench.legit.echo(root_addr, 2.0) if bench.root.alive() else None
    result["huge_id"] = {
        "packet_id": huge_id,
        "sent": bool(sent),
        "generator_echo_before": reply is not None,
        # A root that accepted 2^N as its highest counter drops the generator's next
        # packets (small counters) as replays until the session is replaced.
        "generator_echo_after": after is not None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--seconds", type=float, default=12.0, help="length of each phase (default 12)")
    add("--garbage-rate", type=float, default=5000.0, help="datagrams/s in phase 1")
    add("--hello-rate", type=float, default=5000.0, help="HELLOs/s in phase 2")
    add("--replay-rate", type=float, default=5000.0, help="datagrams/s in phase 3, all kinds")
    add("--plant-rate", type=float, default=20.0, help="phase 3 HELLO replays/s, fresh sources")
    add("--rekey-after", type=int, default=6, help="the generator rekeys after N packets")
    add("--pow-keys", type=int, default=64, help="proof-of-work keys to make for phase 2")
    add("--pow-share", type=float, default=0.1, help="share of phase 2 HELLOs using them")
    add("--ping-rate", type=float, default=5.0, help="echoes/s from A to each of B and root")
    add("--settle-max", type=float, default=10.0, help="longest settle between phases (s)")
    add("--huge-exp", type=int, default=33, help="phase 4 packet id is 2^this")
    add("--huge-seconds", type=float, default=8.0, help="length of phase 4")
    add("--no-huge", action="store_true", help="skip phase 4")
    add("--rss-guard-mb", type=float, default=1024.0, help="phase 4 stops past this root RSS")
    add("--rss-kill-mb", type=float, default=4096.0, help="the root is killed past this RSS")
    add("--root-mem-limit-mb", type=int, default=8192, help="RLIMIT_AS of the root process")
    add("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add("--seed", type=int, default=8, help="seed of the attack traffic")
    add("--keep", action="store_true", help="keep the homes and logs (path printed)")
    args = parser.parse_args(argv)

    # SIGTERM unwinds like Ctrl-C, so the daemons are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    procs = Processes()
    base = Path(tempfile.mkdtemp(prefix="ztbh"))  # short: control socket paths <= 107 bytes
    started = time.monotonic()
    code = code_label()
    try:
        try:
            doc = asyncio.run(run(args, procs, base))
        except SetupError as exc:
            print(f"bench-hostile: could not set up the overlay: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench-hostile: interrupted; stopping the daemons", file=sys.stderr)
            return 130
    finally:
        procs.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    doc = {
        **run_header(),
        "code": code,
        "duration_s": round(time.monotonic() - started, 1),
        "config": {k: v for k, v in vars(args).items() if k != "keep"},
        **doc,
    }
    doc["checks"] = checks(doc)
    report(doc)
    write_result("hostile", doc)
    print(f"code: {code}; whole run {doc['duration_s']:g} s"
          + (f"; homes and logs kept in {base}" if args.keep else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
