"""The fuzzers' seed corpus: real packets from a real exchange, regenerated at test time.

`fuzz_world()` runs a small overlay on overlay_core.testing.fakenet with a fixed seed (a
root, a controller node hosting a private network, leaf `a` behind a port-restricted NAT
and leaf `b` on a public address), taps the wire for the whole run and keeps:

* every datagram that crossed it (`Seed`), labelled with what it carries, found by opening
  it with the receiving node's own keys: HELLO, OK-HELLO, ECHO, OK-ECHO, WHOIS, OK-WHOIS,
  RENDEZVOUS, PUSH_DIRECT_PATHS, FRAME, USER_DATA, NETWORK_CONFIG_REQUEST, NETWORK_CONFIG,
  CREDENTIALS, ERROR-<code>, and the heads and fragments of packets too large for one
  datagram (a 2800-byte frame, the signed config). `Seed.plaintext` is the verb byte and
  payload the receiver decrypted, which the structured fuzzers mutate and seal again;
* deep copies of every node as the run left them (`pristine`), with their sessions, so a
  fuzz input is fed to a fresh copy and reaches the same handlers the real packet did;
* a real signed network config, certificate of membership and the controller's identity
  for the codec fuzzers.

Why generated and not files: the node fuzzers need the live session keys the packets were
sealed under, so corpus files would go stale against the nodes whenever the handshake or
the traffic pattern changes (the receive path is being reworked), while a deterministic
run (seeded identities, random source and clock) always yields packets that are real for
the nodes they are fed to. Building it takes about a second, once per process.
`python -m tests.fuzz.seeds [DIR]` lists the corpus, and writes one file per packet into
DIR when given (e.g. to feed another engine); the golden packets of tests/data are added
as seeds too.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from overlay_core.controller import Controller
from overlay_core.proto import wire
from overlay_core.proto.crypto import open_
from overlay_core.proto.effects import Endpoint, udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.netconf import NetworkConfig
from overlay_core.proto.node import Node
from overlay_core.testing.fakenet import FakeNet, Host, NatKind
from tests.core import frames

GOLDEN = Path(__file__).resolve().parent.parent / "data"
WORLD_SEED = 7
UNKNOWN_SENDER = udp("203.0.113.9", 4444)  # a source no node has a path from


@dataclass(frozen=True, slots=True)
class Seed:
    """One datagram as it travelled, and who received it."""

    kind: str  # what it carries; see the module docstring
    receiver: str  # the host it was delivered to (a root, for relayed packets)
    dest: str | None  # the host its destination address names
    source: Endpoint  # where the receiver saw it come from
    sender: int  # the overlay address in its source field
    data: bytes
    plaintext: bytes | None  # verb byte + payload; None for fragments and golden packets
    cipher: wire.Cipher | None


@dataclass(slots=True)
class FuzzWorld:
    pristine: dict[str, Node]  # never fed anything: copy them (`fresh_node`)
    endpoints: dict[str, Endpoint]  # where each host's packets come from, as others see it
    addresses: dict[str, int]
    seeds: list[Seed]
    now: float
    nwid: int
    controller: Identity  # public identity of the network's controller
    signed_config: bytes  # a real NETWORK_CONFIG payload after the nwid
    com: bytes  # a real certificate of membership
    frames: list[bytes]  # Ethernet frames the members sent

    def fresh_node(self, name: str) -> Node:
        """A deep copy of a host's node as the run left it (about a millisecond)."""
        return copy.deepcopy(self.pristine[name])

    def by_kind(self) -> dict[str, list[Seed]]:
        out: dict[str, list[Seed]] = {}
        for seed in self.seeds:
            out.setdefault(seed.kind, []).append(seed)
        return out


def _host_at(net: FakeNet, endpoint: Endpoint) -> Host | None:
    host = net._by_ip.get(endpoint.host)
    if host is not None:
        return host
    for nat in net.nats.values():
        if nat.public_ip == endpoint.host:
            inside = nat.inbound.get(endpoint.port)
            return net._by_ip.get(inside[0].host) if inside is not None else None
    return None


