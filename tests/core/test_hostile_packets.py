"""Hostile packets (issue 8): what anyone who can reach a node's port can make it do.

Each test is one attack found by probing the running daemons, replayed here against the
sans-IO node: a packet id that made a root allocate gigabytes, HELLOs that burn argon2id,
replays that plant paths and turn nodes into amplifiers, forced rekeys, a node made to
talk to itself, and lookups that flood the event log. The attacker's addresses are in
TEST-NET-3 (203.0.113.0/24) and exist only inside FakeNet.
"""

from __future__ import annotations

import os

import pytest
from nacl import bindings

from overlay_core.proto import wire
from overlay_core.proto.admission import (
    NEW_IDENTITY_BURST,
    NEW_IDENTITY_RATE,
    PER_SOURCE_BURST,
    REHANDSHAKE_MIN_S,
    UNSOLICITED_WHOIS_BURST,
    HelloAdmission,
)
from overlay_core.proto.crypto import REPLAY_WINDOW, ReplayWindow, seal, static_key
from overlay_core.proto.effects import Endpoint, Event, Send, udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.wire import Cipher, Verb
from overlay_core.testing.fakenet import FakeNet, Host

ATTACKERS = [udp(f"203.0.113.{i}", 40000 + i) for i in range(1, 11)]


@pytest.fixture
def net() -> FakeNet:
    """A root and two leaves on public addresses, already DIRECT with each other."""
    net = FakeNet()
    net.add_host("root", root=True)
    a, b = net.add_host("a"), net.add_host("b")
    net.run(2)
    for _ in range(4):
        net.call(a, a.node.send_user_data(b.address, b"hi", net.now))
        net.run(0.5)
    assert a.node.peers[b.address].best_path(net.now) is not None
    return net


def inject(net: FakeNet, host: Host, data: bytes, source: Endpoint) -> list[Send]:
    effects = host.node.receive_datagram(data, source, net.now)
    net.call(host, effects)
    return [e for e in effects if isinstance(e, Send)]


def sealed(
    sender: Host, receiver: Host, verb: Verb, payload: bytes, packet_id: int | None = None
) -> bytes:
    """A fresh packet under the sender's current session with the receiver, as the sender
    would seal it (what an on-path attacker captures before it arrives)."""
    session = sender.node.peers[receiver.address].tx_session
    assert session is not None
    counter = packet_id if packet_id is not None else session.next_packet_id()
    header = wire.Header(
        counter, receiver.address, sender.address, 0, False, Cipher.SESSION, session.key_id
    )
    head = header.pack()
    return head + session.seal(head, wire.associated_data(head), bytes([verb]) + payload)


def bytes_to(net: FakeNet, endpoints: list[Endpoint]) -> int:
    assert net.wiretap is not None
    hosts = {e.host for e in endpoints}
    return sum(len(data) for _, dest, data in net.wiretap if dest.host in hosts)


def stranger_hello(root: Host, source_address: int | None = None) -> bytes:
    """A well-formed HELLO, sealed correctly, from a fresh random key pair: what a flood of
    'new nodes' looks like. The address is random, so the proof of work fails at the end."""
    seed = os.urandom(32)
    public, _ = bindings.crypto_sign_seed_keypair(seed)
    address = source_address or int.from_bytes(os.urandom(5), "big") & ((1 << 39) - 1) | 1
    claimed = Identity(address, public, seed)
    header = wire.Header(
        int.from_bytes(os.urandom(8), "big"), root.address, address, 0, False, Cipher.HELLO, 0
    )
    head = header.pack()
    hello = wire.Hello(wire.PROTOCOL_VERSION, "0.1.0", False, 1, os.urandom(32), None).pack()
    key = static_key(claimed, root.node.identity.public())
    ad = wire.associated_data(head) + public
    return head + public + seal(key, head, ad, bytes([Verb.HELLO]) + hello + bytes(16))


# --------------------------------------------------------------------------- item 1


def test_replay_window_memory_stays_bounded_whatever_the_counter_jump() -> None:
    window = ReplayWindow()
    window.accept(1)
    window.accept(2**33)
    assert window.bitmap.bit_length() <= REPLAY_WINDOW
    window.accept(2**63)
    assert window.bitmap.bit_length() <= REPLAY_WINDOW
    assert not window.check(2**63) and not window.check(2**33)
    assert window.check(2**63 - 1)  # inside the new window, unseen
    window.accept(2**63 - 1)
    assert not window.check(2**63 - 1)


