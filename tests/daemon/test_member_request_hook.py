"""`overlayd --on-member-request CMD` end to end: a controller on loopback runs the command
when a node asks to join its private network, once per request that is news, and the
option is remembered and shown like the others."""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path

from overlay_core.io.cli import build_parser, daemon_config, merge_settings
from overlay_core.io.home import Home
from overlay_core.lab.loopback import LoopbackOverlay
from tests.cli_run import overlayd

from .conftest import Processes
from .netstory import unix_client, until, wait_state
from .test_overlayd_options import get, start_node


async def test_a_join_request_runs_the_hook_once_with_the_request(
    tap_overlay: LoopbackOverlay, short_tmp: Path
) -> None:
    """A node joining the controller's private network makes the controller run its
    command within seconds, with the request on stdin (nwid, network name, the member's
    address, where it asked from if known, this node); the member asking again (it left and joined
    once more: a repeat request of a pending member) runs nothing; hook_runs says 1 in
    /metrics."""
    out = short_tmp / "requests.jsonl"
    await tap_overlay.add_root()
    ctl = await tap_overlay.add_leaf("ctl", on_member_request=f"cat >> {shlex.quote(str(out))}")
    nas = await tap_overlay.add_leaf("nas")
    await tap_overlay.wait_online()
    async with unix_client(ctl) as ctl_api, unix_client(nas) as nas_api:
        created = await ctl_api.post("/controller/networks", json={"name": "home"})
        assert created.status_code == 201, created.text
        nwid = created.json()["nwid"]
        assert (await nas_api.post(f"/networks/{nwid}")).status_code == 201
        await wait_state(nas_api, nwid, "ACCESS_DENIED", 5)

        async def written() -> list[dict[str, object]] | None:
            await ctl.member_hook.idle()
            lines = out.read_text().splitlines() if out.exists() else []
            return [json.loads(line) for line in lines] or None

        [request] = await until(written, 5, "the hook wrote the request")
        assert request["event"] == "member_request"
        assert (request["nwid"], request["network"]) == (nwid, "home")
        assert request["address"] == nas.identity.address_text
        assert request["node"] == ctl.identity.address_text
        # Where it asked from: null when the request came through a root, before a
        # direct path to the member existed (as a first request on loopback often does).
        physical = request["physical"]
        assert physical is None or str(physical).startswith("127.0.0.1:"), physical
        assert "asks to join home" in str(request["message"])

        # The same member asks again: the controller answers, and no hook runs.
        member_path = f"/controller/networks/{nwid}/members/{nas.identity.address_text}"
        seen = (await ctl_api.get(member_path)).json()["last_seen"]
        await asyncio.sleep(0.05)  # so the new request's last_seen differs
        assert (await nas_api.delete(f"/networks/{nwid}")).status_code == 200
        assert (await nas_api.post(f"/networks/{nwid}")).status_code == 201
        await wait_state(nas_api, nwid, "ACCESS_DENIED", 5)
        assert (await ctl_api.get(member_path)).json()["last_seen"] > seen
        await asyncio.sleep(0.3)  # time for a wrongly started hook to write
        await ctl.member_hook.idle()
        assert len(out.read_text().splitlines()) == 1
        assert ctl.io_counters()["hook_runs"] == 1
        assert "hook_failures" not in ctl.io_counters()
        metrics = (await ctl_api.get("/metrics")).text
        assert 'ztui_io_counter_total{name="hook_runs"} 1' in metrics


async def test_without_the_option_a_join_request_runs_nothing(
    tap_overlay: LoopbackOverlay,
) -> None:
    await tap_overlay.add_root()
    ctl = await tap_overlay.add_leaf("ctl")
    nas = await tap_overlay.add_leaf("nas")
    await tap_overlay.wait_online()
    async with unix_client(ctl) as ctl_api, unix_client(nas) as nas_api:
        nwid = (await ctl_api.post("/controller/networks", json={"name": "home"})).json()["nwid"]
        assert (await nas_api.post(f"/networks/{nwid}")).status_code == 201
        await wait_state(nas_api, nwid, "ACCESS_DENIED", 5)
    assert not ctl.member_hook.enabled
    assert [e["kind"] for e in ctl.recent_events()].count("member_request") == 1
    assert "hook_runs" not in ctl.io_counters()


# --------------------------------------------------------------------------- the option


def test_overlayd_options_lists_the_hook_as_off_by_default(short_tmp: Path) -> None:
    result = overlayd("--home", str(short_tmp / "nas"), "options")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if "--on-member-request" in line]
    assert line.split() == ["--on-member-request", "off"]
    data = json.loads(overlayd("--home", str(short_tmp / "nas"), "options", "--json").stdout)
    assert data["options"]["on_member_request"] == {
        "value": "",
        "default": "",
        "remembered": False,
    }


async def test_the_hook_is_remembered_in_settings_json_and_reset_like_the_others(
    processes: Processes, short_tmp: Path
) -> None:
    """A node started with --on-member-request keeps it in settings.json for its next
    start; its start line says a hook is set without showing the command; `options`
    shows it, and `--reset on-member-request` forgets it."""
    home = short_tmp / "nas"
    command = "curl -s -d @- https://ntfy.example/tk_s3cret"
    proc = start_node(processes, home, "--on-member-request", command)
    assert get(home, "/status").status_code == 200
    settings = Home(home).load_settings()
    assert settings["on_member_request"] == command
    shown = await asyncio.to_thread(overlayd, "--home", str(home), "options")
    [line] = [line for line in shown.stdout.splitlines() if "--on-member-request" in line]
    assert line.startswith("* ") and command in line and "(default: off)" in line

    reset = await asyncio.to_thread(
        overlayd, "--home", str(home), "options", "--reset", "on-member-request"
    )
    assert reset.returncode == 0, reset.stderr
    assert "forgot --on-member-request" in reset.stdout and "(default: off)" in reset.stdout
    assert "on_member_request" not in Home(home).load_settings()
    proc.terminate()
    _, stderr = proc.communicate(timeout=20)
    assert "on-member-request hook set" in stderr
    assert "tk_s3cret" not in stderr


def test_the_command_line_and_settings_json_reach_the_daemon_config(short_tmp: Path) -> None:
    """The command line wins over settings.json, '' turns a remembered hook off, and a
    settings.json value that is no string is a one-line error naming the setting, not
    the value."""
    home = Home(short_tmp / "nas")
    home.save_settings({"on_member_request": "logger joined"})
    parse = build_parser().parse_args

    def config_of(*argv: str) -> str:
        settings, _ = merge_settings(home, parse(list(argv)))
        return daemon_config(home, settings).on_member_request

    assert config_of() == "logger joined"
    assert config_of("--on-member-request", "wall asked") == "wall asked"
    assert config_of("--on-member-request", "") == ""

    home.save_settings({"on_member_request": 7})
    result = overlayd("--home", str(home.path), "--port", "0", "--bind", "127.0.0.1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"overlayd: bad setting (command line or {home.settings_path}): "
        "on_member_request must be a string (a shell command, or '' for off)"
    ]
