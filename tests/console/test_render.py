"""Text layouts of `ztui info`, `peers` and `ping`, from fixed API JSON."""

from __future__ import annotations

from console import render
from overlay_core.api.schema import EchoJson, LatencyJson, PeerJson, StatusJson

NO_LATENCY: LatencyJson = {"last_ms": None, "smoothed_ms": None, "jitter_ms": None}


def peer(address: str, link: str, role: str = "LEAF", **over: object) -> PeerJson:
    data: PeerJson = {
        "address": address,
        "role": role,
        "version": "0.1.0",
        "link": link,
        "preferred_path": "10.1.0.2:9993" if link == "DIRECT" else None,
        "latency": {"last_ms": 4.2, "smoothed_ms": 4.1, "jitter_ms": 0.3},
        "last_send_ago_s": 0.4,
        "last_receive_ago_s": 65.0,
        "session_age_s": 100.0,
        "rekeys": 0,
        "paths": [],
        "relay_reason": None,
        "counters": {},
    }
    data.update(over)  # type: ignore[typeddict-item]
    return data


STATUS: StatusJson = {
    "api_version": 1,
    "address": "3a0b1c2d3e",
    "version": "0.1.0",
    "state": "ONLINE",
    "online": True,
    "tunneled": False,
    "role": "LEAF",
    "roots_reachable": 1,
    "roots_total": 2,
    "external_endpoints": ["198.51.100.7:41234"],
    "nat": "port-restricted cone",
    "uptime_s": 3725.0,
    "peer_count": 3,
    "counters": {},
    "drops": {"replay": 2, "bad_mac": 5},
}


def test_info_leads_like_zerotier_cli() -> None:
    """First line is `info ADDRESS VERSION STATE`; then roots, endpoints, NAT, drops."""
    lines = render.info_lines(STATUS)
    assert lines[0] == "info 3a0b1c2d3e 0.1.0 ONLINE"
    text = "\n".join(lines)
    assert "1/2 reachable" in text
    assert "198.51.100.7:41234" in text
    assert "port-restricted cone" in text
    assert "1h 02m" in text
    assert "7 (bad_mac 5, replay 2)" in text


def test_peers_table_has_a_reason_line_for_relayed_peers() -> None:
    """Columns line up under the zerotier-cli headers; a RELAY peer gets an indented line
    saying why it is relayed, a DIRECT peer does not."""
    reason = {
        "summary": "both sides behind symmetric NAT",
        "endpoints_learned": [],
        "punch_attempts": 6,
        "punch_replies": 0,
        "local_nat": "symmetric",
        "details": [],
    }
    lines = render.peers_lines(
        [
            peer("8056c2e21c", "DIRECT", role="ROOT"),
            peer("3a0b1c2d3e", "RELAY", relay_reason=reason, latency=NO_LATENCY),
        ]
    )
    assert lines[0].split() == list(render.PEER_COLUMNS)
    assert lines[1].split() == [
        "8056c2e21c",
        "0.1.0",
        "ROOT",
        "4.1ms",
        "DIRECT",
        "0.4s",
        "65s",
        "10.1.0.2:9993",
        "-",  # NAME: a root has none (tests/console/test_names.py has peers that do)
    ]
    assert lines[2].split()[:5] == ["3a0b1c2d3e", "0.1.0", "LEAF", "-", "RELAY"]
    assert lines[3] == "    relay because: both sides behind symmetric NAT"
    assert lines[0].index("LINK") == lines[1].index("DIRECT") == lines[2].index("RELAY")


def test_a_symmetric_nat_verdict_is_shown_under_the_reason() -> None:
    """What the user can act on (their NAT) is printed; other details stay in --json."""
    symmetric = "this node's NAT is symmetric (its public port changes per destination)"
    reason = {
        "summary": "6 direct attempts to 198.18.1.13:21001 got 0 answers",
        "endpoints_learned": ["198.18.1.13:21001"],
        "punch_attempts": 6,
        "punch_replies": 0,
        "local_nat": "symmetric",
        "details": [symmetric, "learned 198.18.1.13:21001 from root 8056c2e21c"],
    }
    lines = render.peers_lines([peer("3a0b1c2d3e", "RELAY", relay_reason=reason)])
    assert lines[-2] == "    relay because: 6 direct attempts to 198.18.1.13:21001 got 0 answers"
    assert lines[-1] == f"    note: {symmetric}"


def test_pong_line_names_the_path_and_relay() -> None:
    """Each reply says how it came back: through which root, or DIRECT."""
    relayed: EchoJson = {
        "peer": "3a0b1c2d3e",
        "rtt_ms": 4.06,
        "endpoint": "198.18.0.1:9993",
        "link": "RELAY",
        "relay": "8056c2e21c",
    }
    assert render.pong_line(relayed) == (
        "pong from 3a0b1c2d3e: 4.1 ms via 198.18.0.1:9993 (RELAY through root 8056c2e21c)"
    )
    direct: EchoJson = {**relayed, "link": "DIRECT", "relay": None, "endpoint": "10.1.0.2:9993"}
    assert render.pong_line(direct) == "pong from 3a0b1c2d3e: 4.1 ms via 10.1.0.2:9993 (DIRECT)"


def test_ping_summary_like_ping() -> None:
    """sent/received/loss, and min/avg/max only when something answered."""
    assert render.ping_summary("3a0b1c2d3e", 4, [1.0, 2.0, 6.0]) == [
        "--- 3a0b1c2d3e ping statistics ---",
        "4 sent, 3 received, 25% loss, rtt min/avg/max 1.0/3.0/6.0 ms",
    ]
    assert render.ping_summary("3a0b1c2d3e", 2, [])[1] == "2 sent, 0 received, 100% loss"


def test_ago_and_duration_are_compact() -> None:
    """Times fit the narrow LASTTX/LASTRX columns."""
    assert [render.ago(v) for v in (None, 0.42, 45, 300, 10000)] == ["-", "0.4s", "45s", "5m", "3h"]
    assert render.duration(59) == "59s" and render.duration(90061) == "1d 1h"