def test_a_session_packet_with_a_huge_packet_id_costs_the_receiver_nothing(net: FakeNet) -> None:
    """One ECHO with packet id 2^33 took a root from 140 MB to 2.33 GB; now the window is
    reset, the packet is answered, and the counters around it still work."""
    a, root = net.hosts["a"], net.hosts["root"]
    packet = sealed(a, root, Verb.ECHO, wire.echo_request(7, 0), packet_id=2**33)
    inject(net, root, packet, a.endpoint)
    session = root.node.peers[a.address].sessions
    assert all(s.replay.bitmap.bit_length() <= REPLAY_WINDOW for s in session.values())
    assert root.node.drops["replay"] == 0
    inject(net, root, packet, a.endpoint)
    assert root.node.drops["replay"] == 1


# --------------------------------------------------------------------------- item 2


def test_a_flood_of_stranger_hellos_runs_a_bounded_number_of_identity_checks(
    net: FakeNet,
) -> None:
    """~3 ms of argon2id per HELLO let 1,000 HELLOs/s take a root to 95% CPU. Within one
    second, at most the burst of the new-identity budget is checked; the rest get a cookie
    reply, never larger than the HELLO."""
    root = net.hosts["root"]
    checks = root.node.counters["identity_checks"]
    for i in range(300):
        hello = stranger_hello(root)
        replies = inject(net, root, hello, ATTACKERS[i % len(ATTACKERS)])
        assert all(len(r.data) <= len(hello) for r in replies)
    done = root.node.counters["identity_checks"] - checks
    assert done <= NEW_IDENTITY_BURST + NEW_IDENTITY_RATE
    assert root.node.counters["cookies_sent"] >= 300 - NEW_IDENTITY_BURST - NEW_IDENTITY_RATE
    assert root.node.drops["bad_identity"] == done  # random addresses fail the proof of work


def test_a_known_peer_handshakes_again_without_an_identity_check(net: FakeNet) -> None:
    a, root = net.hosts["a"], net.hosts["root"]
    checks = root.node.counters["identity_checks"]
    peer = a.node.peers[root.address]
    net.call(a, a.node.outbound.hello(peer, net.now))
    net.run(1)
    assert root.node.counters["identity_checks"] == checks
    assert a.node.peers[root.address].handshake is None  # it completed


def test_under_load_a_new_node_joins_through_a_cookie(net: FakeNet) -> None:
    """While strangers flood the root, a real new node gets a COOKIE, sends its HELLO again
    with it, and is admitted: the flood delays it by one round trip, no more."""
    root = net.hosts["root"]
    for i in range(int(NEW_IDENTITY_BURST) + 10):
        inject(net, root, stranger_hello(root), ATTACKERS[i % len(ATTACKERS)])
    late = net.add_host("late")
    net.run(0.2)
    assert late.node.counters["cookies_received"] >= 1
    assert root.node.counters["cookies_sent"] >= 1
    assert late.node.peers[root.address].tx_session is not None
    assert late.node.snapshot(net.now).online


def test_cookies_prove_the_address_and_budget_each_source() -> None:
    source, other = udp("203.0.113.1", 1), udp("203.0.113.2", 1)
    key = bytes(32)
    admission = HelloAdmission(b"s" * 32, now=0.0)
    one_source = sum(admission.admit(source, key, None, 0.0).admit for _ in range(50))
    assert one_source == PER_SOURCE_BURST  # one address can't spend the whole budget
    spoofed = [udp(f"198.51.100.{i % 250}", i) for i in range(500)]
    admitted = sum(admission.admit(s, key, None, 0.0).admit for s in spoofed)
    assert admitted + one_source <= NEW_IDENTITY_BURST  # many addresses can't either
    verdict = admission.admit(source, key, None, 0.0)
    assert not verdict.admit and verdict.cookie is not None
    assert admission.admit(other, key, verdict.cookie, 0.0).reason == "under_load"  # not its
    admission2 = HelloAdmission(b"t" * 32, now=0.0)
    for _ in range(int(NEW_IDENTITY_BURST)):
        admission2.admit(udp(f"198.18.0.{_ % 200}", 1), key, None, 0.0)
    cookie = admission2.cookie(source, key)
    proven = [admission2.admit(source, key, cookie, 0.0).admit for _ in range(50)]
    assert proven[0] and not all(proven)  # a proven source still has its own budget
    assert not admission2.rotate(lambda n: b"u" * n, now=100.0)  # not due yet
    assert admission2.rotate(lambda n: b"u" * n, now=200.0)
    assert admission2.valid_cookie(source, key, cookie)  # the previous secret still counts
    admission2.rotate(lambda n: b"v" * n, now=400.0)
    assert not admission2.valid_cookie(source, key, cookie)


# --------------------------------------------------------------------------- item 3


