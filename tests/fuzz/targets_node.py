"""Fuzz targets for `Node.receive_datagram`, on the root, the controller and two members of
the seed world (tests/fuzz/seeds.py), each input fed to a fresh copy of the node.

* `node.datagram`: mutated real datagrams (bit flips, truncation, splices, hop and flag
  bytes, fragment markers and numbering, fresh packet ids) and random bytes, from any
  source, to any of the nodes.
* `node.sealed`: STRUCTURED. Packets sealed for real: under the receiver's current session
  with a sender (a fresh packet id, so they pass the replay window), under the static key,
  or as a HELLO, from a known peer or a stranger; hops, key id and fragmentation chosen by
  the fuzzer. The plaintext is a mutated real one or built per verb (HELLO, OK(HELLO/ECHO/
  WHOIS), ERROR with each code, WHOIS, RENDEZVOUS, ECHO, PUSH_DIRECT_PATHS, FRAME, CREDENTIALS,
  NETWORK_CONFIG_REQUEST, NETWORK_CONFIG signed by the real controller), so the fuzz gets
  past authentication into every verb handler. Some inputs first make a leaf HELLO its
  root (Node.tcp_up) and answer with an OK(HELLO) for that HELLO's packet id, so the
  handshake completion is fuzzed too.
* `node.sequence`: a run of either, with clock steps and ticks, into one node.
* `node.batch`: a run of either from one source, in one `receive_datagrams` call.
* `membership.payloads`: the membership verb handlers called directly.

Contract: receive_datagram never raises and returns a list of effects; and state stays
bounded (`check_bounds`): reassembly within its limits, sessions and queues per peer
within theirs, no peer but the identities the fuzzer holds, and every other table (WHOIS,
echoes, paths per peer, punch state, relay buckets, learned MACs, certificates) grows by
at most a small constant per input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from overlay_core.proto import fragment, outbound, punch, wire
from overlay_core.proto import peer as peer_module
from overlay_core.proto.crypto import Session, seal, static_key
from overlay_core.proto.effects import Effect, Endpoint, Send, tcp, udp
from overlay_core.proto.ethernet import mac_for
from overlay_core.proto.identity import Identity
from overlay_core.proto.node import Node
from overlay_core.proto.report import PathReport, ReportEntry
from overlay_core.proto.wire import Cipher, Verb
from overlay_core.testing.fakenet import _seeded
from tests.fuzz.harness import ContractError, Registry, datagrams, hexed, mutated
from tests.fuzz.seeds import UNKNOWN_SENDER, fuzz_world
from tests.fuzz.targets_codec import CONTROLLER, FRAMES, signed_bodies

registry = Registry()
WORLD = fuzz_world()
NAMES = sorted(WORLD.pristine)
STRANGER = Identity.generate(_seeded(4242))  # nobody in the world knows it
IDENTITIES = {name: node.identity for name, node in WORLD.pristine.items()}
IDENTITIES["stranger"] = STRANGER
NWID = WORLD.nwid.to_bytes(8, "big")
SOURCES = [
    UNKNOWN_SENDER,
    udp("2001:db8::7", 9993),
    tcp("198.18.0.250", 50001),
    *WORLD.endpoints.values(),
]
PLAINTEXTS = [s.plaintext for s in WORLD.seeds if s.plaintext]
# A real member's report on the world's network, signed by it: past the signature check.
REPORT = PathReport(
    nwid=WORLD.nwid,
    member=IDENTITIES["a"].address,
    sequence=7,
    uptime_s=60,
    nat="unknown",
    tcp_fallback=False,
    truncated=False,
    version="fuzz",
    entries=(ReportEntry(IDENTITIES["b"].address, "DIRECT", "v4", "", 1.5),),
).sign(IDENTITIES["a"])

# Per input, at most this many new entries in a table (see check_bounds).
GROWTH_PER_INPUT = {
    "whois": 1,
    "whois_queue": 1,
    "echoes": 24,  # a packet can start probes of a burst of paths
    "paths": 17,  # a PUSH_DIRECT_PATHS carries 16 endpoints; plus where it came from
    "punch": 17 * 3,  # learned, awaiting an answer, and ICMP seen: one each per path
    "rendezvous": 2,  # an introduction to an unknown peer, a PUNCH sent
    "relay": 2,
    "learned_macs": 1,
    "coms": 1,
    "report_buckets": 1,  # one per sender of a PATH_REPORT (reporting.py)
}


def state_sizes(node: Node) -> dict[str, int]:
    """The sizes of every table a packet can make a node grow. Reads node internals on
    purpose, in this one place; keep it in step with the node."""
    peers = list(node.peers.values())
    networks = list(node.memberships.networks.values())
    return {
        "peers": len(peers),
        "whois": len(node.outbound.whois),
        "whois_queue": sum(len(q) for q in node.outbound.whois_queue.values()),
        "echoes": len(node.outbound.echoes),
        "paths": max((len(p.paths) for p in peers), default=0),
        "punch": max(
            (
                max(len(p.punch.learned), len(p.punch.pending), len(p.punch.opened))
                + len(p.punch.awaiting)
                + len(p.punch.icmp)
                for p in peers
            ),
            default=0,
        ),
        "rendezvous": len(node.punching._rendezvous_pending) + len(node.punching._punch_sent),
        "sessions": max((len(p.sessions) for p in peers), default=0),
        "queue": max((len(p.queue) for p in peers), default=0),
        "reassembly_packets": node.inbound._reassembler.pending_packets,
        "reassembly_bytes": node.inbound._reassembler.pending_bytes,
        "relay": len(node.relay._buckets) + len(node.relay._introduced),
        "learned_macs": sum(len(n.switch) for n in networks if n.switch is not None),
        "coms": sum(len(n.coms) for n in networks),
        "report_buckets": len(node.reporter._buckets),
    }


def check_bounds(node: Node, before: dict[str, int], inputs: int) -> None:
    after = state_sizes(node)
    problems = []
    if after["peers"] > before["peers"] + len(IDENTITIES):
        problems.append("peers")
    if after["sessions"] > peer_module.MAX_SESSIONS or after["queue"] > peer_module.MAX_QUEUED:
        problems.append("sessions/queue")
    if (
        after["reassembly_packets"] > fragment.MAX_PENDING_PACKETS
        or after["reassembly_bytes"] > fragment.MAX_PENDING_BYTES
    ):
        problems.append("reassembly")
    # Absolute caps, whatever the number of inputs: a long hostile run can't pass them.
    if after["paths"] > peer_module.MAX_PATHS:
        problems.append("paths")
    cap = punch.MAX_LEARNED_ENDPOINTS + wire.MAX_PUSHED_ENDPOINTS + 2 * peer_module.MAX_PATHS
    if after["punch"] > cap:
        problems.append("punch")
    if after["whois"] > outbound.MAX_WHOIS_PENDING or after["echoes"] > outbound.MAX_ECHOES_PENDING:
        problems.append("whois/echoes")
    if after["rendezvous"] > punch.MAX_RENDEZVOUS_PENDING * 2:
        problems.append("rendezvous")
    for table, growth in GROWTH_PER_INPUT.items():
        if after[table] > before[table] + growth * inputs:
            problems.append(table)
    if problems:
        detail = ", ".join(f"{k}: {before[k]} -> {after[k]}" for k in problems if k in after)
        raise ContractError(f"state grew past its bounds after {inputs} inputs: {detail}")


def fresh(name: str) -> Node:
    node = WORLD.fresh_node(name)
    node.outbound.random = _seeded(99)  # the copy shares the world's source otherwise
    return node


def feed(node: Node, datagram: bytes, source: Endpoint, now: float) -> None:
    effects = node.receive_datagram(datagram, source, now)
    if not isinstance(effects, list) or not all(isinstance(e, Effect) for e in effects):
        raise ContractError(f"receive_datagram returned {effects!r}")


# --------------------------------------------------------------------------- raw datagrams


@dataclass(frozen=True, slots=True)
class Datagram:
    receiver: str
    data: bytes
    source: Endpoint
    dt: float

    def describe(self) -> str:
        return f"to {self.receiver} from {self.source} at +{self.dt}s: {self.data.hex()}"


datagram_inputs = st.builds(
    Datagram,
    st.sampled_from(NAMES),
    datagrams([s.data for s in WORLD.seeds]),
    st.sampled_from(SOURCES),
    st.floats(0, 10),
)


@registry.add("node.datagram", datagram_inputs)
def fuzz_datagram(value: Datagram) -> None:
    """Mutated real datagrams and random bytes: never an exception, state bounded."""
    node = fresh(value.receiver)
    before = state_sizes(node)
    feed(node, value.data, value.source, WORLD.now + value.dt)
    check_bounds(node, before, 1)


# --------------------------------------------------------------------------- sealed packets

endpoints = st.builds(
    udp,
    st.sampled_from(["198.18.9.9", "10.0.0.1", "2001:db8::1", "0.0.0.0", "255.255.255.255"]),
    st.integers(0, 65535),
)
addresses = st.one_of(
    st.sampled_from(sorted(i.address for i in IDENTITIES.values())),
    st.integers(0, (1 << 40) - 1),
)
u64 = st.integers(0, (1 << 64) - 1)
nwids = st.one_of(st.just(NWID), st.binary(min_size=8, max_size=8))


def _hello(draw: st.DrawFn) -> bytes:
    ephemeral = draw(
        st.one_of(
            st.binary(min_size=32, max_size=32),
            st.sampled_from([bytes(32), b"\x01" + bytes(31), b"\xff" * 32]),  # low order
        )
    )
    hello = wire.Hello(
        draw(st.integers(0, 255)),
        draw(st.text(max_size=12)),
        draw(st.booleans()),
        draw(st.one_of(st.just(int(WORLD.now * 1000) + 5000), u64)),
        ephemeral,
        draw(st.one_of(st.none(), endpoints)),
        draw(st.integers(0, 255)),  # features: any suite bits, unknown ones too
    )
    return hello.pack() + draw(st.binary(max_size=20))


@st.composite
def verb_plaintexts(draw: st.DrawFn, verbs: st.SearchStrategy[Verb] | None = None) -> bytes:
    """A verb byte and a payload shaped like that verb's, with junk in every field."""
    verb = draw(verbs if verbs is not None else st.sampled_from(list(Verb)))
    tail = draw(st.binary(max_size=8))
    if verb is Verb.HELLO:
        body = _hello(draw)
    elif verb is Verb.OK:
        in_re = draw(st.sampled_from([Verb.HELLO, Verb.ECHO, Verb.WHOIS, Verb.FRAME, 0, 255]))
        payload = draw(
            st.one_of(
                st.builds(lambda: _hello(draw)),
                st.builds(
                    lambda i, t, o: wire.Echo(i, t, o).pack(),
                    st.integers(0, (1 << 32) - 1),
                    u64,
                    st.one_of(st.none(), endpoints),
                ),
                st.sampled_from([i.public_key for i in IDENTITIES.values()]),
                st.binary(max_size=40),
            )
        )
        body = bytes([in_re]) + draw(u64).to_bytes(8, "big") + payload
    elif verb is Verb.ERROR:
        code = draw(st.one_of(st.sampled_from(list(wire.ErrorCode)), st.integers(0, 255)))
        in_re = draw(st.sampled_from(list(Verb)))
        detail = draw(st.one_of(nwids, addresses.map(wire.addr_bytes), st.binary(max_size=9)))
        body = wire.pack_error(in_re, draw(u64), code, detail)  # type: ignore[arg-type]
    elif verb in (Verb.WHOIS, Verb.RENDEZVOUS):
        body = wire.addr_bytes(draw(addresses))
        if verb is Verb.RENDEZVOUS:
            body += wire.pack_endpoint(draw(st.one_of(st.none(), endpoints)))
    elif verb is Verb.PUNCH:
        listed = draw(st.lists(st.one_of(st.none(), endpoints), max_size=8))
        count = draw(st.one_of(st.just(len(listed)), st.integers(0, 255)))
        body = bytes([count]) + b"".join(wire.pack_endpoint(e) for e in listed)
    elif verb is Verb.ECHO:
        body = wire.Echo(draw(st.integers(0, (1 << 32) - 1)), draw(u64)).pack()
    elif verb is Verb.PUSH_DIRECT_PATHS:
        listed = draw(st.lists(st.one_of(st.none(), endpoints), max_size=40))
        if draw(st.booleans()):  # more than a node ever pushes (16), all distinct
            many = draw(st.integers(17, 255))
            listed = [udp(f"198.18.{9 + i // 250}.{i % 250 + 1}", 1024 + i) for i in range(many)]
        count = draw(st.one_of(st.just(len(listed)), st.integers(0, 255)))
        body = bytes([count]) + b"".join(wire.pack_endpoint(e) for e in listed)
    elif verb is Verb.FRAME:
        body = draw(nwids) + draw(mutated(FRAMES))
    elif verb is Verb.CREDENTIALS:
        body = draw(nwids) + draw(mutated([WORLD.com]))
    elif verb is Verb.NETWORK_CONFIG_REQUEST:
        body = draw(nwids) + wire.pack_text(draw(st.text(max_size=10)))
    elif verb is Verb.NETWORK_CONFIG:
        nwid = draw(nwids)
        signed = draw(
            st.one_of(
                st.just(WORLD.signed_config),
                mutated([WORLD.signed_config]),
                signed_bodies.map(lambda b: b + CONTROLLER.sign(b"ztui-netconf-v1\x00" + b)),
            )
        )
        body = nwid + signed
    elif verb is Verb.PATH_REPORT:
        body = draw(st.one_of(st.just(REPORT), mutated([REPORT]), st.binary(max_size=64)))
    else:
        body = draw(st.binary(max_size=64))
    return bytes([verb]) + body + tail


