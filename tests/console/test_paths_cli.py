"""`ztui paths NWID`: the controller's view of every pair, as text a person reads."""

from __future__ import annotations

from typing import Any

from console.commands.paths import member_label, paths_lines
from overlay_core.api.schema import PathMemberJson, PathPairJson, PathsJson


def _member(address: str, name: str, **changes: Any) -> PathMemberJson:
    member: PathMemberJson = {
        "address": address,
        "name": name,
        "ips": ["10.147.17.22"],
        "online": True,
        "report_age_s": 4.0,
        "version": "0.9",
        "uptime_s": 100,
        "nat": "endpoint-independent",
        "tcp_fallback": False,
        "direct": 1,
        "not_direct": 0,
        "flag": None,
        "flag_why": None,
    }
    member.update(changes)  # type: ignore[typeddict-item]
    return member


def _pair(a: str, b: str, link: str, why: str | None = None) -> PathPairJson:
    side = {"link": link, "latency_ms": 12.5, "kind": "v4", "reason": None}
    return {
        "a": a,
        "b": b,
        "a_sees": dict(side),  # type: ignore[typeddict-item]
        "b_sees": None,
        "link": link,
        "reason": "symmetric_nat" if why else None,
        "because_of": b if why else None,
        "why": why,
    }


def _view(members: list[PathMemberJson], pairs: list[PathPairJson], total: int) -> PathsJson:
    return {
        "nwid": "8056c2e21c000001",
        "name": "home",
        "online_within_s": 75.0,
        "members": members,
        "pairs": pairs,
        "pairs_total": total,
        "links": {"DIRECT": 1, "RELAY": total - 1},
    }


def test_members_pairs_flags_and_why_are_all_on_the_page() -> None:
    members = [
        _member("aaaaaaaaaa", "nas"),
        _member(
            "bbbbbbbbbb",
            "phone",
            flag="symmetric_nat",
            flag_why="phone: not DIRECT with 2 of 2: is behind a symmetric NAT",
        ),
        _member("cccccccccc", "", ips=[], online=False, report_age_s=None),
    ]
    pairs = [_pair("aaaaaaaaaa", "bbbbbbbbbb", "RELAY", "phone is behind a symmetric NAT")]
    text = "\n".join(paths_lines(_view(members, pairs, 3)))
    assert text.startswith("home (8056c2e21c000001): 3 members, 2 online; pairs: 1 DIRECT, 2 RELAY")
    assert "nas (10.147.17.22)" in text
    assert "! phone: not DIRECT with 2 of 2" in text
    assert "cccccccccc" in text and "no report yet" in text
    assert "pairs, worst first (1 of 3)" in text
    assert "RELAY   nas <-> phone  nas: RELAY 12.5 ms via v4 | phone: no report" in text
    assert "why: phone is behind a symmetric NAT" in text


def test_a_network_without_members_says_so() -> None:
    assert paths_lines(_view([], [], 0))[-1] == "  (no authorized members)"


def test_a_member_label_is_its_name_and_first_ip_or_its_address() -> None:
    assert member_label(_member("aaaaaaaaaa", "nas")) == "nas (10.147.17.22)"
    assert member_label(_member("aaaaaaaaaa", "", ips=[])) == "aaaaaaaaaa"


def test_nothing_a_member_or_admin_typed_reaches_the_terminal_raw() -> None:
    """Names, versions (a member's report), the why and flag texts: an ESC is shown as ?."""
    members = [
        _member("aaaaaaaaaa", "nas\x1b[2J", version="1\x1b]0;x\x07", flag_why="x\x1b[31m"),
        _member("bbbbbbbbbb", "pho\nne"),
    ]
    pairs = [_pair("aaaaaaaaaa", "bbbbbbbbbb", "RELAY", "why\x1b[1m")]
    text = "\n".join(paths_lines(_view(members, pairs, 1)))
    assert "\x1b" not in text and "\x07" not in text and "pho\nne" not in text
    assert "nas?[2J" in text and "v1?]0;x?" in text