def test_replays_from_chosen_addresses_plant_no_path_and_get_no_answer(net: FakeNet) -> None:
    """10 replays from 10 addresses made a leaf send 180 datagrams (71 KB) in 30 s."""
    a, b = net.hosts["a"], net.hosts["b"]
    net.wiretap = []
    net.call(a, a.node.outbound.hello(a.node.peers[b.address], net.now))  # a HELLO and its OK
    net.call(a, a.node.send_user_data(b.address, b"data", net.now))
    net.run(1)
    captured = [d for s, dest, d in net.wiretap if wire.dest_of(d) in (a.address, b.address)]
    assert captured
    net.wiretap = []
    for packet in captured:
        for attacker in ATTACKERS:
            target = b if wire.dest_of(packet) == b.address else a
            inject(net, target, packet, attacker)
    net.run(30)
    assert bytes_to(net, ATTACKERS) == 0
    for host in (a, b):
        for peer in host.node.peers.values():
            assert not set(peer.paths) & set(ATTACKERS)


def test_a_fresh_packet_from_a_new_address_is_challenged_not_trusted(net: FakeNet) -> None:
    """An on-path attacker delivers a captured, never-seen packet from its own address
    (with the hop count cleared if it was relayed). The receiver learns an unconfirmed
    candidate: no traffic goes there, the root does not hand it out, and what is sent to
    it never exceeds what came from it."""
    a, b, root = net.hosts["a"], net.hosts["b"], net.hosts["root"]
    attacker = ATTACKERS[0]
    net.wiretap = []
    sent = 0
    for i in range(5):
        packet = sealed(a, root, Verb.ECHO, wire.echo_request(100 + i, 0))
        inject(net, root, packet, attacker)
        sent += len(packet)
        packet = sealed(a, b, Verb.USER_DATA, b"x" * 1000)
        inject(net, b, packet, attacker)
        sent += len(packet)
        net.run(1)
    net.run(30)
    assert bytes_to(net, [attacker]) <= sent
    for host, peer_address in ((root, a.address), (b, a.address)):
        path = host.node.peers[peer_address].paths.get(attacker)
        assert path is None or not path.confirmed
        best = host.node.peers[peer_address].best_path(net.now)
        assert best is not None and best.endpoint != attacker
    assert root.node.drops["relay_unknown_source"] == 0


def test_a_root_introduces_only_confirmed_paths(net: FakeNet) -> None:
    """A root handed 3,327 attacker-planted paths to a peer through RENDEZVOUS. Now an
    address the root learned from a raced packet is not introduced: when a and b must go
    through the root, b is told where a really is, and nothing else."""
    a, b, root = net.hosts["a"], net.hosts["b"], net.hosts["root"]
    for attacker in ATTACKERS:
        inject(net, root, sealed(a, root, Verb.ECHO, wire.echo_request(1, 0)), attacker)
    net.block(a, b)
    for _ in range(20):
        net.call(a, a.node.send_user_data(b.address, b"via the root", net.now))
        net.run(0.5)
    learned = b.node.peers[a.address].punch.learned
    assert learned, "the root introduced a to b"
    assert not set(learned) & set(ATTACKERS)
    assert all(e.host == a.endpoint.host for e in learned)


def test_answers_to_an_unconfirmed_address_never_exceed_what_it_sent(net: FakeNet) -> None:
    """ECHOs are padded so that even the largest OK(ECHO) is no bigger than the ECHO."""
    a, b = net.hosts["a"], net.hosts["b"]
    attacker = udp("2001:db8::66", 40000)  # an IPv6 source: the largest observed endpoint
    net.wiretap = []
    received = 0
    for i in range(20):
        packet = sealed(a, b, Verb.ECHO, wire.echo_request(i, 0))
        received += len(packet)
        inject(net, b, packet, attacker)
        net.run(0.5)
    assert 0 < bytes_to(net, [attacker]) <= received


# --------------------------------------------------------------------------- item 4


def test_garbage_with_unknown_key_ids_starts_few_handshakes(net: FakeNet) -> None:
    """1,000 packets claiming a's address with unknown key ids caused 984 handshakes in
    10 s; now at most one per REHANDSHAKE_MIN_S."""
    a, root = net.hosts["a"], net.hosts["root"]
    net.wiretap = []
    for i in range(1000):
        garbage = sealed(a, root, Verb.ECHO, b"", packet_id=10**9 + i)
        garbage = garbage[:19] + bytes([(garbage[19] + 1) % 256]) + garbage[20:]
        inject(net, root, garbage, ATTACKERS[i % len(ATTACKERS)])
        if i % 100 == 99:
            net.run(1)
    hellos = [
        d
        for s, dest, d in net.wiretap
        if wire.source_of(d) == root.address
        and wire.dest_of(d) == a.address
        and wire.parse_header(d).cipher is Cipher.HELLO
    ]
    assert len(hellos) <= 10 / REHANDSHAKE_MIN_S + 1
    assert root.node.drops["unknown_session"] == 1000