plaintexts = st.one_of(
    verb_plaintexts(),
    verb_plaintexts(),
    mutated(PLAINTEXTS),
    st.tuples(st.integers(0, 255), st.binary(max_size=64)).map(lambda t: bytes([t[0]]) + t[1]),
)


@dataclass(frozen=True, slots=True)
class Sealed:
    receiver: str
    sender: str  # a world host or "stranger"
    cipher: Cipher
    plaintext: bytes
    hops: int
    packet_id: int | None  # None: the next one the receiver's replay window accepts
    session: int  # which of the receiver's sessions with the sender (SESSION cipher)
    key_id: int | None  # None: that session's own
    fragment_at: int | None  # split the sealed packet into datagrams of this size
    reverse: bool  # deliver the pieces last first
    source: Endpoint | None  # None: the sender's real endpoint
    dt: float
    # The receiver first HELLOs its root over TCP (Node.tcp_up); an OK(HELLO) plaintext
    # then answers that HELLO's packet id, from the root's TCP endpoint.
    answers_hello: bool = False

    def describe(self) -> str:
        return (
            f"{self.cipher.name} {self.sender} -> {self.receiver} hops={self.hops} "
            f"id={self.packet_id} session={self.session} key_id={self.key_id} "
            f"fragment_at={self.fragment_at} reverse={self.reverse} source={self.source} "
            f"dt={self.dt} answers_hello={self.answers_hello} plaintext={self.plaintext.hex()}"
        )


