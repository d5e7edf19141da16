"""Two members of one network on the FakeNet, for the data-path tests (test_datapath.py,
test_datapath_batches.py): `Pair`, and helpers to carry, open and read what they send."""

from __future__ import annotations

from pathlib import Path

from overlay_core.controller import Controller
from overlay_core.proto import offload, wire
from overlay_core.proto.crypto import Suite
from overlay_core.proto.effects import (
    Effect,
    Endpoint,
    Send,
    SendMany,
)
from overlay_core.proto.ethernet import mac_for
from overlay_core.proto.netrules import Rule
from overlay_core.proto.node import NodeConfig
from overlay_core.proto.offload import (
    NEEDS_CSUM,
    split_vnet,
)
from overlay_core.proto.vnet import Network
from overlay_core.proto.wire import Cipher
from overlay_core.testing.fakenet import FakeNet, Host
from tests.core import frames
from tests.core.test_offload import (
    ACK,
    PSH,
    V4,
    V6,
    gso_frame,
    parsed,
    pattern,
)

# 1066-byte frames, 1111-byte datagrams: within PMTU_MIN (1200), so never fragmented and
# every segment takes receive_batch's fast way.
MSS = 1000
SIZE = 64_000  # a 64 KB super-frame: 64 segments, 64052 bytes of IP once coalesced again
SEQ = 0xFFFF_C000  # TCP seq wraps past 2^32 inside the super-frame


class Pair:
    """A root, a controller and two public members a and b of one approved network.

    `partial`: the member's NodeConfig.partial_csum (offer FEATURE_PARTIAL_CSUM);
    `offload`: its TAP was opened with offloads (Node.port_opened after join); `relayed`:
    the direct path between a and b is blocked; `rules`: the network's. When built,
    a and b have a confirmed direct path and a confirmed session both ways and have
    exchanged credentials (one frame each way), so what the tests send next is the steady
    state: A's effects for a super-frame are one SendMany and nothing else."""

    def __init__(
        self,
        tmp: Path,
        *,
        a_partial: bool = True,
        b_partial: bool = True,
        a_offload: bool = True,
        b_offload: bool = True,
        relayed: bool = False,
        rules: tuple[Rule, ...] = (),
        suites: tuple[Suite, ...] | None = None,
    ) -> None:
        self.net = net = FakeNet()
        self.root = net.add_host("root0", root=True)
        ctl = net.add_host("ctl")
        controller = ctl.controller = Controller(ctl.node.identity, tmp / "controller.db")
        chosen = {} if suites is None else {"suites": suites}  # None: the CPU's choice
        self.a = net.add_host("a", config=NodeConfig(partial_csum=a_partial, **chosen))
        self.b = net.add_host("b", config=NodeConfig(partial_csum=b_partial, **chosen))
        if relayed:
            net.block(self.a, self.b)
        net.run(2)
        record = controller.create_network("dp", pools=["10.147.17.0/24"], rules=rules, now=net.now)
        self.nwid = nwid = int(record.to_json()["nwid"], 16)
        for host, offloaded in ((self.a, a_offload), (self.b, b_offload)):
            net.call(host, host.node.join(nwid, net.now))
            net.call(host, host.node.port_opened(nwid, offloaded))
        net.run(2)
        for host in (self.a, self.b):
            controller.authorize(nwid, host.address, net.now)
        net.run(1)
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            ping = frames.icmp_echo_v4(self.mac(src), self.mac(dst))
            net.call(src, src.node.receive_frame(nwid, ping, net.now))
            net.run(0.5)
        assert net.run_until(lambda: self._ready(self.a, self.b, relayed), 30)
        assert net.run_until(lambda: self._ready(self.b, self.a, relayed), 30)
        for host in (self.a, self.b):
            assert self.network(host).counters["rx_frames"] == 1
            host.frames.clear()
        for host, other, partial in ((self.a, self.b, b_partial), (self.b, self.a, a_partial)):
            features = host.node.peers[other.address].features
            assert bool(features & wire.FEATURE_PARTIAL_CSUM) is partial

    def _ready(self, host: Host, other: Host, relayed: bool) -> bool:
        """A confirmed session to `other`, and a confirmed direct path (or none)."""
        peer = host.node.peers[other.address]
        path = peer.best_path(self.net.now)
        session = peer.tx_session
        if session is None or not session.confirmed:
            return False
        if relayed:
            return path is None
        return path is not None and path.endpoint == other.endpoint and path.confirmed

    def mac(self, host: Host) -> bytes:
        return mac_for(self.nwid, host.address)

    def network(self, host: Host) -> Network:
        return host.node.memberships.networks[self.nwid]

    def super_frame(
        self, size: int = SIZE, *, seq: int = SEQ, mss: int = MSS, salt: int = 0, v6: bool = False
    ) -> tuple[bytes, bytes]:
        """(TAP read: vnet header + super-frame, its TCP payload) from a to b."""
        payload = pattern(size, salt)
        macs = (self.mac(self.b), self.mac(self.a))
        header, frame = gso_frame(payload, mss, v6=v6, seq=seq, flags=ACK | PSH, macs=macs)
        return header.pack() + frame, payload

    def deliver(self, effects: list[Effect], *, batch: bool) -> list[bytes]:
        """Carry a's `effects` to b (see the module docstring for the two ways); the
        buffers b wrote to its TAP of the network because of them."""
        net, a, b = self.net, self.a, self.b
        before = len(b.frames)
        if batch:
            datagrams = sealed_to(effects, b.endpoint)
            net.call(a, [e for e in effects if not _sends_to(e, b.endpoint)])
            net.run(0.1)  # anything else (credentials) first, as on the wire
            net.call(b, b.node.receive_datagrams(datagrams, a.endpoint, net.now))
        else:
            net.call(a, effects)
        net.run(0.5)
        return [f.frame for f in b.frames[before:] if f.nwid == self.nwid]


