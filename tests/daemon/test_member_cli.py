"""`ztui approve`, `remove`, `net create` and the controller's own `join`, as an admin runs
them against a live daemon with MemoryTaps."""

from __future__ import annotations

import json

from overlay_core.io.daemon import Daemon
from overlay_core.lab.loopback import LoopbackOverlay
from tests.cli_run import ztui, ztui_sync

from .netstory import story


async def controller(net: LoopbackOverlay) -> Daemon:
    await net.add_root()
    ctl = await net.add_leaf("ctl")
    await net.wait_online()
    return ctl


async def test_approve_refuses_a_node_that_never_asked_and_force_preauthorizes(
    tap_overlay: LoopbackOverlay,
) -> None:
    """The README's own example address never asked: one line saying what to do, exit 1,
    and no member appears; --force pre-authorizes it and says when it gets an address."""
    ctl = await controller(tap_overlay)
    home = str(ctl.home.path)
    code, nwid, err = await ztui("--home", home, "net", "create", "home")
    nwid = nwid.strip()
    assert code == 0, err
    code, out, err = await ztui("--home", home, "approve", nwid, "a1b2c3d4e5")
    assert (code, out) == (1, "")
    assert err == (
        f"ztui: a1b2c3d4e5 has not asked to join {nwid} yet: run `ztui join {nwid}` on it "
        'first, or pre-authorize it with `ztui approve --force` (API: "force": true)\n'
    )
    code, out, err = await ztui("--home", home, "members", nwid, "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out, err = await ztui("--home", home, "approve", "--force", nwid, "a1b2c3d4e5")
    assert code == 0, err
    assert out == (
        f"pre-authorized a1b2c3d4e5 on {nwid}; it is let in, and gets an address, when it "
        f"joins (`ztui join {nwid}` on it)\n"
    )


async def test_remove_forgets_a_member(tap_overlay: LoopbackOverlay) -> None:
    """`ztui remove` deletes an approved member and says what that means; --json is the
    API's answer; a second remove is the daemon's 404 reason, exit 1."""
    async with story(tap_overlay) as s:
        home, who = str(s.ctl.home.path), s.a.identity.address_text
        code, out, err = await ztui("--home", home, "approve", s.nwid, who)
        assert code == 0, err
        code, out, err = await ztui("--home", home, "remove", s.nwid, who)
        assert code == 0, err
        assert out == (
            f"removed {who} from {s.nwid}; its addresses are free, it is cut off within "
            "seconds, and if it asks again it is a new pending request\n"
        )
        code, out, err = await ztui("--home", home, "remove", s.nwid, who)
        assert (code, err) == (1, f"ztui: no member {who} in network {s.nwid}\n")
        other = s.b.identity.address_text
        code, out, err = await ztui("--home", home, "remove", s.nwid, other, "--json")
        assert (code, json.loads(out)) == (0, {"deleted": f"{s.nwid}/{other}"})


def test_remove_with_a_mistyped_address_is_a_usage_error() -> None:
    result = ztui_sync("--home", "/nonexistent", "remove", "0123456789abcdef", "xyz")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


async def test_net_create_picks_free_pools_and_warns_about_overlaps(
    tap_overlay: LoopbackOverlay,
) -> None:
    """Without --pool each network gets the next free /24; an overlapping --pool is
    created with a warning on stderr (stdout stays the id alone, for NWID=$(...)), and
    `net list` repeats it under the network; --no-pool means none."""
    ctl = await controller(tap_overlay)
    home = str(ctl.home.path)
    created = {}
    for name, extra in (("home", ()), ("lab", ()), ("twin", ("--pool", "10.147.17.0/24"))):
        code, out, err = await ztui("--home", home, "net", "create", name, *extra)
        assert code == 0, err
        created[name] = out.strip()
        assert out == created[name] + "\n"
    assert err == (
        "ztui: warning: pool 10.147.17.0/24 overlaps pool 10.147.17.0/24 of network home "
        f"({created['home']}): a member of both would get clashing addresses\n"
    )
    code, out, err = await ztui("--home", home, "net", "create", "bare", "--no-pool", "--json")
    assert code == 0 and json.loads(out)["pools"] == [] and err == ""
    code, out, err = await ztui("--home", home, "net", "list", "--json")
    pools = {n["name"]: n["pools"] for n in json.loads(out)}
    assert pools == {
        "home": ["10.147.17.0/24"],
        "lab": ["10.147.18.0/24"],
        "twin": ["10.147.17.0/24"],
        "bare": [],
    }
    code, out, err = await ztui("--home", home, "net", "list")
    notes = [line.strip() for line in out.splitlines() if line.strip().startswith("!")]
    assert notes == [
        f"! pool 10.147.17.0/24 overlaps pool 10.147.17.0/24 of network twin "
        f"({created['twin']}): a member of both would get clashing addresses",
        f"! pool 10.147.17.0/24 overlaps pool 10.147.17.0/24 of network home "
        f"({created['home']}): a member of both would get clashing addresses",
    ]
    code, out, err = await ztui(
        "--home", home, "net", "create", "x", "--pool", "10.1.0.0/24", "--no-pool"
    )
    assert code == 2 and "not allowed with argument" in err


async def test_the_controller_joining_its_own_network_is_ok_at_once(
    tap_overlay: LoopbackOverlay,
) -> None:
    """`ztui join` on the controller's own node, for a private network it hosts, reports
    OK with a pool address instead of "ask the network's admin"."""
    ctl = await controller(tap_overlay)
    home = str(ctl.home.path)
    code, out, err = await ztui("--home", home, "net", "create", "home")
    nwid = out.strip()
    code, out, err = await ztui("--home", home, "join", nwid)
    assert code == 0, err
    [line] = out.splitlines()
    assert line.startswith(f"joined {nwid} (home): OK on zt") and ", 10.147.17." in line
    assert "admin" not in out
