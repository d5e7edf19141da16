"""The batched data path (overlay_core.proto.datapath) between two members on the FakeNet.

A TCP super-frame read from a TAP with offloads leaves a member as one SendMany of MSS
segments, FRAME_PARTIAL (checksum left to the receiver) to a peer that offered
FEATURE_PARTIAL_CSUM, FRAME with full checksums to others. The receiver writes the
segments to its TAP coalesced under a virtio_net_hdr (offloads) or with their checksums
finished (no offloads).

How the datagrams reach the receiver matters, so the tests that depend on it run both
ways (`deliver`):

- "one-by-one": FakeNet itself. It sends a SendMany datagram by datagram and hands each
  to the receiver's `receive_datagram` (fakenet.py `_deliver`), as the daemon does with a
  datagram read alone; each frame then reaches the TAP in its own write.
- "batch": what a GRO read gives the daemon. The test takes the datagrams of A's SendMany
  and hands them to B's `receive_datagrams` in one call: the fast way of `receive_batch`
  and one coalesced DeliverFrames per network.

Checksums are checked from scratch (tests/core/frames.py): the IP header's and the
TCP one over the whole frame, and the TCP one over the segment alone. A buffer written under NEEDS_CSUM is first finished the way the
kernel does (offload.segment, compared with the kernel byte for byte in
tests/netns/test_offload_kernel.py).
"""

from __future__ import annotations

import copy
import struct
from collections import Counter
from pathlib import Path

import pytest

from overlay_core.proto import offload, wire
from overlay_core.proto.datapath import merge_sends, send_many
from overlay_core.proto.effects import (
    DeliverFrame,
    DeliverFrames,
    Effect,
    Endpoint,
    Event,
    Send,
    SendMany,
    tcp,
    udp,
)
from overlay_core.proto.netrules import Rule
from overlay_core.proto.offload import (
    GSO_NONE,
    GSO_TCPV4,
    GSO_TCPV6,
    NEEDS_CSUM,
    NO_OFFLOAD,
    VNET_HDR_BYTES,
    split_vnet,
)
from overlay_core.proto.wire import Cipher, Verb
from tests.core import frames
from tests.core.datapath_pair import (
    MSS,
    SIZE,
    Pair,
    as_the_kernel_reads,
    assert_stream,
    checksum_right,
    opened,
    sealed_to,
    segment_verbs,
)
from tests.core.test_offload import (
    HOSTILE,
    gso_frame,
    parsed,
    pattern,
    pseudo_sum,
)


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return Pair(tmp_path)


BOTH_WAYS = pytest.mark.parametrize("batch", [False, True], ids=["one-by-one", "batch"])


# ---- sending a super-frame ---------------------------------------------------------------


@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
@BOTH_WAYS
def test_a_super_frame_reaches_an_offloaded_peer_whole(pair: Pair, batch: bool, v6: bool) -> None:
    """Both members offer partial checksums and have offloads: a's 64 KB super-frame leaves
    as one SendMany of 64 FRAME_PARTIAL segments whose checksum field holds only the
    pseudo-header sum; b writes them under NEEDS_CSUM headers, one per datagram when they
    come one by one, merged back into one GSO super-frame (gso_size = the MSS) when they
    come in one batch. Either way the kernel gets the payload in order, seq right across
    the 2^32 wrap, and checksums it finishes right. IPv4 and IPv6."""
    a, b = pair.a, pair.b
    raw, payload = pair.super_frame(v6=v6)
    effects = a.node.receive_frames(pair.nwid, [raw], pair.net.now)
    assert [type(e) for e in effects] == [SendMany]
    datagrams = sealed_to(effects, b.endpoint)
    assert len(datagrams) == SIZE // MSS
    assert segment_verbs(b, a, datagrams) == {Verb.FRAME_PARTIAL}
    for d in datagrams:
        segment = opened(b, a, d)[9:]
        assert parsed(segment)["check"] == pseudo_sum(segment), "left for the receiver"
    before, drops = pair.network(b).counters["rx_frames"], Counter(b.node.drops)

    written = pair.deliver(effects, batch=batch)

    headers = [split_vnet(w)[0] for w in written]
    if batch:
        assert len(written) == 1
        l4 = 54 if v6 else 34
        gso = GSO_TCPV6 if v6 else GSO_TCPV4
        assert headers[0] == offload.VnetHeader(NEEDS_CSUM, gso, l4 + 32, MSS, l4, 16)
        offload.validate(*split_vnet(written[0]))  # exact lengths, as the kernel wants
    else:
        assert len(written) == SIZE // MSS
        assert {(h.flags, h.gso_type, h.csum_start, h.csum_offset) for h in headers} == {
            (NEEDS_CSUM, GSO_NONE, 54 if v6 else 34, 16)
        }
    plain = [f for w in written for f in as_the_kernel_reads(w, offloaded=True)]
    assert len(plain) == SIZE // MSS
    assert_stream(plain, payload)
    assert pair.network(b).counters["rx_frames"] - before == SIZE // MSS
    assert b.node.drops == drops