def seal_for(node: Node, value: Sealed) -> list[bytes]:
    """The datagrams the sender would have sent: sealed with the key the receiver will
    open them with (its session's rx key and suite, or the static key), then fragmented."""
    sender = IDENTITIES[value.sender]
    packet_id = value.packet_id
    key_id = 0
    mirror: Session | None = None  # the sender's side of the receiver's session
    if value.cipher is Cipher.SESSION and sender.address in node.peers:
        sessions = sorted(node.peers[sender.address].sessions.values(), key=lambda s: s.created)
        session = sessions[value.session % len(sessions)] if sessions else None
        key = session.rx_key if session is not None else bytes(32)
        key_id = session.key_id if session is not None else 0
        if session is not None:
            mirror = Session(key_id, session.rx_key, session.tx_key, 0.0, True, True, session.suite)
        if packet_id is None:
            # (A sequence may already have used the last id, 2^64 - 1: then a replay.)
            highest = session.replay.highest if session is not None else 0
            packet_id = min(highest + 1, (1 << 64) - 1)
    else:
        key = static_key(node.identity, sender.public())
    if value.key_id is not None:
        key_id = value.key_id
    header = wire.Header(
        packet_id if packet_id is not None else 7,
        node.address,
        sender.address,
        value.hops,
        False,
        value.cipher,
        key_id,
    ).pack()
    clear = sender.public_key if value.cipher is Cipher.HELLO else b""
    ad = wire.associated_data(header) + clear
    if mirror is not None and value.cipher is Cipher.SESSION:
        packet = header + mirror.seal(header, ad, value.plaintext)
    else:
        packet = header + clear + seal(key, header, ad, value.plaintext)
    if value.fragment_at is None:
        return [packet]
    try:
        pieces = wire.fragment_packet(packet, value.fragment_at)
    except ValueError:
        return [packet]
    return pieces[::-1] if value.reverse else pieces


