"""`ztui` network and controller commands as an admin and a member run them, against live
daemons with MemoryTaps, and against none for usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overlay_core.io.tap_contract import TapError
from overlay_core.lab.loopback import LoopbackOverlay
from tests.cli_run import ztui, ztui_sync

from .netstory import POOL, story, unix_client, wait_state


@pytest.mark.parametrize(
    "args",
    [
        ("join", "badid"),
        ("leave", "0123"),
        ("set", "zz23456789abcdef", "mtu=1400"),
        ("members", "1234567890abcdef0"),
        ("approve", "nothex", "0123456789"),
    ],
)
def test_mistyped_network_id_is_a_usage_error(short_tmp: Path, args: tuple[str, ...]) -> None:
    """A mistyped network id: one line naming the rule, exit 2, and no daemon needed
    (there is none here; reaching for it would say 'not running' and exit 1)."""
    result = ztui_sync("--home", str(short_tmp), *args)
    assert result.returncode == 2, result
    assert result.stderr == "ztui: a network id is 16 hex digits\n"
    assert result.stdout == ""


def test_mistyped_member_address_and_setting_are_usage_errors(short_tmp: Path) -> None:
    """A bad member address or KEY=VALUE is caught before contacting the daemon, too."""
    nwid = "0123456789000001"
    result = ztui_sync("--home", str(short_tmp), "approve", nwid, "xyz")
    assert result.returncode == 2 and "10 hex digits" in result.stderr
    for setting, words in (
        ("colour=blue", "unknown setting 'colour'"),
        ("mtu=big", "mtu: 'big' is not a number"),
        ("allow-global=maybe", "allow-global: 'maybe': use yes or no"),
        ("mtu", "settings are KEY=VALUE"),
    ):
        result = ztui_sync("--home", str(short_tmp), "set", nwid, setting)
        assert result.returncode == 2, (setting, result)
        assert len(result.stderr.splitlines()) == 1 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("set", "0123456789000001", "mtu=\u00b2"),
        ("set", "0123456789000001", "mtu=\u0661\u0664\u0660\u0660"),  # Arabic-Indic 1400
        ("set", "0123456789000001", "mss=\u00b2"),
        ("set", "0123456789000001", "mss=fixed:\u00b2"),
        ("set", "0123456789000001", "mtu=" + "9" * 5000),
        ("net", "create", "lab", "--mss", "fixed:\u00b2"),
        ("net", "create", "lab", "--mtu", "\u0661\u0664\u0660\u0660"),
        ("net", "create", "lab", "--multicast-limit", "\u0661"),
        ("ping", "-c", "\u0661", "0123456789"),
    ],
)
def test_non_ascii_digits_are_usage_errors_not_tracebacks(
    short_tmp: Path, args: tuple[str, ...]
) -> None:
    """str.isdigit() says yes to "²" and "١٤٠٠": a number typed with them is a usage error
    (exit 2, a line on stderr) before any daemon is contacted, never a ValueError traceback
    and never read as 1400."""
    result = ztui_sync("--home", str(short_tmp), *args)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and result.stderr.strip(), result.stderr
    assert result.stdout == ""


async def test_create_join_approve_from_the_command_line(tap_overlay: LoopbackOverlay) -> None:
    """The whole story with ztui alone: the admin creates a network (stdout is just its id),
    a member joins and is told to ask for approval, `ztui networks` repeats how, the admin
    sees it pending in `ztui members --json`, approves it, and the member is OK."""
    await tap_overlay.add_root()
    ctl = await tap_overlay.add_leaf("ctl")
    member = await tap_overlay.add_leaf("member")
    await tap_overlay.wait_online()
    ctl_home, member_home = str(ctl.home.path), str(member.home.path)
    me = member.identity.address_text

    code, out, err = await ztui("--home", ctl_home, "net", "create", "home", "--pool", POOL)
    assert code == 0, err
    nwid = out.strip()
    assert out == nwid + "\n" and len(nwid) == 16 and nwid.startswith(ctl.identity.address_text)

    code, out, err = await ztui("--home", member_home, "join", nwid)
    assert code == 0, err
    hint = (
        "ACCESS_DENIED — waiting for approval: ask the network's admin to run "
        f"`ztui approve {nwid} {me}`"
    )
    assert out.splitlines() == [f"joined {nwid}: ACCESS_DENIED", f"    {hint}"]

    code, out, err = await ztui("--home", member_home, "networks")
    assert code == 0, err
    header, row, note = out.splitlines()
    assert header.split() == [
        "NWID",
        "NAME",
        "STATUS",
        "TYPE",
        "DEV",
        "MAC",
        "MTU",
        "MSS",
        "ADDRESSES",
    ]
    assert row.split()[:3] == [nwid, "-", "ACCESS_DENIED"]
    assert note == f"    {hint}"

    code, out, err = await ztui("--home", ctl_home, "members", nwid, "--json")
    assert code == 0, err
    [pending] = json.loads(out)
    assert pending["address"] == me and pending["state"] == "pending"
    code, out, err = await ztui("--home", ctl_home, "members", nwid)
    assert code == 0, err
    assert out.splitlines()[1].split()[:3] == ["*", me, "PENDING"]

    code, out, err = await ztui("--home", ctl_home, "approve", nwid, me)
    assert code == 0, err
    assert out.startswith(f"approved {me} on {nwid} with 10.147.17.")
    async with unix_client(member) as api:
        ok = await wait_state(api, nwid, "OK", 2)
    code, out, err = await ztui("--home", member_home, "networks")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[1].split() == [
        nwid,
        "home",
        "OK",
        "PRIVATE",
        ok["device"],
        ok["mac"],
        "2800",
        "auto",
        ok["addresses"][0],
    ]
    code, out, err = await ztui("--home", ctl_home, "net", "list", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["members"] == {"authorized": 1, "pending": 0, "deauthorized": 0}


async def test_set_and_member_report_daemon_validation_as_usage_errors(
    tap_overlay: LoopbackOverlay,
) -> None:
    """A value the daemon rejects (HTTP 400) is the caller's mistake: its one-line reason,
    naming field and rule, and exit 2. A good `set` prints the settings in force."""
    async with story(tap_overlay) as s:
        member_home, ctl_home = str(s.a.home.path), str(s.ctl.home.path)
        code, out, err = await ztui("--home", member_home, "set", s.nwid, "mtu=100")
        assert (code, err) == (2, "ztui: mtu: must be 1280-9000\n")
        code, out, err = await ztui(
            "--home", member_home, "set", s.nwid, "mtu=1400", "mss=1360", "allow-default=yes"
        )
        assert code == 0, err
        assert out == (
            f"{s.nwid}: mtu 1400 (local), mss fixed:1360 (local), allow-managed yes, "
            "allow-global no, allow-default yes, report yes\n"
        )
        address = s.a.identity.address_text
        code, out, err = await ztui(
            "--home", ctl_home, "member", s.nwid, address, "--ip", "10.147.17.300"
        )
        assert code == 2 and err.startswith("ztui: ips[0]: "), err
        code, out, err = await ztui(
            "--home", ctl_home, "member", s.nwid, address, "--name", "nas", "--bridge", "--json"
        )
        assert code == 0, err
        record = json.loads(out)
        assert record["name"] == "nas" and record["active_bridge"] is True


async def test_controller_commands_on_the_wrong_node_name_the_right_one(
    tap_overlay: LoopbackOverlay,
) -> None:
    """Approving on a node that does not host the network says which controller does."""
    async with story(tap_overlay) as s:
        code, _out, err = await ztui(
            "--home", str(s.a.home.path), "approve", s.nwid, s.b.identity.address_text
        )
        assert code == 1
        controller = s.ctl.identity.address_text
        assert err == (
            f"ztui: network {s.nwid} is hosted by controller {controller}, not by this node "
            f"({s.a.identity.address_text}): run this on {controller}\n"
        )


async def test_leave_from_the_command_line(tap_overlay: LoopbackOverlay) -> None:
    """`ztui leave` says so and the network is gone; leaving again is one line, exit 1."""
    async with story(tap_overlay) as s:
        home = str(s.a.home.path)
        code, out, err = await ztui("--home", home, "leave", s.nwid)
        assert (code, out) == (0, f"left {s.nwid}\n"), err
        code, out, err = await ztui("--home", home, "networks", "--json")
        assert code == 0 and json.loads(out) == []
        code, out, err = await ztui("--home", home, "leave", s.nwid)
        assert (code, err) == (1, f"ztui: this node has not joined network {s.nwid}\n")


async def test_join_of_a_network_the_controller_lacks_exits_1(
    tap_overlay: LoopbackOverlay,
) -> None:
    """The controller answers NOT_FOUND: that join failed, so exit 1 with one line on
    stderr naming the controller and the id, and how to stop the node asking; --json
    still prints the network (state NOT_FOUND) for scripts, and exits 1 too. ACCESS_DENIED
    stays exit 0: waiting for approval is the expected next step (the story test above)."""
    await tap_overlay.add_root()
    ctl = await tap_overlay.add_leaf("ctl")
    member = await tap_overlay.add_leaf("member")
    await tap_overlay.wait_online()
    home, controller = str(member.home.path), ctl.identity.address_text
    missing = controller + "0000ff"
    code, out, err = await ztui("--home", home, "join", missing)
    assert (code, out) == (1, ""), err
    assert err == (
        f"ztui: controller {controller} has no network {missing}: check the id "
        f"(still joined and retrying; `ztui leave {missing}` stops that)\n"
    )
    other = controller + "0000fe"
    code, out, err = await ztui("--home", home, "join", other, "--json")
    assert (code, err) == (1, "")
    assert json.loads(out)["state"] == "NOT_FOUND"


async def test_join_whose_device_cannot_be_made_exits_1(tap_overlay: LoopbackOverlay) -> None:
    """PORT_ERROR (no TAP: no root, say) is a failed join as well: exit 1, the device's
    own reason in one line on stderr."""
    await tap_overlay.add_root()
    leaf = await tap_overlay.add_leaf("leaf")
    tap_overlay.taps["leaf"].open_error = TapError("creating a TAP device needs root")
    nwid = "0123456789000002"
    code, out, err = await ztui("--home", str(leaf.home.path), "join", nwid)
    assert (code, out) == (1, ""), err
    assert err == (
        f"ztui: no device for {nwid}: creating a TAP device needs root "
        f"(`ztui leave {nwid}`, fix that, and join again)\n"
    )
