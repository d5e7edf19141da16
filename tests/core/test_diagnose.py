"""The words the console shows for a relayed peer, from what the node has seen."""

from __future__ import annotations

from overlay_core.proto.diagnose import NAT_CONE, NAT_SYMMETRIC, infer_nat, relay_reason
from overlay_core.proto.effects import tcp, udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.path import DEAD_AFTER_S, DEAD_PROBE_S, PATH_ALIVE_S, PATH_PROBE_S
from overlay_core.proto.peer import Learned, LearnedFrom, Peer
from overlay_core.proto.states import Link


def relayed_peer(identity: Identity, learned: dict[tuple[str, int], Learned]) -> Peer:
    peer = Peer(identity.public())
    for (host, port), how in learned.items():
        peer.punch.learned[udp(host, port)] = how
    peer.punch.attempts = 12
    peer.punch.first_attempt = 0.0
    return peer


def test_two_roots_seeing_the_peer_at_two_ports_name_its_symmetric_nat(alice: Identity) -> None:
    peer = relayed_peer(
        alice,
        {
            ("198.18.1.15", 8727): Learned.from_root(0x98AC380892),
            ("198.18.1.15", 51058): Learned.from_root(0xC233EC3964),
            ("10.4.0.2", 9993): Learned(LearnedFrom.PEER_LIST),
        },
    )
    reason = relay_reason(peer, "RELAY", NAT_CONE, tunneled=False, now=20.0)
    assert reason is not None
    assert "12 direct attempts" in reason.summary and "got no answer" in reason.summary
    assert "the peer's NAT is symmetric" in reason.summary  # what was seen, said first
    symmetric = [d for d in reason.details if "the peer's NAT is symmetric" in d]
    assert symmetric and "198.18.1.15" in symmetric[0] and "8727, 51058" in symmetric[0]


def test_one_root_says_nothing_about_the_peers_nat(alice: Identity) -> None:
    peer = relayed_peer(alice, {("198.18.1.15", 8727): Learned.from_root(0x98AC380892)})
    reason = relay_reason(peer, "RELAY", NAT_CONE, tunneled=False, now=20.0)
    assert reason is not None and not any("peer's NAT" in d for d in reason.details)


def test_no_reason_for_direct_peers_and_roots(alice: Identity) -> None:
    peer = relayed_peer(alice, {})
    assert relay_reason(peer, "DIRECT", NAT_CONE, tunneled=False, now=1.0) is None
    peer.is_root = True
    assert relay_reason(peer, "RELAY", NAT_CONE, tunneled=False, now=1.0) is None


def test_nat_inference_from_what_reporters_saw() -> None:
    local = [udp("10.1.0.2", 9993)]
    assert infer_nat({}, local) == "unknown"
    assert infer_nat({1: udp("10.1.0.2", 9993)}, local).startswith("none")
    assert (
        infer_nat({1: udp("198.18.1.12", 40000), 2: udp("198.18.1.12", 40000)}, local) == NAT_CONE
    )
    assert (
        infer_nat({1: udp("198.18.1.12", 40000), 2: udp("198.18.1.12", 40001)}, local)
        == NAT_SYMMETRIC
    )
    assert infer_nat({1: udp("198.18.1.12", 40000)}, local).startswith("unknown (one reporter")
    assert infer_nat({1: tcp("198.18.1.12", 40000)}, local) == "unknown"


def test_a_lost_direct_path_is_said_to_be_probed_as_often_as_it_is(alice: Identity) -> None:
    """Every PATH_PROBE_S while the path was heard from within DEAD_AFTER_S, then every
    DEAD_PROBE_S (path.needs_probe), and the reason says which."""
    endpoint = udp("198.18.1.15", 8727)
    peer = relayed_peer(alice, {("198.18.1.15", 8727): Learned.from_root(0x98AC380892)})
    path = peer.path(endpoint, 0.0)
    path.last_receive = 100.0
    peer.punch.last_direct_lost, peer.punch.last_direct_endpoint = 100.0 + PATH_ALIVE_S, endpoint

    def summary(now: float) -> str:
        reason = relay_reason(peer, Link.RELAY, NAT_CONE, tunneled=False, now=now)
        assert reason is not None and reason.code == "direct_lost"
        return reason.summary

    assert f"probing it again every {PATH_PROBE_S:.0f} s" in summary(110.0)
    assert f"probing it again every {DEAD_PROBE_S:.0f} s" in summary(100.0 + DEAD_AFTER_S)
