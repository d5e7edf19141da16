"""The hostile traffic: source sockets per attack kind, packet makers, and the pacer.

Each kind of attack sends from its own loopback addresses (SOURCES) through a SocketGroup
that also reads what comes back, so amplification is known per kind. A *_maker returns a
function making one (datagram, destination); blast() paces an Attack at its rate.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from overlay_core.proto import wire
from overlay_core.proto.roots import RootEntry
from overlay_core.proto.wire import Cipher

# Source addresses per attack kind, all on loopback, so answers are attributable.
SOURCES: dict[str, range] = {
    "garbage": range(2, 12),
    "hello": range(12, 22),
    "replay_root": range(22, 42),
    "replay_leaf": range(42, 62),
    "own_address": range(62, 67),
    "unknown_key_id": range(67, 72),
    "plant": range(72, 92),
}
PLANT_SOCKETS_PER_HOST = 10  # "plant" sends each replay from a source (address, port) in turn
SEND_SLICE_S = 0.005  # the pacer wakes this often and sends what is due
MAX_BURST = 500  # at most this many datagrams per wake-up (when this process lags)
_HEADER = struct.Struct("!Q5s5sBB")


class SocketGroup:
    """UDP sockets on several loopback addresses for one kind of attack; each also reads
    what comes back, so bytes in / bytes out toward these (unconfirmed) addresses is known."""

    def __init__(
        self, kind: str, hosts: range, names: dict[tuple[str, int], str], per_host: int = 1
    ) -> None:
        self.kind = kind
        self.names = names
        self.socks: list[socket.socket] = []
        self.sent_packets = self.sent_bytes = self.send_errors = 0
        self.recv_packets = self.recv_bytes = 0
        self.recv_from: Counter[str] = Counter()
        self._next = 0
        loop = asyncio.get_running_loop()
        for last in [h for h in hosts for _ in range(per_host)]:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((f"127.0.0.{last}", 0))
            loop.add_reader(sock.fileno(), self._readable, sock)
            self.socks.append(sock)

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        sock = self.socks[self._next % len(self.socks)]
        self._next += 1
        try:
            sock.sendto(data, dest)
        except OSError:
            self.send_errors += 1
            return
        self.sent_packets += 1
        self.sent_bytes += len(data)

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(256):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable for an earlier send and the like
                continue
            self.recv_packets += 1
            self.recv_bytes += len(data)
            self.recv_from[self.names.get((addr[0], addr[1]), f"{addr[0]}:{addr[1]}")] += len(data)

    def totals(self) -> dict[str, Any]:
        return {
            "sent_packets": self.sent_packets,
            "sent_bytes": self.sent_bytes,
            "received_packets": self.recv_packets,
            "received_bytes": self.recv_bytes,
            "received_from": dict(self.recv_from),
        }

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self.socks:
            loop.remove_reader(sock.fileno())
            sock.close()


Maker = Callable[[], tuple[bytes, tuple[str, int]]]


@dataclass
class Attack:
    kind: str  # a SOURCES key
    rate: float  # datagrams per second
    make: Maker
    what: str  # one line for the report
    sent: int = 0


def _head(packet_id: int, dest: int, source: int, flags: int, key_id: int = 0) -> bytes:
    return _HEADER.pack(
        packet_id & (2**64 - 1),
        wire.addr_bytes(dest & 0xFFFFFFFFFF),
        wire.addr_bytes(source & 0xFFFFFFFFFF),
        flags & 0xFF,
        key_id & 0xFF,
    )


def _cipher(cipher: Cipher) -> int:
    return int(cipher) << wire.CIPHER_SHIFT


def _random_address(rng: random.Random) -> int:
    while True:
        address = rng.getrandbits(40)
        if address != 0 and address >> 32 != 0xFF:
            return address


def garbage_maker(rng: random.Random, targets: list[tuple[int, tuple[str, int], float]]) -> Maker:
    """targets: (overlay address, endpoint, share)."""
    weights = [share for _, _, share in targets]

    def make() -> tuple[bytes, tuple[str, int]]:
        dest, endpoint, _ = rng.choices(targets, weights)[0]
        kind = rng.randrange(6)
        source = _random_address(rng)
        packet_id = rng.getrandbits(64)
        if kind == 0:  # anything at all
            return rng.randbytes(rng.randint(1, 1400)), endpoint
        if kind == 1:  # cut short, inside or just after the header
            full = _head(packet_id, dest, source, _cipher(Cipher.SESSION)) + rng.randbytes(20)
            return full[: rng.randint(1, 36)], endpoint
        if kind == 2:  # reserved flag bits, or the unknown cipher 3
            flags = rng.choice([wire.RESERVED_MASK & rng.randrange(1, 256) | 0x10, 0x30])
            return _head(packet_id, dest, source, flags) + rng.randbytes(64), endpoint
        if kind == 3:  # well formed, from a source nobody knows
            flags = _cipher(rng.choice([Cipher.STATIC, Cipher.SESSION]))
            body = rng.randbytes(rng.randint(17, 300))
            return _head(packet_id, dest, source, flags, rng.randrange(256)) + body, endpoint
        if kind == 4:  # a stray fragment (some with impossible numbering)
            number = rng.randint(0, 15)
            total = rng.randint(0, 15)
            frag = (
                packet_id.to_bytes(8, "big")
                + wire.addr_bytes(dest)
                + bytes([wire.FRAGMENT_MARKER])
                + wire.addr_bytes(source)
                + bytes([(number << 4) | total, 0])
            )
            return frag + rng.randbytes(rng.randint(1, 1400)), endpoint
        flags = wire.FLAG_FRAGMENTED | _cipher(Cipher.SESSION)  # a head whose rest never comes
        body = rng.randbytes(rng.randint(40, 1400))
        return _head(packet_id, dest, source, flags, rng.randrange(256)) + body, endpoint

    return make


def hello_maker(
    rng: random.Random,
    root: int,
    endpoint: tuple[str, int],
    pow_keys: list[tuple[int, bytes]],
    pow_share: float,
) -> Maker:
    def make() -> tuple[bytes, tuple[str, int]]:
        if pow_keys and rng.random() < pow_share:
            source, key = pow_keys[rng.randrange(len(pow_keys))]
        else:
            source, key = _random_address(rng), rng.randbytes(wire.PUBLIC_KEY_BYTES)
        head = _head(rng.getrandbits(64), root, source, _cipher(Cipher.HELLO))
        return head + key + rng.randbytes(rng.randint(60, 120)), endpoint

    return make


def replay_maker(packets: list[bytes], endpoint: tuple[str, int]) -> Maker:
    return cycle_maker([(data, endpoint) for data in packets])


def cycle_maker(packets: list[tuple[bytes, tuple[str, int]]]) -> Maker:
    cycle: Iterator[tuple[bytes, tuple[str, int]]] = itertools.cycle(packets)

    def make() -> tuple[bytes, tuple[str, int]]:
        return next(cycle)

    return make


def own_address_maker(rng: random.Random, root: RootEntry, endpoint: tuple[str, int]) -> Maker:
    address, key = root.identity.address, root.identity.public_key

    def make() -> tuple[bytes, tuple[str, int]]:
        if rng.random() < 0.5:  # a HELLO "from" the root, carrying its own public key
            head = _head(rng.getrandbits(64), address, address, _cipher(Cipher.HELLO))
            return head + key + rng.randbytes(rng.randint(60, 120)), endpoint
        head = _head(rng.getrandbits(64), address, address, _cipher(Cipher.SESSION),
                     rng.randrange(256))  # fmt: skip
        return head + rng.randbytes(rng.randint(30, 120)), endpoint

    return make


def unknown_key_maker(
    rng: random.Random, root: int, sources: list[int], endpoint: tuple[str, int]
) -> Maker:
    def make() -> tuple[bytes, tuple[str, int]]:
        source = sources[rng.randrange(len(sources))]
        head = _head(rng.randrange(1, 1 << 20), root, source, _cipher(Cipher.SESSION),
                     rng.randrange(256))  # fmt: skip
        return head + rng.randbytes(rng.randint(30, 120)), endpoint

    return make


async def blast(attack: Attack, group: SocketGroup, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not stop.is_set():
        due = int((loop.time() - start) * attack.rate) - attack.sent
        for _ in range(min(due, MAX_BURST)):
            data, dest = attack.make()
            group.send(data, dest)
            attack.sent += 1
        if due > MAX_BURST:  # lagging: drop the backlog rather than burst
            start += (due - MAX_BURST) / attack.rate
        await asyncio.sleep(SEND_SLICE_S)
