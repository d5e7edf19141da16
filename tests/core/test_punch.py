"""The ordered punch (proto/punch.py) and the hop trace behind its opener (proto/hops.py).

Pure: FakeNet's NATs and clock. The Linux router that keeps a clashing entry is modelled
in tests/core/test_punch_linux.py; here, the pieces: what the trace concludes from the
ICMP it gets, who sends what in which order, interop with nodes from before PUNCH, and
what the relay reason says for each kind of failure.
"""

from __future__ import annotations

import pytest

from overlay_core.proto import wire
from overlay_core.proto.diagnose import relay_reason
from overlay_core.proto.effects import Effect, Send, udp
from overlay_core.proto.hops import DEFAULT_OPENER_TTL, TRACE_STEP_S, HopTrace, is_inside_address
from overlay_core.proto.node import NodeConfig
from overlay_core.proto.peer import Learned, Peer
from overlay_core.testing.fakenet import FakeNet, Host, NatKind

PR = NatKind.PORT_RESTRICTED


# --------------------------------------------------------------------------- the trace


def trace(answers: dict[int, str | None], reached: int | None) -> HopTrace:
    """Run a trace where hop n answers `answers[n]` (None: silent) and the root is
    `reached` hops away."""
    t, now = HopTrace(), 100.0
    t.start(now)
    while not t.done:
        ttl = t.next_ttl(now)
        if ttl is not None:
            if reached is not None and ttl >= reached:
                t.answered(ttl, now + 0.01)
            elif answers.get(ttl) is not None:
                t.time_exceeded(answers[ttl], now + 0.01)
        now += 0.1 if ttl is None else 0.01
    return t


def test_one_home_nat_then_the_isp_gives_ttl_2() -> None:
    t = trace({1: "10.1.0.1", 2: "198.18.7.1"}, reached=3)
    assert t.nat_hops == ["10.1.0.1"] and t.opener_ttl == 2 and t.reached == 3


def test_a_home_nat_behind_a_carrier_grade_nat_gives_ttl_3() -> None:
    """The 100.64.0.0/10 hop is the CGNAT: the opener must pass it too."""
    t = trace({1: "192.168.1.1", 2: "100.64.0.1", 3: "198.18.7.1"}, reached=5)
    assert t.nat_hops == ["192.168.1.1", "100.64.0.1"] and t.opener_ttl == 3


def test_silent_routers_leave_the_default() -> None:
    t = trace({}, reached=None)
    assert t.done and t.opener_ttl == DEFAULT_OPENER_TTL
    assert set(t.offenders) == set(range(1, 9)) and not any(t.offenders.values())


def test_no_nat_and_a_root_next_door_keep_the_default() -> None:
    """A public node (its first hop answers from a public address) has nothing to pass."""
    assert trace({1: "198.18.0.1"}, reached=2).opener_ttl == DEFAULT_OPENER_TTL
    assert trace({}, reached=1).opener_ttl == DEFAULT_OPENER_TTL


def test_a_silent_hop_waits_one_step_then_goes_on() -> None:
    t = HopTrace()
    t.start(0.0)
    assert t.next_ttl(0.0) == 1
    assert t.next_ttl(TRACE_STEP_S / 2) is None  # still waiting for hop 1
    assert t.next_ttl(TRACE_STEP_S) == 2 and t.offenders == {1: None}
    t.time_exceeded("10.0.0.1", TRACE_STEP_S + 0.01)
    assert t.next_ttl(TRACE_STEP_S + 0.02) == 3  # answered: no need to wait


def test_stray_icmp_after_the_trace_changes_nothing() -> None:
    t = trace({1: "10.1.0.1"}, reached=2)
    t.time_exceeded("10.9.9.9", 1e6)
    assert t.offenders == {1: "10.1.0.1"} and t.opener_ttl == 2