KNOWN = {
    name: sorted(n for n, i in IDENTITIES.items() if i.address in node.peers)
    for name, node in WORLD.pristine.items()
}


@st.composite
def sealed_inputs(draw: st.DrawFn) -> Sealed:
    """Mostly what a receiver would open: a sender it knows, the verbs its cipher carries
    (HELLO under HELLO, OK and ERROR under the static key); sometimes anything."""
    if not draw(st.integers(0, 5)):  # a leaf's HELLO to its root, answered
        ok = bytes([Verb.OK, Verb.HELLO]) + bytes(8) + _hello(draw)
        receiver = draw(st.sampled_from([n for n in NAMES if n != "root"]))
        return Sealed(
            receiver, "root", Cipher.STATIC, ok, 0, None, 0, None, None, False, None, 0.0, True
        )
    receiver = draw(st.sampled_from(NAMES))
    sender = draw(
        st.sampled_from(KNOWN[receiver])
        if draw(st.integers(0, 4))
        else st.sampled_from([*NAMES, "stranger"])
    )
    cipher = draw(st.sampled_from([Cipher.SESSION] * 3 + [Cipher.STATIC, Cipher.HELLO]))
    if cipher is Cipher.HELLO and draw(st.integers(0, 4)):
        plaintext = bytes([Verb.HELLO]) + _hello(draw)
    elif cipher is Cipher.STATIC and draw(st.integers(0, 4)):
        plaintext = draw(verb_plaintexts(st.sampled_from([Verb.OK, Verb.ERROR])))
    else:
        plaintext = draw(plaintexts)
    if plaintext[:1] == bytes([Verb.FRAME]) and len(plaintext) >= 21 and draw(st.booleans()):
        # From the sender's own MAC on the network: what a member's switch lets in.
        src = mac_for(WORLD.nwid, IDENTITIES[sender].address)
        plaintext = plaintext[:15] + src + plaintext[21:]
    return Sealed(
        receiver,
        sender,
        cipher,
        plaintext,
        draw(st.one_of(st.just(0), st.integers(0, 7))),
        draw(st.one_of(st.none(), st.none(), u64)),
        draw(st.integers(0, 3)),
        draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, 255))),
        draw(st.one_of(st.none(), st.none(), st.integers(60, 700))),
        draw(st.booleans()),
        draw(st.one_of(st.none(), st.none(), st.sampled_from(SOURCES))),
        draw(st.floats(0, 10)),
    )


