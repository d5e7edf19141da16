"""The words the console shows for a relayed peer, from what the node has seen."""

from __future__ import annotations

from overlay_core.proto.diagnose import NAT_CONE, NAT_SYMMETRIC, infer_nat, relay_reason
from overlay_core.proto.effects import tcp, udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.peer import Peer


def relayed_peer(identity: Identity, learned: dict[tuple[str, int], str]) -> Peer:
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
            ("198.18.1.15", 8727): "root 98ac380892",
            ("198.18.1.15", 51058): "root c233ec3964",
            ("10.4.0.2", 9993): "the peer's own list",
        },
    )
    reason = relay_reason(peer, "RELAY", NAT_CONE, tunneled=False, now=20.0)
    assert reason is not None
    assert "12 direct attempts" in reason.summary and "got no answer" in reason.summary
    assert "the peer's NAT is symmetric" in reason.summary  # what was seen, said first
    symmetric = [d for d in reason.details if "the peer's NAT is symmetric" in d]
    assert symmetric and "198.18.1.15" in symmetric[0] and "8727, 51058" in symmetric[0]


def test_one_root_says_nothing_about_the_peers_nat(alice: Identity) -> None:
    peer = relayed_peer(alice, {("198.18.1.15", 8727): "root 98ac380892"})
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