# --------------------------------------------------------------------------- item 6


def test_a_packet_claiming_our_own_address_is_dropped_and_counted(net: FakeNet) -> None:
    """One forged packet made a node WHOIS itself and handshake with itself via the root."""
    b = net.hosts["b"]
    forged = wire.Header(1, b.address, b.address, 0, False, Cipher.SESSION, 9).pack()
    net.wiretap = []
    assert inject(net, b, forged + bytes(40), ATTACKERS[0]) == []
    net.run(5)
    assert b.node.drops["from_self"] == 1
    assert b.address not in b.node.peers
    # No WHOIS for ourself (nor anything else) went out because of it.
    assert b.node.drops["whois_self"] == 0 and b.node.drops["unknown_peer"] == 0


# --------------------------------------------------------------------------- item 8


def test_packets_from_unknown_sources_cost_few_lookups_and_no_events(net: FakeNet) -> None:
    """Every unknown-source packet used to cause a WHOIS, and the root's 'not found' an
    event and a log line. Lookups a stranger causes are budgeted, and their failure is
    counted, not announced."""
    b, root = net.hosts["b"], net.hosts["root"]
    events = len(b.events)
    whois_before = root.node.counters["rx_packets"]
    for i in range(2000):
        source = 0x1000000000 + i
        packet = wire.Header(i, b.address, source, 0, False, Cipher.SESSION, 1).pack()
        inject(net, b, packet + bytes(40), ATTACKERS[i % len(ATTACKERS)])
    net.run(1)
    assert b.node.drops["unknown_peer"] == 2000
    assert b.node.drops["whois_limited"] >= 2000 - 2 * UNSOLICITED_WHOIS_BURST
    assert root.node.counters["rx_packets"] - whois_before < 200
    assert [e for e in b.events[events:] if isinstance(e, Event) and e.kind == "whois"] == []
    assert b.node.counters["whois_not_found"] >= 1


def test_a_whois_we_wanted_still_reports_its_failure(net: FakeNet) -> None:
    b = net.hosts["b"]
    net.call(b, b.node.send_user_data(0x1000000001, b"to nobody", net.now))
    net.run(1)
    assert [e for e in b.events if e.kind == "whois"]


def test_a_peer_pushing_endpoints_gets_bounded_state_and_a_few_small_probes(
    net: FakeNet,
) -> None:
    """PUSH_DIRECT_PATHS from an authenticated but hostile peer, naming 1,600 addresses of
    someone else: the receiver keeps at most MAX_PATHS paths and a bounded list of what it
    learned, and sends each named address only a few small probes, never MTU probes."""
    from overlay_core.proto.path import PUNCH_PACKET_MAX
    from overlay_core.proto.peer import MAX_PATHS
    from overlay_core.proto.punch import MAX_LEARNED_ENDPOINTS, PUNCH_PROBES, PUSH_ACCEPT_MIN_S

    a, b = net.hosts["a"], net.hosts["b"]
    net.wiretap = []
    victims = [udp(f"203.0.113.{i % 250 + 1}", 1000 + i) for i in range(1600)]
    for chunk in range(0, len(victims), 16):
        pushed = wire.pack_endpoints(victims[chunk : chunk + 16])
        inject(net, b, sealed(a, b, Verb.PUSH_DIRECT_PATHS, pushed), a.endpoint)
        net.run(0.2)
    net.run(10)
    peer = b.node.peers[a.address]
    assert len(peer.paths) <= MAX_PATHS
    assert len(peer.punch.learned) <= MAX_LEARNED_ENDPOINTS + 16
    to_victims = [d for _, dest, d in net.wiretap if dest in set(victims)]
    assert all(len(d) <= PUNCH_PACKET_MAX for d in to_victims)
    # 100 pushes in 20 s: only one per PUSH_ACCEPT_MIN_S is acted on, 16 addresses each.
    acted_on = 20 / PUSH_ACCEPT_MIN_S + 1
    assert len({dest for _, dest, _ in net.wiretap if dest in set(victims)}) <= 16 * acted_on
    # Each round: a low-TTL opener, then PUNCH_PROBES probes.
    assert len(to_victims) <= (PUNCH_PROBES + 1) * 16 * acted_on
    assert b.node.drops["push_rate_limited"] >= 90
    assert peer.best_path(net.now) is not None  # a's real path survived the churn