@pytest.mark.parametrize(
    ("host", "inside"),
    [
        ("10.1.0.1", True),
        ("172.20.0.1", True),
        ("192.168.178.1", True),
        ("100.64.0.1", True),
        ("100.127.255.254", True),
        ("169.254.1.1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("198.18.1.10", False),  # the rig's "internet": ipaddress calls it private
        ("8.8.8.8", False),
        ("100.128.0.1", False),
        ("2001:db8::1", False),
        ("not an address", False),
    ],
)
def test_inside_addresses_are_the_ones_behind_nats(host: str, inside: bool) -> None:
    assert is_inside_address(host) is inside


# --------------------------------------------------------------------------- the nodes


def world(config_a: NodeConfig | None = None, config_b: NodeConfig | None = None) -> FakeNet:
    net = FakeNet()
    net.add_host("root", root=True)
    net.add_host("a", nat=net.add_nat("nat-a", PR), config=config_a)
    net.add_host("b", nat=net.add_nat("nat-b", PR), config=config_b)
    net.run(2)
    return net


def link(net: FakeNet, host: Host, other: Host) -> str:
    wanted = f"{other.address:010x}"
    return next(p for p in host.node.snapshot(net.now).peers if p.address == wanted).link


def test_the_root_introduces_both_sides_when_one_asks_for_the_other() -> None:
    """RENDEZVOUS goes out with the WHOIS answer, before any traffic is relayed."""
    net = world()
    a, b, root = net.hosts["a"], net.hosts["b"], net.hosts["root"]
    net.call(a, a.node.send_user_data(b.address, b"hi", net.now))
    net.run(0.5)
    assert root.node.counters["rendezvous_on_whois"] == 1
    assert link(net, a, b) == "DIRECT" and link(net, b, a) == "DIRECT"
    assert [d.payload for d in b.delivered] == [b"hi"]


def test_both_sides_open_then_say_so_then_probe() -> None:
    """Each side sends its opener with the traced TTL and a PUNCH through the root; every
    full-TTL probe towards the peer's NAT leaves after the peer's opener did."""
    net = world()
    a, b = net.hosts["a"], net.hosts["b"]
    sent: list[tuple[float, str, Send]] = []
    apply = net._apply

    def spy(host: Host, effects: list[Effect]) -> None:
        sent.extend((net.now, host.name, e) for e in effects if isinstance(e, Send))
        apply(host, effects)

    net._apply = spy  # type: ignore[method-assign]
    net.call(a, a.node.send_user_data(b.address, b"hi", net.now))
    net.run(1.0)
    assert link(net, a, b) == "DIRECT"
    public = {h.name: h.nat.public_ip for h in (a, b) if h.nat is not None}
    toward = {"a": public["b"], "b": public["a"]}

    def times(name: str, low_ttl: bool) -> list[float]:
        return [
            t
            for t, n, e in sent
            if n == name and (e.ttl is not None) is low_ttl and e.endpoint.host == toward[name]
        ]

    openers = {name: min(times(name, True)) for name in ("a", "b")}
    fulls = {name: times(name, False) for name in ("a", "b")}
    for me, peer in (("a", "b"), ("b", "a")):
        assert fulls[me], f"{me} never probed directly"
        assert min(fulls[me]) > openers[peer], f"{me} probed before {peer} opened"
    ttls = {e.ttl for _, _, e in sent if e.ttl is not None and e.endpoint.host in public.values()}
    assert ttls == {a.node.hops.opener_ttl} | {b.node.hops.opener_ttl}
    assert a.node.counters["punch_sent"] >= 1 and b.node.counters["punch_sent"] >= 1


def test_a_node_from_before_punch_still_goes_direct_with_a_new_one() -> None:
    """A peer whose HELLO lacks FEATURE_PUNCH is probed right after the opener, as before,
    and never sent a PUNCH (it would count it as an unknown verb)."""
    net = world(config_b=NodeConfig(punch_sync=False))
    a, b = net.hosts["a"], net.hosts["b"]
    for x, y in ((a, b), (b, a)):
        net.call(x, x.node.send_user_data(y.address, b"hi", net.now))
        net.run(3)
    assert link(net, a, b) == "DIRECT" and link(net, b, a) == "DIRECT"
    assert not a.node.peers[b.address].features & wire.FEATURE_PUNCH
    assert a.node.counters["punch_sent"] == 0
    assert b.node.drops["unknown_verb"] == 0


def test_a_punch_that_never_comes_stops_the_wait() -> None:
    """PUNCH lost (here: never sent): after PUNCH_WAIT_S the probes go anyway."""
    net = world()
    a, b = net.hosts["a"], net.hosts["b"]
    b.node.punching._send_punch = lambda peer, now: []  # type: ignore[method-assign]
    net.call(a, a.node.send_user_data(b.address, b"hi", net.now))
    net.run(5)
    assert a.node.counters["punch_wait_expired"] >= 1
    assert link(net, a, b) == "DIRECT"


# --------------------------------------------------------------------------- the reasons


def relayed_peer(icmp: dict | None = None) -> Peer:  # type: ignore[type-arg]
    from overlay_core.proto.identity import Identity

    peer = Peer(Identity.generate())
    peer.punch.learned = {udp("198.18.1.13", 21001): Learned.from_root(0x1234567890)}
    peer.punch.attempts = 7
    peer.punch.icmp = icmp or {}
    return peer


def test_the_reason_names_a_router_that_answered_our_probes_itself() -> None:
    endpoint = udp("198.18.1.13", 21001)
    peer = relayed_peer({endpoint: ("port_unreachable", "198.18.1.13", 5)})
    reason = relay_reason(peer, "RELAY", "cone", False, 0.0)
    assert reason is not None
    assert "answered them itself" in reason.summary and "198.18.1.13" in reason.summary
    assert "forward UDP port 21001" in reason.summary


def test_the_reason_for_silence_says_a_firewall_drops_them() -> None:
    reason = relay_reason(relayed_peer(), "RELAY", "cone", False, 0.0)
    assert reason is not None and "drew no error" in reason.summary


def test_the_reason_for_unreachable_addresses() -> None:
    endpoint = udp("198.18.1.13", 21001)
    peer = relayed_peer({endpoint: ("unreachable", "198.18.0.1", 2)})
    reason = relay_reason(peer, "RELAY", "cone", False, 0.0)
    assert reason is not None and "cannot be reached from here" in reason.summary


def test_icmp_about_a_live_path_or_a_stranger_is_ignored() -> None:
    net = world()
    a, b = net.hosts["a"], net.hosts["b"]
    net.call(a, a.node.send_user_data(b.address, b"hi", net.now))
    net.run(1)
    live = a.node.peers[b.address].best_path(net.now)
    assert live is not None
    a.node.icmp_error("port_unreachable", live.endpoint, "198.18.9.9", net.now)
    a.node.icmp_error("port_unreachable", udp("203.0.113.9", 1), None, net.now)
    assert not a.node.peers[b.address].punch.icmp
    assert a.node.counters["punch_icmp_port_unreachable"] == 0
