"""The batched data path: many frames in, many datagrams out, and back.

One TAP read on a port with offloads can hand us a 64 KB TCP super-frame; one UDP receive
with GRO can hand us dozens of datagrams from one sender. Doing the per-packet work of
the rest of the node (lookups, routing, counters) once per batch instead of once per
1.4 KB frame is what lets Python move more than a few thousand frames a second.

What still happens per segment, because it must: sealing (each datagram is its own AEAD
packet, so losing one on the wire loses one TCP segment, never a whole super-frame, which
at 1% loss would lose ~45 segments at a time) and the fragment check against the path MTU.
What happens once per super-frame, because every segment shares it: flow rules (they look
at ethertype, IP protocol, ports, ICMP type: identical across the segments), the switch
lookup, credentials, the session and route.

`send_many` is `Outbound.send` for a list of payloads to one peer; `RxBatch` collects
the frames a batch of datagrams delivers, so they reach each TAP in one effect, coalesced
into super-frames on ports with offloads (offload.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag

from . import offload, wire
from .crypto import Session
from .effects import DeliverFrame, DeliverFrames, Effect, Endpoint, Send, SendMany
from .path import PMTU_MIN
from .peer import Peer
from .wire import Cipher, MalformedError, Verb

if TYPE_CHECKING:
    from .node import Node
    from .outbound import Outbound
    from .vnet import Network

_SESSION_FLAGS = int(Cipher.SESSION) << wire.CIPHER_SHIFT
_SESSION_FLAG_BYTE = bytes([_SESSION_FLAGS])
_FRAME, _FRAME_PARTIAL = int(Verb.FRAME), int(Verb.FRAME_PARTIAL)
# header, verb, network id, an Ethernet header, the tag: anything shorter is no frame
_FRAME_MIN_BYTES = wire.HEADER_BYTES + 1 + 8 + 14 + wire.TAG_BYTES


def send_many(
    node: Outbound, peer: Peer, verb: Verb, payloads: list[bytes], now: float
) -> list[Effect]:
    """Seal and send `payloads` (each one `verb` packet) to `peer` as one SendMany.

    Anything unusual (no session yet, an unconfirmed path) goes the one-packet way, which
    queues, handshakes and checks budgets; this is only the established, common case."""
    session = peer.tx_session
    target = node.route(peer, now) if session is not None and not session.expired(now) else None
    path = peer.paths.get(target) if target is not None else None
    if (
        session is None
        or target is None
        or (path is not None and not (path.confirmed or path.configured))
    ):
        out: list[Effect] = []
        for payload in payloads:
            out += node.send(peer, verb, payload, now)
        return out
    # A relayed packet takes the root's other leg too, whose MTU only the root knows.
    mtu = path.mtu if path is not None else PMTU_MIN
    first = session.take_ids(len(payloads))
    # Every header is the packet id and these 12 bytes (to, from, flags, key id); hops 0
    # and not fragmented, so it is its own associated data. The AEAD is called here
    # directly (Session.seal's body) with the nonce from the same 8 id bytes.
    tail = wire.HEADER_STRUCT.pack(
        0,
        wire.addr_bytes(peer.address),
        wire.addr_bytes(node.address),
        _SESSION_FLAGS,
        session.key_id,
    )[8:]
    verb_byte = bytes([verb])
    aead, nonce_tail, seal = session.tx_aead, session.nonce_tail, session.seal
    encrypt = aead.encrypt if aead is not None else None  # None: XCHACHA20, old peers
    datagrams: list[bytes] = []
    sent_bytes = sent = 0
    for packet_id, payload in enumerate(payloads, first):
        id_bytes = packet_id.to_bytes(8, "big")
        head = id_bytes + tail
        if encrypt is not None:
            packet = head + encrypt(id_bytes + nonce_tail, verb_byte + payload, head)
        else:
            packet = head + seal(head, head, verb_byte + payload)
        if len(packet) <= mtu:
            datagrams.append(packet)
        else:
            try:
                datagrams += wire.fragment_packet(packet, mtu)
            except ValueError:
                node.drops["too_big"] += 1
                continue
        sent += 1
        sent_bytes += len(packet)
    node.count_sent(peer, target, path, sent, len(datagrams), sent_bytes, now)
    out = [SendMany(target, datagrams)] if datagrams else []
    if peer.handshake is None and session.wants_rekey(now, node.config.rekey_after_packets):
        out += node.hello(peer, now)
    return out


def receive_batch(node: Node, datagrams: list[bytes], source: Endpoint, now: float) -> list[Effect]:
    """`Node.receive_datagram` for each of `datagrams`, with a short way for the common
    case: a whole, unrelayed FRAME on a confirmed session of a known peer. It runs the
    same checks in the same order (addressed to us, known peer, live session, replay
    window before the AEAD, the window updated only after it), skipping only the parsing
    into objects; the path learns of the frames once per run of one sender (and hop
    count), before they are handled. Anything else, or any doubt, goes the general way,
    which counts what it drops."""
    me = wire.addr_bytes(node.address)
    peers, drops = node.peers, node.drops
    frames_in = node.memberships.frames_in
    heard_from = node.timers.packet_received
    dispatch = node.inbound.dispatch
    out: list[Effect] = []
    heard: Peer | None = None
    heard_hops = heard_packets = heard_bytes = rx_packets = rx_bytes = 0
    # The sender and session, looked up once per run of datagrams that name the same
    # (source, key id); forgotten whenever the general way ran, which may change them.
    last: bytes | None = None
    peer: Peer | None = None
    session: Session | None = None
    # Consecutive frames of one sender, network and kind, handed to the network together.
    group_key = b""
    group_peer: Peer | None = None
    group_frames: list[bytes] = []

    def flush() -> list[Effect]:
        nonlocal last, heard, group_frames
        assert group_peer is not None
        if heard is not None:  # the path learns of the frames before they are handled
            heard_from(heard, source, heard_hops, heard_bytes, now, heard_packets)
            heard = None
        nwid, partial = int.from_bytes(group_key[1:9], "big"), group_key[0] == _FRAME_PARTIAL
        frames, group_frames = group_frames, []
        effects = frames_in(group_peer, nwid, frames, now, partial)
        if effects:  # credentials asked for: what we know of the peer may change
            last = None
        return effects

    pending = iter(datagrams)
    carry: bytes | None = None  # a datagram _more_frames took but left to this loop
    while True:
        if carry is not None:
            data, carry = carry, None
        else:
            got = next(pending, None)
            if got is None:
                break
            data = got
        flags = data[18] if len(data) >= _FRAME_MIN_BYTES else -1
        if flags & ~wire.HOPS_MASK == _SESSION_FLAGS and data[8:13] == me:
            key = data[13:20]
            if key != last:
                last = key
                peer = peers.get(int.from_bytes(data[13:18], "big"))
                session = peer.sessions.get(data[19]) if peer is not None else None
                if session is not None and (not session.confirmed or session.expired(now)):
                    session = None
            if peer is not None and session is not None:
                rx_packets += 1
                rx_bytes += len(data)
                packet_id = int.from_bytes(data[:8], "big")
                if not session.replay.check(packet_id):
                    drops["replay"] += 1
                    continue
                head = data[:20]
                hops = flags & wire.HOPS_MASK  # relayed: the AD has the hop count cleared
                ad = head if not hops else head[:18] + _SESSION_FLAG_BYTE + head[19:]
                plain = session.open(head, ad, data[20:])
                if not plain:
                    drops["bad_mac" if plain is None else "malformed"] += 1
                    continue
                verb = plain[0]
                if (verb != _FRAME and verb != _FRAME_PARTIAL) or len(plain) < 23:
                    if group_frames:  # the frames before it are handled before it
                        out += flush()
                    last = None
                    try:
                        header = wire.parse_header(data)
                        out += dispatch(peer, header, session, plain, len(data), source, now)
                    except MalformedError:  # as receive_datagram would count it
                        drops["malformed"] += 1
                    continue
                session.replay.accept(packet_id)
                if heard is not peer or hops != heard_hops:
                    if heard is not None:
                        heard_from(heard, source, heard_hops, heard_bytes, now, heard_packets)
                    heard, heard_hops, heard_packets, heard_bytes = peer, hops, 0, 0
                heard_packets += 1
                heard_bytes += len(data)
                group = plain[:9]
                if group != group_key or peer is not group_peer:
                    if group_frames:
                        out += flush()
                    group_key, group_peer = group, peer
                group_frames.append(plain[9:])
                if not hops:  # the short way's short way: see _more_frames
                    taken, size, carry = _more_frames(
                        session, data[8:20], group, pending, group_frames
                    )
                    rx_packets += taken
                    rx_bytes += size
                    heard_packets += taken
                    heard_bytes += size
                continue
        last = None  # the general way (relaying on a root, too), which may change them
        if group_frames:
            out += flush()
        out += node.receive_datagram(data, source, now)
    if group_frames:
        out += flush()
    node.counters["rx_packets"] += rx_packets
    node.counters["rx_bytes"] += rx_bytes
    if heard is not None:
        heard_from(heard, source, heard_hops, heard_bytes, now, heard_packets)
    return out


def _more_frames(
    session: Session, tag: bytes, group: bytes, pending: Iterator[bytes], frames: list[bytes]
) -> tuple[int, int, bytes | None]:
    """After an unrelayed FRAME that receive_batch took, the datagrams that follow it for as
    long as each is another of the kind: to us from the same peer under the same key and
    flags (bytes 8-20 equal `tag`, so the header is the associated data), new to the replay
    window, authentic, and a frame of the same verb and network (`group`). Their frames are
    appended to `frames`. Returns how many were taken, their bytes, and the first datagram
    that was not such a one (None at the end), which the caller handles from the start as
    any other: the checks are receive_batch's, in its order, with nothing counted or
    accepted for a datagram handed back (a forged one costs one more AEAD attempt there).

    Why: in a batch from one sender nearly every datagram is such a one, and this loop does
    only what differs between them (~10% of receiving a 64 KB super-frame). Also:
    - The replay window. A datagram whose id is the one after the previous datagram's, in
      a run that began above the window's highest id, is new by construction; the run is
      accepted in one shift (ReplayWindow.accept_run) when any other id comes, before
      that one is checked, and before returning. Other ids are checked and accepted on
      their own, as receive_batch does.
    - Session.open's body is inlined: the AEAD is called directly with the session's
      nonce tail (a Python call less per datagram)."""
    window = session.replay
    check, accept = window.check, window.accept
    aead, nonce_tail, open_ = session.rx_aead, session.nonce_tail, session.open
    decrypt = aead.decrypt if aead is not None else None  # None: XCHACHA20, old peers
    taken = size = 0
    run_from = expect = -1  # the open run of ids (none: -1), and the id that continues it
    carry: bytes | None = None
    for data in pending:
        # The AEAD would refuse any other header too (it is the associated data), but
        # comparing 12 bytes is cheaper than an AEAD attempt and says what we expect.
        if data[8:20] != tag or len(data) < _FRAME_MIN_BYTES:
            carry = data
            break
        packet_id = int.from_bytes(data[:8], "big")
        if packet_id != expect:
            if run_from >= 0:  # the window must know the run to check any other id
                window.accept_run(run_from, expect - 1)
                run_from = expect = -1
            if not check(packet_id):
                carry = data
                break
        head = data[:20]
        if decrypt is not None:
            try:
                plain: bytes | None = decrypt(data[:8] + nonce_tail, data[20:], head)
            except InvalidTag:
                plain = None
        else:
            plain = open_(head, head, data[20:])
        if plain is None or plain[:9] != group or len(plain) < 23:
            carry = data
            break
        if packet_id == expect:
            expect += 1
        elif packet_id > window.highest:  # the start of a run (none is open here)
            run_from, expect = packet_id, packet_id + 1
        else:  # late, within the window
            accept(packet_id)
        frames.append(plain[9:])
        taken += 1
        size += len(data)
    if run_from >= 0:
        window.accept_run(run_from, expect - 1)
    return taken, size, carry


def merge_sends(effects: list[Effect]) -> list[Effect]:
    """Adjacent Sends to one endpoint (a root forwarding a batch it received) become one
    SendMany, which the I/O layer can hand to the kernel in one GSO call. Order kept."""
    out: list[Effect] = []
    run: list[bytes] = []
    target: Endpoint | None = None
    for effect in effects:
        if isinstance(effect, Send) and effect.endpoint == target:
            run.append(effect.data)
            continue
        if run:
            assert target is not None
            out.append(SendMany(target, run) if len(run) > 1 else Send(target, run[0]))
            run, target = [], None
        if isinstance(effect, Send):
            run, target = [effect.data], effect.endpoint
        else:
            out.append(effect)
    if run:
        assert target is not None
        out.append(SendMany(target, run) if len(run) > 1 else Send(target, run[0]))
    return out


class RxBatch:
    """Frames delivered while the node handles one batch of datagrams, per network, and
    the (sender, network, source MAC) triples admitted in it (Memberships.frames_in)."""

    __slots__ = ("admitted", "frames")

    def __init__(self) -> None:
        self.frames: dict[int, tuple[Network, list[bytes]]] = {}
        self.admitted: set[tuple[int, int, bytes]] = set()

    def frames_of(self, network: Network) -> list[bytes]:
        """The list this batch delivers to `network`'s TAP, to append frames to."""
        entry = self.frames.get(network.nwid)
        if entry is None:
            entry = self.frames[network.nwid] = (network, [])
        return entry[1]

    def effects(self) -> list[Effect]:
        """One DeliverFrames per network, coalesced on ports with offloads; the networks'
        frame counters move here, once per batch."""
        out: list[Effect] = []
        for nwid, (network, frames) in self.frames.items():
            if not frames:
                continue
            network.counters["rx_frames"] += len(frames)
            network.counters["rx_bytes"] += sum(map(len, frames))
            out.append(DeliverFrames(nwid, offload.coalesce(frames) if network.offload else frames))
        return out


def deliver_one(nwid: int, frame: bytes, offloaded: bool) -> DeliverFrame:
    """A frame outside a batch: with offloads it still needs its virtio_net_hdr, and a TCP
    one gets NEEDS_CSUM, which also covers a partial checksum from FRAME_PARTIAL."""
    return DeliverFrame(nwid, offload.coalesce([frame])[0] if offloaded else frame)


def complete_checksum(frame: bytes) -> bytes:
    """The frame of a FRAME_PARTIAL with its TCP checksum computed, for a port without
    offloads. Raises offload.OffloadError for a frame that is no TCP segment."""
    _, l4, _, _ = offload.parse_tcp(frame)
    header = offload.VnetHeader(flags=offload.NEEDS_CSUM, csum_start=l4, csum_offset=16)
    return offload.segment(header, frame)[0]
