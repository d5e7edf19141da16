"""Overlay data path against bare UDP on loopback, measured in the same run.

    python bench/bench_core.py [--packets N] [--size BYTES] [--echoes N] [--super-frames N]

Prints, for 1400-byte payloads (what a full Ethernet frame becomes later):
- packets/s and Mbit/s through seal -> UDP -> open -> deliver between two leaves that
  talk DIRECT, beside the same number of bare UDP datagrams between two sockets;
- echo round-trip time (median, p90) over the overlay beside a bare UDP ping-pong;
- the AEAD alone (seal and open per second), the number crypto.py's choice rests on.

Then the batched data path (bench/core/batched.py): TCPv4 super-frames of ~64 KB from a
TAP with offloads, in at one member (Node.receive_frames) and out at the other
(Node.receive_datagrams -> DeliverFrames, coalesced), with
- datagrams/s and Gbit/s of TCP payload over real UDP sockets on 127.0.0.1 with UDP
  GSO/GRO; without (offload=False: sendmmsg/recvmmsg, the path of kernels before 4.18,
  Synology DSM 7, `--offload tap`); and with one system call per datagram (`--offload off`);
- beside them a bare UDP GSO/GRO socket pair (sendmsg with UDP_SEGMENT of 1400-byte
  datagrams, UDP_GRO reads) and the bare per-datagram pair above;
- the proto alone, no sockets: microseconds per super-frame on the sending and on the
  receiving side;
and the AEAD suite the sessions negotiated.

Both sides of each measurement run in this one process and on one core, so the ratio is
what matters; absolute numbers depend on the machine. Results also go to
bench/results/core.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from nacl import bindings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench/core is imported as `core`: Python puts this script's directory first on
# sys.path when it runs as `python bench/bench_core.py`.
from core import batched
from record import run_header, write_result

from overlay_core.lab.loopback import LoopbackOverlay

# At most this many datagrams in flight (sent, not yet received): asyncio reads one
# datagram per loop iteration, so an unpaced sender only measures socket-buffer overflow.
WINDOW = 64


class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0
        self.bytes = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.echo = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received += 1
        self.bytes += len(data)
        if self.echo and self.transport is not None:
            self.transport.sendto(data, addr)


async def _drain(count: int, current: Any, deadline_s: float) -> float:
    """Wait until `current()` reaches `count` or nothing arrives for a second."""
    loop = asyncio.get_running_loop()
    last, last_change = current(), loop.time()
    while current() < count and loop.time() - last_change < deadline_s:
        await asyncio.sleep(0.001)
        if current() != last:
            last, last_change = current(), loop.time()
    return loop.time()


async def bare_udp(packets: int, size: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    rx_t, rx = await loop.create_datagram_endpoint(_Counter, local_addr=("127.0.0.1", 0))
    tx_t, _ = await loop.create_datagram_endpoint(_Counter, local_addr=("127.0.0.1", 0))
    target = rx_t.get_extra_info("sockname")
    payload = os.urandom(size)
    start = loop.time()
    for i in range(packets):
        tx_t.sendto(payload, target)
        while i - rx.received >= WINDOW:
            await asyncio.sleep(0)
    end = await _drain(packets, lambda: rx.received, 1.0)
    tx_t.close()
    rx_t.close()
    return _rate(rx.received, packets, size, end - start)


async def bare_rtt(count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    srv_t, srv = await loop.create_datagram_endpoint(_Counter, local_addr=("127.0.0.1", 0))
    srv.echo = True
    cli_t, cli = await loop.create_datagram_endpoint(_Counter, local_addr=("127.0.0.1", 0))
    target = srv_t.get_extra_info("sockname")
    rtts = []
    for _ in range(count):
        before, start = cli.received, time.perf_counter()
        cli_t.sendto(b"x" * 64, target)
        while cli.received == before:
            await asyncio.sleep(0)
        rtts.append(time.perf_counter() - start)
    srv_t.close()
    cli_t.close()
    return rtts


async def overlay(
    packets: int, size: int, echoes: int
) -> tuple[dict[str, float], list[float], str]:
    with tempfile.TemporaryDirectory(prefix="ztb") as tmp:
        async with LoopbackOverlay(Path(tmp)) as net:
            await net.add_root()
            a, b = await net.add_leaf("a"), await net.add_leaf("b")
            await net.wait_online()
            for _ in range(50):  # until the leaves are introduced and talk DIRECT
                reply = await a.echo(b.address, timeout_s=1.0)
                if reply is not None and reply.link == "DIRECT":
                    break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("leaves never went DIRECT")
            session = a.node.peers[b.address].tx_session if a.node is not None else None
            suite = session.suite.name if session is not None else "?"
            received = 0

            async def consume() -> None:
                nonlocal received
                while True:
                    await b.deliveries.get()
                    received += 1

            consumer = asyncio.create_task(consume())
            payload = os.urandom(size)
            loop = asyncio.get_running_loop()
            start = loop.time()
            for i in range(packets):
                await a.send_user_data(b.address, payload)
                while i - received >= WINDOW:
                    await asyncio.sleep(0)
            end = await _drain(packets, lambda: received, 1.0)
            consumer.cancel()
            rates = _rate(received, packets, size, end - start)
            rtts = []
            for _ in range(echoes):
                start_t = time.perf_counter()
                reply = await a.echo(b.address, timeout_s=1.0)
                if reply is not None:
                    rtts.append(time.perf_counter() - start_t)
            return rates, rtts, suite


def aead(size: int, rounds: int = 20000) -> dict[str, float]:
    message, ad, key = os.urandom(size), os.urandom(20), os.urandom(32)
    out = {}
    for name, enc, dec, nonce_len in (
        (
            "xchacha20poly1305",
            bindings.crypto_aead_xchacha20poly1305_ietf_encrypt,
            bindings.crypto_aead_xchacha20poly1305_ietf_decrypt,
            24,
        ),
        (
            "chacha20poly1305",
            bindings.crypto_aead_chacha20poly1305_ietf_encrypt,
            bindings.crypto_aead_chacha20poly1305_ietf_decrypt,
            12,
        ),
    ):
        nonce = os.urandom(nonce_len)
        t0 = time.perf_counter()
        for _ in range(rounds):
            sealed = enc(message, ad, nonce, key)
        t1 = time.perf_counter()
        for _ in range(rounds):
            dec(sealed, ad, nonce, key)
        t2 = time.perf_counter()
        out[f"{name}_seal_per_s"] = rounds / (t1 - t0)
        out[f"{name}_open_per_s"] = rounds / (t2 - t1)
    return out


def _rate(received: int, sent: int, size: int, seconds: float) -> dict[str, float]:
    return {
        "sent": sent,
        "received": received,
        "loss_pct": 100.0 * (sent - received) / sent,
        "seconds": seconds,
        "packets_per_s": received / seconds,
        "mbit_per_s": received * size * 8 / seconds / 1e6,
    }


def _ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _print_batched(batch: dict[str, Any], base: dict[str, float], size: int) -> None:
    setup, proto = batch["setup"], batch["proto"]
    gso, plain, bare = batch["overlay_gso_gro"], batch["overlay_no_offload"], batch["bare_gso_gro"]
    singly = batch["overlay_singly"]
    width = 48
    print()
    print(
        f"batched path: TCPv4 super-frames of {setup['payload_per_super_frame']:,} B payload"
        f" = {setup['segments_per_super_frame']} x {setup['mss']} B segments,"
        f" {setup['path_mtu']}-byte datagrams, session AEAD suite {setup['suite']},"
        f" {gso['super_frames']} super-frames per run, at most"
        f" {setup['window_super_frames']} in flight"
    )
    print(f"{'':{width}}{'datagrams/s':>12}{'Gbit/s':>8}{'loss %':>8}{'TAP writes/SF':>15}")
    for name, rate in (
        ("overlay batched, UDP GSO/GRO", gso),
        ("overlay batched, no GSO/GRO", plain),
        ("overlay batched, one call a datagram", singly),
    ):
        # the calls it got: gso, gro, mmsg (sendmmsg/recvmmsg where not GSO/GRO)
        offloads = "+".join(k for k, v in rate["offloads"].items() if v) or "none"
        print(
            f"{name + f' [{offloads}]':{width}}{rate['packets_per_s']:>12.0f}"
            f"{rate['gbit_per_s']:>8.2f}{rate['segment_loss_pct']:>8.2f}"
            f"{rate['tap_writes_per_super_frame']:>15.2f}"
        )
    if bare["available"]:
        label = f"bare UDP GSO/GRO ({bare['segments_per_send']} x {size} B per send)"
        print(
            f"{label:{width}}{bare['packets_per_s']:>12.0f}{bare['gbit_per_s']:>8.2f}"
            f"{bare['loss_pct']:>8.2f}"
        )
    else:
        print(f"{'bare UDP GSO/GRO':{width}}unavailable (gso {bare['gso']}, gro {bare['gro']})")
    print(
        f"{f'bare UDP per datagram ({size} B, above)':{width}}{base['packets_per_s']:>12.0f}"
        f"{base['mbit_per_s'] / 1000:>8.2f}{base['loss_pct']:>8.2f}"
    )
    print(
        f"proto alone (no sockets), per super-frame: send {proto['send_us_per_super_frame']:.0f} us"
        f" + receive {proto['receive_us_per_super_frame']:.0f} us"
        f" = {proto['total_us_per_super_frame']:.0f} us:"
        f" {proto['super_frames_per_s']:,.0f} super-frames/s, {proto['gbit_per_s']:.2f} Gbit/s"
    )
    ratios = [
        f"overlay with / without GSO/GRO {gso['gbit_per_s'] / plain['gbit_per_s']:.2f}x",
        f"sendmmsg/recvmmsg / one call a datagram "
        f"{plain['gbit_per_s'] / singly['gbit_per_s']:.2f}x",
    ]
    if bare["available"]:
        ratios.append(
            f"bare GSO/GRO / per datagram {bare['packets_per_s'] / base['packets_per_s']:.1f}x"
        )
    ratios.append(f"overlay GSO/GRO / proto alone {gso['gbit_per_s'] / proto['gbit_per_s']:.2f}")
    print("ratios: " + ", ".join(ratios))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1400)
    parser.add_argument("--echoes", type=int, default=300)
    parser.add_argument(
        "--super-frames", type=int, default=2000, help="per batched-path measurement"
    )
    args = parser.parse_args()

    base = await bare_udp(args.packets, args.size)
    base_rtt = await bare_rtt(args.echoes)
    over, over_rtt, over_suite = await overlay(args.packets, args.size, args.echoes)
    crypto = aead(args.size)
    batch = await batched.measure(args.super_frames, args.size)

    print(f"payload {args.size} B, {args.packets} packets, one process, {platform.machine()}")
    print(f"{'':24}{'packets/s':>12}{'Mbit/s':>10}{'loss %':>8}{'RTT p50 ms':>12}{'p90 ms':>9}")
    for name, rate, rtts in (
        ("bare UDP (baseline)", base, base_rtt),
        ("overlay DIRECT", over, over_rtt),
    ):
        print(
            f"{name:24}{rate['packets_per_s']:>12.0f}{rate['mbit_per_s']:>10.1f}"
            f"{rate['loss_pct']:>8.2f}{_ms(rtts, 0.5):>12.3f}{_ms(rtts, 0.9):>9.3f}"
        )
    print(f"overlay / bare throughput: {over['packets_per_s'] / base['packets_per_s']:.2f}")
    print(
        "AEAD alone, per second: "
        + ", ".join(f"{k.replace('_per_s', '')} {v:,.0f}" for k, v in crypto.items())
    )
    print(f"session AEAD suite, overlay DIRECT: {over_suite}")
    _print_batched(batch, base, args.size)
    result = {
        **run_header(),
        "size": args.size,
        "bare_udp": base | {"rtt_p50_ms": _ms(base_rtt, 0.5), "rtt_p90_ms": _ms(base_rtt, 0.9)},
        "overlay_direct": over
        | {"rtt_p50_ms": _ms(over_rtt, 0.5), "rtt_p90_ms": _ms(over_rtt, 0.9)},
        "aead": crypto,
        "overlay_direct_suite": over_suite,
        "batched_setup": batch["setup"],
        "batched_overlay_gso_gro": batch["overlay_gso_gro"],
        "batched_overlay_no_offload": batch["overlay_no_offload"],
        "batched_overlay_singly": batch["overlay_singly"],
        "bare_udp_gso_gro": batch["bare_gso_gro"],
        "batched_proto": batch["proto"],
    }
    write_result("core", result)


if __name__ == "__main__":
    asyncio.run(main())