def test_segments_bigger_than_the_path_are_fragmented_and_still_coalesced(pair: Pair) -> None:
    """With a 1448-byte MSS a segment's datagram is larger than the path (1200-1432), so
    each leaves as overlay fragments: the batch hands those to the general way, whose
    frames still join the batch and reach the TAP coalesced into one super-frame."""
    a, b = pair.a, pair.b
    raw, payload = pair.super_frame(20 * 1448, mss=1448)
    effects = a.node.receive_frames(pair.nwid, [raw], pair.net.now)
    datagrams = sealed_to(effects, b.endpoint)
    assert len(datagrams) > 20 and all(len(d) <= 1432 for d in datagrams)

    written = pair.deliver(effects, batch=True)

    assert len(written) == 1 and split_vnet(written[0])[0].gso_size == 1448
    assert_stream(as_the_kernel_reads(written[0], offloaded=True), payload)
    assert pair.network(b).counters["rx_frames"] == 1 + 20  # 1: Pair's ping


def test_a_super_frame_through_a_root_leaves_it_as_one_send_many(tmp_path: Path) -> None:
    """No direct path (blocked): a sends its segments to the root, which, handed them in
    one batch, forwards them to b as one SendMany (Node.receive_datagrams merges a root's
    Sends, datapath.merge_sends); relayed (hops 1) they take the general way at b, and
    still reach its TAP as one super-frame."""
    pair = Pair(tmp_path, relayed=True)
    net, root, a, b = pair.net, pair.root, pair.a, pair.b
    raw, payload = pair.super_frame()
    effects = a.node.receive_frames(pair.nwid, [raw], net.now)
    assert [(type(e), e.endpoint) for e in effects if isinstance(e, SendMany)] == [
        (SendMany, root.endpoint)
    ]
    datagrams = sealed_to(effects, root.endpoint)
    assert len(datagrams) == SIZE // MSS

    forwarded = root.node.receive_datagrams(datagrams, a.endpoint, net.now)

    many = [e for e in forwarded if isinstance(e, SendMany)]
    assert [(e.endpoint, len(e.datagrams)) for e in many] == [(b.endpoint, SIZE // MSS)]
    assert [wire.hops_of(d) for d in many[0].datagrams] == [1] * (SIZE // MSS)
    before = len(b.frames)
    net.call(b, b.node.receive_datagrams(many[0].datagrams, root.endpoint, net.now))
    written = [f.frame for f in b.frames[before:]]
    assert len(written) == 1
    assert_stream(as_the_kernel_reads(written[0], offloaded=True), payload)


@BOTH_WAYS
def test_a_peer_without_partial_checksums_gets_full_ones(tmp_path: Path, batch: bool) -> None:
    """b did not offer FEATURE_PARTIAL_CSUM and its TAP has no offloads: a sends FRAME
    segments with full checksums, and every frame b writes is a plain, right frame."""
    pair = Pair(tmp_path, b_partial=False, b_offload=False)
    a, b = pair.a, pair.b
    raw, payload = pair.super_frame()
    effects = a.node.receive_frames(pair.nwid, [raw], pair.net.now)
    datagrams = sealed_to(effects, b.endpoint)
    assert len(datagrams) == SIZE // MSS
    assert segment_verbs(b, a, datagrams) == {Verb.FRAME}
    assert all(checksum_right(opened(b, a, d)[9:]) for d in datagrams)

    written = pair.deliver(effects, batch=batch)

    assert len(written) == SIZE // MSS
    assert_stream(written, payload)


@BOTH_WAYS
def test_a_receiver_without_offloads_finishes_partial_checksums(
    tmp_path: Path, batch: bool
) -> None:
    """b offered partial checksums but its TAP has no offloads (it could not get them, or
    offloads are off for this port only): it gets FRAME_PARTIAL and must finish each
    checksum itself (datapath.complete_checksum) before writing plain frames."""
    pair = Pair(tmp_path, b_offload=False)
    a, b = pair.a, pair.b
    raw, payload = pair.super_frame()
    effects = a.node.receive_frames(pair.nwid, [raw], pair.net.now)
    datagrams = sealed_to(effects, b.endpoint)
    assert segment_verbs(b, a, datagrams) == {Verb.FRAME_PARTIAL}
    assert not any(checksum_right(opened(b, a, d)[9:]) for d in datagrams)

    written = pair.deliver(effects, batch=batch)

    assert len(written) == SIZE // MSS
    assert_stream(written, payload)


def test_a_vlan_tagged_super_frame_goes_as_frames_with_finished_checksums(
    tmp_path: Path,
) -> None:
    """A VLAN interface on a's TAP hands a tagged super-frame: b (which takes partial
    checksums) still gets plain FRAMEs, tagged, with right checksums, because only
    untagged segments can be finished or coalesced on the other side."""
    pair = Pair(tmp_path)
    a, b = pair.a, pair.b
    raw, _ = pair.super_frame()
    header, frame = split_vnet(raw)
    tag = b"\x81\x00\x00\x07"
    tagged = offload.VnetHeader(
        header.flags, header.gso_type, header.hdr_len + 4, header.gso_size,
        header.csum_start + 4, header.csum_offset,
    )  # fmt: skip
    raw = tagged.pack() + frame[:12] + tag + frame[12:]
    effects = a.node.receive_frames(pair.nwid, [raw], pair.net.now)
    datagrams = sealed_to(effects, b.endpoint)
    assert len(datagrams) == SIZE // MSS
    assert segment_verbs(b, a, datagrams) == {Verb.FRAME}
    for d in datagrams:
        segment = opened(b, a, d)[9:]
        assert segment[12:16] == tag
        assert checksum_right(segment[:12] + segment[16:])


# ---- receive_batch against receive_datagram ------------------------------------------------


def test_a_batch_is_received_exactly_as_its_datagrams_one_by_one(pair: Pair) -> None:
    """The fast way of receive_batch runs the checks of receive_datagram, in its order.
    One batch, given to b's receive_datagrams and to a copy of b one datagram at a time:
    20 segments of a super-frame with, inside, an ECHO from a (not a frame: handled and
    answered), a replay of an earlier segment (dropped as "replay") and a segment with a
    flipped byte (dropped as "bad_mac", the rest of the batch still delivered). Both give
    the same payload (the copy's frames come one per write, b's coalesced), the same
    counters and drops, and the same answer to the ECHO, which reaches a."""
    net, a, b = pair.net, pair.a, pair.b
    raw, payload = pair.super_frame(20 * MSS)
    segments = sealed_to(a.node.receive_frames(pair.nwid, [raw], net.now), b.endpoint)
    echo_id, echo_effects = a.node.echo(b.address, net.now)
    [echo] = sealed_to(echo_effects, b.endpoint)
    assert opened(b, a, echo)[0] == Verb.ECHO
    flipped = bytearray(segments[8])
    flipped[200] ^= 0x01
    batch = [*segments[:5], echo, *segments[5:8], segments[3], bytes(flipped), *segments[9:]]
    expected = payload[: 8 * MSS] + payload[9 * MSS :]
    twin = copy.deepcopy(b.node)
    drops = Counter(b.node.drops)

    batched = b.node.receive_datagrams(batch, a.endpoint, net.now)
    single: list[Effect] = []
    for datagram in batch:
        single += twin.receive_datagram(datagram, a.endpoint, net.now)

    assert b.node.drops - drops == Counter(replay=1, bad_mac=1)
    assert twin.drops == b.node.drops
    assert twin.counters == b.node.counters
    twin_network = twin.memberships.networks[pair.nwid]
    assert twin_network.counters == pair.network(b).counters
    peer, twin_peer = b.node.peers[a.address], twin.peers[a.address]
    assert twin_peer.counters == peer.counters
    path, twin_path = peer.paths[a.endpoint], twin_peer.paths[a.endpoint]
    assert (twin_path.packets_received, twin_path.bytes_received) == (
        path.packets_received,
        path.bytes_received,
    )
    [delivered] = [e for e in batched if isinstance(e, DeliverFrames)]
    assert len(delivered.frames) == 2, "the gap of the lost segment splits the run"
    one_by_one = [e.frame for e in single if isinstance(e, DeliverFrame)]
    assert len(one_by_one) == 19 and len(single) == 19 + 1  # and the answer to the ECHO
    for written in (delivered.frames, one_by_one):
        plain = [f for w in written for f in as_the_kernel_reads(w, offloaded=True)]
        got = b"".join(f[parsed(f)["hdrs"] :] for f in plain)
        assert got == expected
    answers: list[Effect] = [e for e in batched if isinstance(e, (Send, SendMany))]
    assert answers == [e for e in single if isinstance(e, (Send, SendMany))]
    assert [opened(a, b, d)[:2] for d in sealed_to(answers, a.endpoint)] == [
        bytes([Verb.OK, Verb.ECHO])
    ]
    net.call(b, answers)
    net.run(0.5)
    assert [e.echo_id for e in a.echoes] == [echo_id]


def test_a_batch_refuses_a_runt_that_one_by_one_refuses(tmp_path: Path) -> None:
    """A member whose node was modified seals a good frame and then a 15-byte frame that
    ends inside its VLAN tag, both from its own MAC. One by one, the runt is refused by
    the admission check (switch.accept cannot parse it: drop_bad_source); in one batch
    it must be too, not ride on the admission the good frame got."""
    pair = Pair(tmp_path, b_offload=False)
    net, a, b = pair.net, pair.a, pair.b
    good = frames.icmp_echo_v4(pair.mac(a), pair.mac(b))
    runt = pair.mac(b) + pair.mac(a) + b"\x81\x00\x00"
    prefix = pair.nwid.to_bytes(8, "big")
    sealed = send_many(
        a.node.outbound,
        a.node.peers[b.address],
        Verb.FRAME,
        [prefix + good, prefix + runt],
        net.now,
    )
    datagrams = sealed_to(sealed, b.endpoint)
    twin = copy.deepcopy(b.node)

    batched = b.node.receive_datagrams(datagrams, a.endpoint, net.now)
    single: list[Effect] = []
    for datagram in datagrams:
        single += twin.receive_datagram(datagram, a.endpoint, net.now)

    assert [e.frame for e in single if isinstance(e, DeliverFrame)] == [good]
    assert twin.memberships.networks[pair.nwid].counters["drop_bad_source"] == 1
    assert [e.frames for e in batched if isinstance(e, DeliverFrames)] == [[good]]
    assert pair.network(b).counters == twin.memberships.networks[pair.nwid].counters


# ---- the local TAP ---------------------------------------------------------------------------


def test_hostile_vnet_headers_from_the_tap_are_dropped_and_counted(pair: Pair) -> None:
    """Every refused header of test_offload's HOSTILE list that a TAP could hand over (the
    fields fit their C types), and a read shorter than a header, in one batch from a's
    TAP: each is counted on the network as drop_<reason> and nothing of them is sent;
    a well-formed super-frame at the end of the same batch still goes out."""
    a = pair.a
    raws: list[bytes] = []
    expected: Counter[str] = Counter()
    for _name, header, frame, reason in HOSTILE:
        try:
            vnet = header.pack()
        except struct.error:
            continue
        raws.append(vnet + frame)
        expected[f"drop_{reason}"] += 1
    raws.append(b"\x01" * (VNET_HDR_BYTES - 1))
    expected["drop_vnet_short"] += 1
    assert len(raws) > 25
    good, payload = pair.super_frame(10 * MSS)
    counters = Counter(pair.network(a).counters)

    effects = a.node.receive_frames(pair.nwid, [*raws, good], pair.net.now)

    assert pair.network(a).counters - counters == expected + Counter(
        tx_frames=10, tx_bytes=10 * 66 + 10 * MSS
    )
    assert [type(e) for e in effects] == [SendMany]
    written = pair.deliver(effects, batch=True)
    assert_stream(as_the_kernel_reads(written[0], offloaded=True), payload)
    assert len(written) == 1


def test_a_plain_frame_from_an_offloaded_tap_passes_with_its_checksum_completed(
    tmp_path: Path,
) -> None:
    """A read without GSO from a TAP with offloads: NO_OFFLOAD (nothing to do) or
    NEEDS_CSUM with a partial checksum, which a finishes before sending (the MSS clamp and
    a peer without offloads need a whole one): b, without offloads, gets right frames."""
    pair = Pair(tmp_path, b_partial=False, b_offload=False)
    payload = pattern(500)
    header, frame = gso_frame(payload, MSS, macs=(pair.mac(pair.b), pair.mac(pair.a)))
    partial = offload.VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, 34, 16).pack() + frame
    full = offload.segment(header, frame)[0]
    effects = pair.a.node.receive_frames(pair.nwid, [partial, NO_OFFLOAD + full], pair.net.now)

    written = pair.deliver(effects, batch=False)

    assert written == [full, full]


def test_a_rule_that_drops_a_super_frame_counts_it_once_per_frame_everywhere(
    tmp_path: Path,
) -> None:
    """A rule dropping TCP to port 5201 (the super-frame's) drops all its segments, sends
    nothing, and the two counters that report it agree: drop_rule is the sum of the
    per-rule counts (NetworkStatus.rule_drops), as for frames that come one by one."""
    no_iperf = Rule("drop", "no-iperf", ip_protocol=6, dst_ports=(5201, 5201))
    pair = Pair(tmp_path, rules=(no_iperf,))
    network = pair.network(pair.a)
    raw, _ = pair.super_frame(10 * MSS)
    header, frame = split_vnet(raw)
    one = offload.segment(header, frame)[0]

    effects = pair.a.node.receive_frames(pair.nwid, [raw, NO_OFFLOAD + one], pair.net.now)

    assert effects == []
    assert network.counters["drop_rule"] == 10 + 1
    assert sum(network.rules.counters) == network.counters["drop_rule"]


# ---- merge_sends -----------------------------------------------------------------------------


def test_merge_sends_joins_adjacent_sends_to_one_endpoint_and_keeps_everything_in_order() -> None:
    """A root forwarding a batch: adjacent Sends to one endpoint become one SendMany (a
    single Send stays a Send); another endpoint, the TCP endpoint at the same address, an
    Event or a SendMany in between end a run; nothing moves, nothing is lost."""
    one, two, stream = udp("198.18.0.1", 9993), udp("198.18.0.2", 9993), tcp("198.18.0.1", 9993)
    event = Event("x", "between")
    effects: list[Effect] = [
        Send(one, b"1"),
        Send(one, b"2"),
        Send(two, b"3"),
        event,
        Send(two, b"4"),
        Send(two, b"5"),
        Send(two, b"6"),
        Send(stream, b"7"),
        Send(one, b"8"),
        SendMany(one, [b"9"]),
        Send(one, b"10"),
        Send(one, b"11"),
    ]
    assert merge_sends(effects) == [
        SendMany(one, [b"1", b"2"]),
        Send(two, b"3"),
        event,
        SendMany(two, [b"4", b"5", b"6"]),
        Send(stream, b"7"),
        Send(one, b"8"),
        SendMany(one, [b"9"]),
        SendMany(one, [b"10", b"11"]),
    ]
    assert merge_sends([]) == []
    assert merge_sends([event, Send(one, b"x")]) == [event, Send(one, b"x")]


# ---- packet ids ------------------------------------------------------------------------------


def test_packet_ids_stay_unique_and_increasing_across_batches_and_single_sends(
    pair: Pair,
) -> None:
    """Batches take their ids in one go (Session.take_ids), single packets one at a time,
    timers send probes in between: every session datagram a sends b (its packet id is its
    nonce, so a repeat would reuse a nonce under the key) has a fresh, larger id, and b
    refuses none of them as a replay."""
    net, a, b = pair.net, pair.a, pair.b
    tap: list[tuple[Endpoint, Endpoint, bytes]] = []
    net.wiretap = tap
    ping = frames.icmp_echo_v4(pair.mac(a), pair.mac(b))
    for round_ in range(3):
        first, _ = pair.super_frame(8 * MSS, seq=round_ * 100_000, salt=round_)
        second, _ = pair.super_frame(3 * MSS, seq=round_ * 100_000 + 50_000)
        net.call(a, a.node.receive_frames(pair.nwid, [first], net.now))
        net.call(a, a.node.receive_frame(pair.nwid, ping, net.now))
        net.call(a, a.node.echo(b.address, net.now)[1])
        batch = [second, NO_OFFLOAD + ping, first]
        net.call(a, a.node.receive_frames(pair.nwid, batch, net.now))
        net.run(6)  # keepalives and MTU probes go out on their own

    me, them = wire.addr_bytes(a.address), wire.addr_bytes(b.address)
    ids: dict[int, list[int]] = {}
    for _source, _dest, data in tap:
        if wire.is_fragment(data) or data[13:18] != me or data[8:13] != them:
            continue
        if (data[18] & wire.CIPHER_MASK) >> wire.CIPHER_SHIFT == Cipher.SESSION:
            ids.setdefault(data[19], []).append(int.from_bytes(data[:8], "big"))
    assert len(ids) == 1, "one session all along"
    [sent] = ids.values()
    assert len(sent) >= 3 * (8 + 1 + 1 + 3 + 1 + 8)
    assert sent == sorted(set(sent))
    assert b.node.drops["replay"] == 0
    assert pair.network(b).counters["rx_frames"] == 1 + 3 * (8 + 1 + 3 + 1 + 8)
