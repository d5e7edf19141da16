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
from typing import Any

import pytest

from overlay_core.proto import datapath
from overlay_core.proto.crypto import Suite
from overlay_core.proto.effects import DeliverFrame, DeliverFrames, Effect, Send, SendMany
from overlay_core.proto.node import Node
from overlay_core.proto.offload import VNET_HDR_BYTES
from tests.core.datapath_pair import MSS, Pair, as_the_kernel_reads, sealed_to
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
    # The windows too: _more_frames accepts runs of ids in one shift (accept_run).
    windows = sorted((k, s.replay.highest, s.replay.bitmap) for k, s in peer.sessions.items())
    return (
        windows,
        dict(node.drops),
        dict(node.counters),
        dict(network.counters),
        dict(peer.counters),
        paths,
    )


@pytest.mark.parametrize(
    ("suite", "seed"),
    [(None, seed) for seed in range(24)] + [(suite, seed) for suite in Suite for seed in range(4)],
)
def test_a_mangled_batch_is_received_exactly_as_its_datagrams_one_by_one(
    tmp_path: Path, suite: Suite | None, seed: int
) -> None:
    """`suite` None: the one this CPU prefers; the others go through the same batch code
    with their own AEAD (XCHACHA20 through Session's methods, the others inline)."""
    pair = Pair(tmp_path, suites=None if suite is None else (suite,))
    sessions = pair.b.node.peers[pair.a.address].sessions.values()
    assert suite is None or {session.suite for session in sessions} == {suite}
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


def test_a_duplicate_inside_a_run_is_refused_as_a_replay(tmp_path: Path) -> None:
    """The ids of a run are accepted when it ends; a copy of one of them that comes while
    the run is still open must be refused all the same."""
    pair = Pair(tmp_path)
    net, a, b = pair.net, pair.a, pair.b
    raw, _ = pair.super_frame(6 * MSS)
    segments = sealed_to(a.node.receive_frames(pair.nwid, [raw], net.now), b.endpoint)
    replays = b.node.drops["replay"]
    batch = [*segments[:4], segments[2], *segments[4:], segments[5], segments[0]]
    effects = b.node.receive_datagrams(batch, a.endpoint, net.now)
    written = [f for e in effects if isinstance(e, DeliverFrames) for f in e.frames]
    assert len(segments_read(written)) == len(segments)
    assert b.node.drops["replay"] - replays == 3


@pytest.mark.parametrize("suite", list(Suite), ids=lambda suite: suite.name)
def test_a_clean_batch_takes_the_short_way_after_its_first_datagram(
    tmp_path: Path, suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equal results could also come from the general way; this pins the speed path: with
    every suite, all but the first segment of a clean batch go through _more_frames."""
    pair = Pair(tmp_path, suites=(suite,))
    net, a, b = pair.net, pair.a, pair.b
    raw, _ = pair.super_frame(20 * MSS)
    segments = sealed_to(a.node.receive_frames(pair.nwid, [raw], net.now), b.endpoint)
    taken: list[int] = []
    more_frames = datapath._more_frames

    def counted(*args: Any) -> tuple[int, int, bytes | None]:
        result = more_frames(*args)
        taken.append(result[0])
        return result

    monkeypatch.setattr(datapath, "_more_frames", counted)
    effects = b.node.receive_datagrams(segments, a.endpoint, net.now)
    written = [f for e in effects if isinstance(e, DeliverFrames) for f in e.frames]
    assert len(segments_read(written)) == len(segments) == 20
    assert taken == [len(segments) - 1]


def test_frames_refused_admission_are_each_refused_in_a_batch(tmp_path: Path) -> None:
    """frames_in decides a source MAC's admission once per run of frames that carry it:
    only once it was admitted. Segments from a MAC that is not a's (no bridge may send
    it) are refused and counted one by one, also between segments of a's own."""
    pair = Pair(tmp_path)
    net, a, b = pair.net, pair.a, pair.b
    spoofed = bytes.fromhex("02aabbccddee")
    raw, _ = pair.super_frame(6 * MSS)
    mac_at = VNET_HDR_BYTES + 6  # the source MAC, after the virtio_net_hdr
    forged = raw[:mac_at] + spoofed + raw[mac_at + 6 :]
    good = sealed_to(a.node.receive_frames(pair.nwid, [raw], net.now), b.endpoint)
    bad = sealed_to(a.node.receive_frames(pair.nwid, [forged], net.now), b.endpoint)
    assert len(good) == len(bad) == 6
    batch = [*bad[:3], good[0], bad[3], good[1], bad[4], good[2], bad[5], *good[3:]]
    counters = b.node.memberships.networks[pair.nwid].counters
    before = counters["drop_bad_source"]
    effects = b.node.receive_datagrams(batch, a.endpoint, net.now)
    written = [f for e in effects if isinstance(e, DeliverFrames) for f in e.frames]
    assert len(segments_read(written)) == len(good)
    assert counters["drop_bad_source"] - before == len(bad)
