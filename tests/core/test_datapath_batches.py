"""receive_batch against receive_datagram on mangled batches.

In a batch from one sender, receive_batch takes the first FRAME the general way and the
ones after it by datapath._more_frames, which hands any datagram that is not another such
frame back to the general way. Whatever a batch holds (lost, duplicated, replayed,
reordered or corrupted segments, a control packet in between), taking it as one batch
must drop, count, deliver and answer exactly what taking its datagrams one by one does.
Seeded random batches, so a failure names the seed that reproduces it.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest

from overlay_core.proto.effects import DeliverFrame, DeliverFrames, Effect, Send, SendMany
from overlay_core.proto.node import Node
from tests.core.test_datapath import MSS, Pair, as_the_kernel_reads, sealed_to
from tests.core.test_offload import parsed


def mangled(rng: random.Random, segments: list[bytes], echo: bytes) -> tuple[list[bytes], str]:
    """`segments` with some lost, doubled, corrupted, replayed, echoed and swapped; and
    what was done, for the assertion message."""
    batch: list[bytes] = []
    done: list[str] = []
    for i, segment in enumerate(segments):
        roll = rng.random()
        if roll < 0.08:
            done.append(f"lost {i}")
            continue
        batch.append(segment)
        if roll < 0.16:
            batch.append(segment)
            done.append(f"doubled {i}")
        elif roll < 0.26:
            broken = bytearray(segment)
            at = rng.randrange(len(broken))
            broken[at] ^= 1 << rng.randrange(8)
            batch.append(bytes(broken))
            done.append(f"flipped byte {at} of {i}")
        elif roll < 0.3:
            batch.append(echo)
            done.append(f"echo after {i}")
        elif roll < 0.36:
            batch.append(batch[rng.randrange(len(batch))])
            done.append(f"replayed one after {i}")
    for _ in range(rng.randrange(3)):
        at = rng.randrange(len(batch) - 1)
        batch[at], batch[at + 1] = batch[at + 1], batch[at]
        done.append(f"swapped {at}, {at + 1}")
    return batch, "; ".join(done)


def segments_read(written: list[bytes]) -> list[tuple[int, bytes]]:
    """(seq, payload) of each TCP segment the kernel reads from these TAP writes."""
    out = []
    for buffer in written:
        for frame in as_the_kernel_reads(buffer, offloaded=True):
            fields = parsed(frame)
            out.append((fields["seq"], frame[fields["hdrs"] :]))
    return out


def state(node: Node, pair: Pair, sender: int) -> tuple[object, ...]:
    peer = node.peers[sender]
    paths = sorted((str(e), p.packets_received, p.bytes_received) for e, p in peer.paths.items())
    network = node.memberships.networks[pair.nwid]
    return (
        dict(node.drops),
        dict(node.counters),
        dict(network.counters),
        dict(peer.counters),
        paths,
    )


@pytest.mark.parametrize("seed", range(16))
def test_a_mangled_batch_is_received_exactly_as_its_datagrams_one_by_one(
    tmp_path: Path, seed: int
) -> None:
    pair = Pair(tmp_path)
    net, a, b = pair.net, pair.a, pair.b
    rng = random.Random(seed)
    raw, _ = pair.super_frame(30 * MSS, salt=seed)
    segments = sealed_to(a.node.receive_frames(pair.nwid, [raw], net.now), b.endpoint)
    _, echo_effects = a.node.echo(b.address, net.now)
    [echo] = sealed_to(echo_effects, b.endpoint)
    batch, done = mangled(rng, segments, echo)
    twin = copy.deepcopy(b.node)

    batched = b.node.receive_datagrams(batch, a.endpoint, net.now)
    single: list[Effect] = []
    for datagram in batch:
        single += twin.receive_datagram(datagram, a.endpoint, net.now)

    assert state(b.node, pair, a.address) == state(twin, pair, a.address), done
    written = [f for e in batched if isinstance(e, DeliverFrames) for f in e.frames]
    one_by_one = [e.frame for e in single if isinstance(e, DeliverFrame)]
    assert segments_read(written) == segments_read(one_by_one), done
    assert [e for e in batched if isinstance(e, (Send, SendMany))] == [
        e for e in single if isinstance(e, (Send, SendMany))
    ], done
    # Each distinct authentic segment is delivered once, whatever the batch did to it.
    assert len(one_by_one) == len(set(segments) & set(batch)), done