def open_with(node: Node, packet: bytes) -> bytes | None:
    """The plaintext (verb + payload) of a whole packet addressed to `node`, opened with
    the keys it holds, or None. Test-side mirror of Inbound._receive_packet's opening."""
    try:
        header = wire.parse_header(packet)
    except wire.MalformedError:
        return None
    peer = node.peers.get(header.source)
    if peer is None:
        return None
    head = packet[: wire.HEADER_BYTES]
    ad = wire.associated_data(head)
    body = packet[wire.HEADER_BYTES :]
    if header.cipher is wire.Cipher.HELLO:
        clear, body = body[: wire.PUBLIC_KEY_BYTES], body[wire.PUBLIC_KEY_BYTES :]
        return open_(node.outbound.static_key(peer), head, ad + clear, body)
    if header.cipher is wire.Cipher.STATIC:
        return open_(node.outbound.static_key(peer), head, ad, body)
    session = peer.sessions.get(header.key_id)
    return session.open(head, ad, body) if session is not None else None


def label(plaintext: bytes) -> str:
    try:
        verb = wire.Verb(plaintext[0])
    except (ValueError, IndexError):
        return "UNKNOWN"
    if verb is wire.Verb.OK and len(plaintext) > 1:
        try:
            return f"OK-{wire.Verb(plaintext[1]).name}"
        except ValueError:
            return "OK-UNKNOWN"
    if verb is wire.Verb.ERROR and len(plaintext) > 10:
        try:
            return f"ERROR-{wire.ErrorCode(plaintext[10]).name}"
        except ValueError:
            return "ERROR-UNKNOWN"
    return verb.name


def _run_world(tmp: Path) -> tuple[FakeNet, list[tuple[Endpoint, Endpoint, bytes]], int, bytes]:
    net = FakeNet(seed=WORLD_SEED)
    net.wiretap = []
    net.add_host("root", root=True)
    ctl = net.add_host("ctl")
    ctl.controller = Controller(ctl.node.identity, tmp / "controller.db")
    a = net.add_host("a", nat=net.add_nat("nat-a", NatKind.PORT_RESTRICTED))
    b = net.add_host("b")
    net.run(2)
    record = ctl.controller.create_network("fuzz", pools=["10.147.17.0/24"], now=net.now)
    nwid = int(record.to_json()["nwid"], 16)
    for host in (a, b):
        net.call(host, host.node.join(nwid, net.now))
    net.run(2)  # NETWORK_CONFIG_REQUEST, answered ERROR(ACCESS_DENIED)
    for host in (a, b):
        ctl.controller.authorize(nwid, host.address, net.now)
    net.run(2)  # NETWORK_CONFIG pushed (fragmented), CREDENTIALS on first frames
    net.call(a, a.node.send_user_data(b.address, b"seed user data", net.now))  # WHOIS first
    _, effects = a.node.echo(b.address, net.now)
    net.call(a, effects)
    _, effects = a.node.echo(0x0123456789, net.now)  # nobody: ERROR(OBJ_NOT_FOUND)
    net.call(a, effects)
    net.run(2)
    from overlay_core.proto.ethernet import mac_for

    mac_a, mac_b = mac_for(nwid, a.address), mac_for(nwid, b.address)
    sent = [
        frames.arp_request(mac_a, "10.147.17.1", "10.147.17.2"),
        frames.icmp_echo_v4(mac_a, mac_b),
        frames.syn_v4(src_mac=mac_a, dst_mac=mac_b),
        frames.ethernet(mac_a, mac_b, 0x0800, bytes(2700)),  # over one datagram: fragments
    ]
    for frame, host in zip(sent, (a, a, a, b), strict=True):
        net.call(host, host.node.receive_frame(nwid, frame, net.now))
        net.run(0.5)
    net.run(3)  # keepalives, ECHOs, path MTU probes
    signed = ctl.controller.build_config(nwid, a.address, net.now)
    assert isinstance(signed, bytes)
    taps = net.wiretap
    net.wiretap = None
    return net, taps, nwid, signed