ROOT_TCP = tcp(WORLD.endpoints["root"].host, WORLD.endpoints["root"].port)


def deliver_sealed(node: Node, value: Sealed, now: float) -> None:
    source = value.source or WORLD.endpoints.get(value.sender, UNKNOWN_SENDER)
    if value.answers_hello:
        hellos = [e.data for e in node.tcp_up(ROOT_TCP, now) if isinstance(e, Send)]
        ok_hello = bytes([Verb.OK, Verb.HELLO])
        if hellos and value.plaintext[:2] == ok_hello:
            answer = ok_hello + hellos[0][:8] + value.plaintext[10:]
            value = dataclasses.replace(value, plaintext=answer)
        source = value.source or ROOT_TCP
    for datagram in seal_for(node, value):
        feed(node, datagram, source, now)


@registry.add("node.sealed", sealed_inputs())
def fuzz_sealed(value: Sealed) -> None:
    """Authenticated packets with fuzzed verbs and payloads: never an exception, state
    bounded."""
    node = fresh(value.receiver)
    before = state_sizes(node)
    deliver_sealed(node, value, WORLD.now + value.dt)
    check_bounds(node, before, 1)


# --------------------------------------------------------------------------- sequences


@dataclass(frozen=True, slots=True)
class Tick:
    dt: float

    def describe(self) -> str:
        return f"tick +{self.dt}s"


