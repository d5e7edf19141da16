"""Text layouts of `ztui networks`, `net list`, `members`, `member`, `join` and `set`, and
the parsing of `ztui set KEY=VALUE`, from fixed API JSON."""

from __future__ import annotations

import pytest

from console import render
from console.commands.common import UsageError
from console.commands.networks import parse_setting
from overlay_core.api.schema import ControllerNetworkJson, MemberJson, NetworkJson

NWID = "8056c2e21c000001"


def network(state: str, **over: object) -> NetworkJson:
    data: NetworkJson = {
        "nwid": NWID,
        "name": "home" if state == "OK" else None,
        "state": state,
        "port_error": None,
        "private": True if state == "OK" else None,
        "device": "ztqblmfyq4aaaac",
        "mac": "32:a1:b2:c3:d4:e5",
        "mtu": 2800,
        "mss": "auto",
        "addresses": ["10.147.17.5/24"] if state == "OK" else [],
        "routes": [],
        "members": 3,
        "bridge": False,
        "revision": 4,
        "config_age_s": 1.0,
        "settings": {
            "allow_managed": True,
            "allow_global": False,
            "allow_default": False,
            "mtu": None,
            "mss": None,
        },
        "counters": {},
        "rule_drops": [],
        "port_counters": None,
    }
    data.update(over)  # type: ignore[typeddict-item]
    return data


def member(address: str, state: str, **over: object) -> MemberJson:
    data: MemberJson = {
        "nwid": NWID,
        "address": address,
        "state": state,
        "authorized": state == "authorized",
        "name": "",
        "active_bridge": False,
        "ips": ["10.147.17.9"] if state == "authorized" else [],
        "created": 900.0,
        "last_seen": 995.0,
        "last_authorized": None,
        "last_deauthorized": None,
        "version": "0.1.0",
        "physical_address": None,
    }
    data.update(over)  # type: ignore[typeddict-item]
    return data


def test_networks_table_has_listnetworks_columns_and_an_approval_hint() -> None:
    """An OK network is one row; a denied one gets an indented line naming the exact
    `ztui approve` command the admin should run, with this node's address in it."""
    lines = render.networks_lines(
        [network("OK"), network("ACCESS_DENIED", nwid="8056c2e21c000002")], "3a0b1c2d3e"
    )
    assert lines[0].split() == list(render.NETWORK_COLUMNS)
    assert lines[1].split() == [
        NWID,
        "home",
        "OK",
        "PRIVATE",
        "ztqblmfyq4aaaac",
        "32:a1:b2:c3:d4:e5",
        "2800",
        "auto",
        "10.147.17.5/24",
    ]
    assert lines[2].split()[:4] == ["8056c2e21c000002", "-", "ACCESS_DENIED", "-"]
    assert lines[3] == (
        "    ACCESS_DENIED — waiting for approval: ask the network's admin to run "
        "`ztui approve 8056c2e21c000002 3a0b1c2d3e`"
    )
    assert lines[0].index("STATUS") == lines[1].index("OK") == lines[2].index("ACCESS_DENIED")


def test_other_states_explain_themselves() -> None:
    """PORT_ERROR carries the device's reason; NOT_FOUND and waiting name the controller."""
    port = network("PORT_ERROR", port_error="creating a TAP device needs root")
    assert render.network_hint(port, None) == "PORT_ERROR — creating a TAP device needs root"
    assert "controller 8056c2e21c has no network" in str(
        render.network_hint(network("NOT_FOUND"), None)
    )
    waiting = str(render.network_hint(network("REQUESTING_CONFIGURATION"), None))
    assert "`ztui ping 8056c2e21c`" in waiting
    assert render.network_hint(network("OK"), None) is None
    assert render.networks_lines([], None) == [
        "(no networks joined; join one with `ztui join NWID`)"
    ]


def test_join_and_set_lines() -> None:
    """`join` says where the network stands; `set` shows values in force, overrides marked."""
    assert render.joined_lines(network("OK"), None) == [
        f"joined {NWID} (home): OK on ztqblmfyq4aaaac, 10.147.17.5/24"
    ]
    local = network("OK", mtu=1400)
    local["settings"]["mtu"] = 1400
    assert render.settings_line(local) == (
        f"{NWID}: mtu 1400 (local), mss auto, allow-managed yes, allow-global no, "
        "allow-default no, report yes"
    )


def test_members_put_pending_first_and_marked() -> None:
    """Pending members lead the table with a mark, and a footer says how to approve."""
    lines = render.members_lines(
        NWID,
        [
            member("1111111111", "authorized", name="nas"),
            member("2222222222", "deauthorized"),
            member("3333333333", "pending", last_seen=None),
        ],
        now=1000.0,
    )
    assert lines[0].split() == [c for c in render.MEMBER_COLUMNS if c]
    assert lines[1].split() == ["*", "3333333333", "PENDING", "-", "-", "no", "never", "0.1.0"]
    assert lines[2].split()[:5] == ["1111111111", "AUTHORIZED", "nas", "10.147.17.9", "no"]
    assert lines[2].split()[5] == "5.0s"
    assert lines[3].split()[:2] == ["2222222222", "DEAUTHORIZED"]
    assert lines[4] == f"* waiting for approval (1): `ztui approve {NWID} 3333333333`"
    assert render.members_lines(NWID, [], 0.0) == [
        f"(no members yet: nobody has asked to join {NWID})"
    ]


def test_controller_networks_and_member_detail() -> None:
    """`net list` counts members by state; `member` shows one in full."""
    hosted: ControllerNetworkJson = {
        "nwid": NWID,
        "number": 1,
        "name": "home",
        "private": False,
        "mtu": 2800,
        "mss": "auto",
        "broadcast": True,
        "multicast_limit": 32,
        "pools": ["10.147.17.0/24"],
        "routes": [],
        "rules": [],
        "presets": [],
        "revision": 3,
        "created": 0.0,
        "updated": 0.0,
        "members": {"authorized": 2, "pending": 1, "deauthorized": 0},
    }
    lines = render.controller_networks_lines([hosted])
    assert lines[1].split() == [NWID, "home", "PUBLIC", "2", "1", "2800", "auto", "10.147.17.0/24"]
    detail = render.member_lines(member("1111111111", "authorized", name="nas"), 1000.0)
    assert detail[0] == f"member 1111111111 of {NWID}"
    assert "  ips      10.147.17.9" in detail


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("mtu=1400", ("mtu", 1400)),
        ("mtu=default", ("mtu", None)),
        ("mss=auto", ("mss", "auto")),
        ("mss=1360", ("mss", 1360)),
        ("MSS=fixed:1360", ("mss", 1360)),
        ("allow-managed=no", ("allow_managed", False)),
        ("allow_global=yes", ("allow_global", True)),
        ("allow-default=on", ("allow_default", True)),
        ("report=no", ("report", False)),
        ("report=yes", ("report", True)),
    ],
)
def test_set_parses_key_value(text: str, parsed: tuple[str, object]) -> None:
    """KEY=VALUE becomes the API's field and a JSON value; ranges are the daemon's job."""
    assert parse_setting(text) == parsed


@pytest.mark.parametrize(
    "text", ["mtu", "=1", "mtu=", "mtu=big", "mss=huge", "x=1", "allow-global=2", "report=maybe"]
)
def test_set_refuses_malformed_settings(text: str) -> None:
    """A setting that cannot mean anything is a usage error before any request."""
    with pytest.raises(UsageError):
        parse_setting(text)