def _classify(net: FakeNet, taps: list[tuple[Endpoint, Endpoint, bytes]]) -> list[Seed]:
    names = {h.address: name for name, h in net.hosts.items()}
    heads: dict[tuple[int, int], tuple[bytes, list[bytes]]] = {}
    pieces: list[tuple[Seed, tuple[int, int]]] = []
    seeds: list[Seed] = []
    for source, dest, data in taps:
        receiver = _host_at(net, dest)
        if receiver is None or len(data) < wire.HEADER_BYTES:
            continue
        dest_name = names.get(wire.dest_of(data))
        sender = wire.source_of(data)
        key = (sender, int.from_bytes(data[:8], "big"))
        if wire.is_fragment(data) or data[18] & wire.FLAG_FRAGMENTED:
            entry = heads.setdefault(key, (b"", []))
            if wire.is_fragment(data):
                entry[1].append(data)
            else:
                heads[key] = (data, entry[1])
            seed = Seed("", receiver.name, dest_name, source, sender, data, None, None)
            pieces.append((seed, key))
            continue
        dest_node = net.hosts[dest_name].node if dest_name is not None else None
        plain = open_with(dest_node, data) if dest_node is not None else None
        kind = label(plain) if plain is not None else "SEALED"
        if receiver.name != dest_name:
            kind = f"RELAYED-{kind}"
        cipher = wire.parse_header(data).cipher
        seeds.append(Seed(kind, receiver.name, dest_name, source, sender, data, plain, cipher))
    for seed, key in pieces:  # name fragments after the packet they reassemble to
        head, rest = heads[key]
        rest = sorted(rest, key=lambda d: d[19] >> 4)
        whole = head + b"".join(d[wire.FRAGMENT_HEADER_BYTES :] for d in rest) if head else b""
        dest_node = net.hosts[seed.dest].node if seed.dest is not None else None
        plain = open_with(dest_node, whole) if whole and dest_node is not None else None
        what = label(plain) if plain is not None else "SEALED"
        part = "FRAGMENT" if wire.is_fragment(seed.data) else "HEAD"
        seeds.append(
            Seed(
                f"{part}-{what}",
                seed.receiver,
                seed.dest,
                seed.source,
                seed.sender,
                seed.data,
                None,
                None,
            )
        )
    return seeds


@lru_cache(maxsize=1)
def fuzz_world() -> FuzzWorld:
    with tempfile.TemporaryDirectory(prefix="ztui-fuzz-") as tmp:
        net, taps, nwid, signed = _run_world(Path(tmp))
        ctl = net.hosts["ctl"]
        assert ctl.controller is not None
        ctl.controller.close()
    seeds = _classify(net, taps)
    root = net.hosts["root"]
    for name in ("hello.bin", "ok_hello.bin", "echo.bin"):
        data = (GOLDEN / name).read_bytes()
        seeds.append(
            Seed(
                f"GOLDEN-{name[:-4].upper()}",
                "root",
                None,
                UNKNOWN_SENDER,
                wire.source_of(data),
                data,
                None,
                None,
            )
        )
    endpoints = {
        name: root.node.peers[h.address].best_path(net.now)
        for name, h in net.hosts.items()
        if h is not root
    }
    config = NetworkConfig.from_signed_bytes(signed, ctl.node.identity.public())
    sent_frames = [f.frame for h in net.hosts.values() for f in h.frames]
    return FuzzWorld(
        pristine={name: copy.deepcopy(h.node) for name, h in net.hosts.items()},
        endpoints={
            **{n: p.endpoint for n, p in endpoints.items() if p is not None},
            "root": root.endpoint,
        },
        addresses={name: h.address for name, h in net.hosts.items()},
        seeds=seeds,
        now=net.now,
        nwid=nwid,
        controller=ctl.node.identity.public(),
        signed_config=signed,
        com=config.com.to_bytes(),
        frames=sent_frames,
    )


def main(argv: list[str]) -> int:
    world = fuzz_world()
    counts = Counter(s.kind for s in world.seeds)
    for kind, count in sorted(counts.items()):
        print(f"{count:5d}  {kind}")
    print(f"{len(world.seeds)} seed datagrams")
    if argv:
        out = Path(argv[0])
        out.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(world.seeds):
            (out / f"{i:04d}-{seed.kind}-to-{seed.receiver}.bin").write_bytes(seed.data)
        print(f"wrote {len(world.seeds)} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