def _sends_to(effect: Effect, endpoint: Endpoint) -> bool:
    return isinstance(effect, (Send, SendMany)) and effect.endpoint == endpoint


def sealed_to(effects: list[Effect], endpoint: Endpoint) -> list[bytes]:
    """The datagrams `effects` send to `endpoint`, Send and SendMany alike, in order."""
    out: list[bytes] = []
    for effect in effects:
        if isinstance(effect, Send) and effect.endpoint == endpoint:
            out.append(effect.data)
        elif isinstance(effect, SendMany) and effect.endpoint == endpoint:
            out += effect.datagrams
    return out


def opened(receiver: Host, sender: Host, datagram: bytes) -> bytes:
    """The plaintext of a whole session datagram, opened with the receiver's session key
    but without touching its replay window: the datagram can still be delivered."""
    assert datagram[18] == Cipher.SESSION << wire.CIPHER_SHIFT, "hops 0, whole"
    session = receiver.node.peers[sender.address].sessions[datagram[19]]
    plain = session.open(datagram[:20], datagram[:20], datagram[20:])
    assert plain
    return plain


def checksum_right(frame: bytes) -> bool:
    """IP header (v4) and TCP checksums right, by the module and from scratch."""
    l4 = parsed(frame)["l4"]
    addresses = V6 if frame[12:14] == b"\x86\xdd" else V4
    return frames.frame_checksums_ok(frame) and frames.tcp_checksum_ok(*addresses, frame[l4:])


def as_the_kernel_reads(buffer: bytes, offloaded: bool) -> list[bytes]:
    """The plain frames a TAP write stands for: with offloads the kernel finishes a
    NEEDS_CSUM checksum and cuts a GSO frame (offload.segment does both, see above)."""
    if not offloaded:
        return [buffer]
    header, frame = split_vnet(buffer)
    assert header.flags == NEEDS_CSUM, "every TCP frame gets the NEEDS_CSUM convention"
    return offload.segment(header, frame)


def assert_stream(plain: list[bytes], payload: bytes, seq: int = SEQ) -> None:
    """`plain` carries `payload` in order from `seq`, each frame with right checksums."""
    got = b""
    for frame in plain:
        f = parsed(frame)
        assert f["seq"] == (seq + len(got)) % 2**32
        assert f["ip_len"] == len(frame) - 14
        assert checksum_right(frame)
        got += frame[f["hdrs"] :]
    assert got == payload


def segment_verbs(receiver: Host, sender: Host, datagrams: list[bytes]) -> set[int]:
    return {opened(receiver, sender, d)[0] for d in datagrams}