@registry.add(
    "node.sequence",
    st.tuples(
        st.sampled_from(NAMES),
        st.lists(
            st.one_of(datagram_inputs, sealed_inputs(), st.builds(Tick, st.floats(0, 40))),
            max_size=25,
        ),
    ),
    describe=lambda v: f"to {v[0]}: " + "; ".join(hexed(step) for step in v[1]),
)
def fuzz_sequence(value: tuple[str, list[Any]]) -> None:
    """Many inputs into one node (each step's own receiver is ignored), with ticks in
    between: never an exception, and every table within its bounds after each step."""
    name, steps = value
    node = fresh(name)
    before = state_sizes(node)
    now = WORLD.now
    for count, step in enumerate(steps, 1):
        now += step.dt
        if isinstance(step, Tick):
            effects = node.tick(now)
            if not all(isinstance(e, Effect) for e in effects):
                raise ContractError("tick returned something that is not an effect")
        elif isinstance(step, Datagram):
            feed(node, step.data, step.source, now)
        else:
            deliver_sealed(node, step, now)
        check_bounds(node, before, count)


# --------------------------------------------------------------------------- batches


@st.composite
def live_frames(draw: st.DrawFn) -> Sealed:
    """What the short way takes: a FRAME or FRAME_PARTIAL under a live session of a known
    sender, from its own MAC, whole, relayed or not; the frame itself fuzzed."""
    receiver = draw(st.sampled_from(NAMES))
    sender = draw(st.sampled_from(KNOWN[receiver]))
    verb = draw(st.sampled_from([Verb.FRAME, Verb.FRAME_PARTIAL]))
    src = mac_for(WORLD.nwid, IDENTITIES[sender].address)
    frame = draw(st.binary(min_size=6, max_size=6)) + src + draw(st.binary(max_size=1500))
    nwid = draw(st.one_of(st.just(NWID), st.just(NWID), st.binary(min_size=8, max_size=8)))
    plaintext = bytes([verb]) + nwid + frame
    hops = draw(st.sampled_from([0, 0, 0, 1, 2]))
    return Sealed(
        receiver, sender, Cipher.SESSION, plaintext, hops, None, 0, None, None, False, None, 0.0
    )


@registry.add(
    "node.batch",
    st.tuples(
        st.sampled_from(NAMES),
        st.sampled_from(SOURCES),
        st.lists(
            st.one_of(live_frames(), live_frames(), sealed_inputs(), datagram_inputs),
            min_size=1,
            max_size=40,
        ),
    ),
    describe=lambda v: f"to {v[0]} from {v[1]}: " + "; ".join(hexed(s) for s in v[2]),
)
def fuzz_batch(value: tuple[str, Endpoint, list[Any]]) -> None:
    """A GRO read's worth of datagrams in one Node.receive_datagrams call (the batched
    receive loop, datapath.receive_batch): authenticated FRAMEs on live sessions take its
    short way, everything else the general one, mixed in any order and from one source.
    Never an exception, every effect an Effect, state bounded."""
    name, source, steps = value
    node = fresh(name)
    before = state_sizes(node)
    datagrams: list[bytes] = []
    for step in steps:
        if isinstance(step, Datagram):
            datagrams.append(step.data)
        else:
            datagrams += seal_for(node, dataclasses.replace(step, receiver=name))
    effects = node.receive_datagrams(datagrams, source, WORLD.now + 1.0)
    if not isinstance(effects, list) or not all(isinstance(e, Effect) for e in effects):
        raise ContractError(f"receive_datagrams returned {effects!r}")
    check_bounds(node, before, len(datagrams))


# --------------------------------------------------------------------------- membership


@registry.add(
    "membership.payloads",
    st.tuples(
        st.sampled_from(["a", "b", "ctl"]),
        st.sampled_from(NAMES),
        st.sampled_from(["frame", "credentials", "config_request", "config", "error"]),
        st.one_of(verb_plaintexts().map(lambda p: p[1:]), mutated(PLAINTEXTS)),
        st.sampled_from(list(wire.ErrorCode)),
    ),
)
def fuzz_membership(value: tuple[str, str, str, bytes, wire.ErrorCode]) -> None:
    """Memberships' verb handlers on any payload from any peer: a list of effects, or
    MalformedError (a short read, which the node counts and drops)."""
    receiver, sender, handler, payload, code = value
    node = fresh(receiver)
    peer = node.peers.get(IDENTITIES[sender].address)
    if peer is None:
        return
    reader = wire.Reader(payload)
    memberships = node.memberships
    try:
        if handler == "error":
            effects = memberships.on_error(peer, code, reader, WORLD.now)
        else:
            effects = getattr(memberships, f"on_{handler}")(peer, reader, WORLD.now)
    except wire.MalformedError:
        return
    if not all(isinstance(e, Effect) for e in effects):
        raise ContractError(f"on_{handler} returned something that is not an effect")
