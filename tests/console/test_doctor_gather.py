"""`ztui doctor`'s readers and the command: API replies read into facts (odd ones refused),
this machine's TUN device, /proc, control socket and kernel, and `ztui doctor` against no
daemon and against real daemons on 127.0.0.1. The decisions are in test_doctor.py."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from console import cli
from console.client import ApiClient
from console.doctor import checks, gather, kernel_checks
from console.doctor.facts import (
    DaemonFacts,
    KernelAddress,
    NetcheckFacts,
    NodeFacts,
    OddReply,
    TunFacts,
    networks_from_json,
)
from overlay_core.lab.loopback import LoopbackOverlay
from tests.cli_run import ztui

NWID = "8056c2e21c000001"


# --------------------------------------------------------------------------- API replies


def test_odd_replies_are_refused_by_the_readers() -> None:
    """Anything not in the schema's shape raises OddReply with where it was."""
    good: dict[str, Any] = {"address": "a", "version": "v", "role": "LEAF", "roots_total": 1,
            "roots_reachable": 1, "tunneled": False, "uptime_s": 3}  # fmt: skip
    assert NodeFacts.from_json(good).uptime_s == 3.0
    odds: list[Any] = [[], "x", {**good, "roots_total": "2"}, {**good, "roots_total": True},
                {k: v for k, v in good.items() if k != "role"}]  # fmt: skip
    for odd in odds:
        with pytest.raises(OddReply):
            NodeFacts.from_json(odd)
    with pytest.raises(OddReply, match="not a JSON list"):
        networks_from_json({"nwid": NWID})
    network = {"nwid": NWID, "state": "OK", "device": "zt0", "mtu": 2800, "mss": "auto",
               "addresses": ["10.1.2.3/24"], "routes": [{"target": "10.1.0.0/16", "via": None}]}  # fmt: skip
    assert networks_from_json([network])[0].routes == (("10.1.0.0/16", None),)
    for bad in (["banana"], [5], None):
        with pytest.raises(OddReply):
            networks_from_json([{**network, "addresses": bad}])
    with pytest.raises(OddReply, match="gateway"):
        networks_from_json([{**network, "routes": [{"target": "10.0.0.0/8", "via": "x"}]}])
    with pytest.raises(OddReply):
        NetcheckFacts.from_json({"udp": True, "tunneled": False, "roots": [{"address": 1}]})


def mock_client(routes: dict[str, httpx.Response]) -> ApiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return routes.get(
            request.url.path, httpx.Response(404, json={"error": "not_found", "reason": "no"})
        )

    return ApiClient(home="/nonexistent", transport=httpx.MockTransport(handler))


def test_ask_daemon_turns_every_odd_answer_into_words() -> None:
    """A non-JSON status, a status of the wrong shape, a 404 netcheck: each is an error
    string in the facts, never an exception."""
    with mock_client({"/status": httpx.Response(200, text="<html>")}) as client:
        facts = gather.ask_daemon(client)
    assert facts.status is None and "not JSON" in facts.error
    with mock_client({"/status": httpx.Response(200, json={"address": 5})}) as client:
        assert "GET /status" in gather.ask_daemon(client).error
    status = {"address": "a", "version": "v", "role": "LEAF", "roots_total": 0,
              "roots_reachable": 0, "tunneled": False, "uptime_s": 1.0}  # fmt: skip
    routes = {
        "/status": httpx.Response(200, json=status),
        "/networks": httpx.Response(200, json=[]),
    }
    with mock_client(routes) as client:
        facts = gather.ask_daemon(client)
    assert facts.status is not None and facts.netcheck is None and facts.netcheck_error
    assert facts.networks == () and facts.home == "/nonexistent"


def test_ask_daemon_finds_the_system_home_where_ztui_looks_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$ZTUI_SYSTEM_HOME moves the system node for ztui (console/discovery.py), so the
    doctor's idea of it moves too; without it, the unit's /var/lib/ztui."""
    monkeypatch.setenv("ZTUI_SYSTEM_HOME", "/srv/ztui")
    with mock_client({}) as client:
        assert gather.ask_daemon(client).system_home == "/srv/ztui"
    monkeypatch.delenv("ZTUI_SYSTEM_HOME")
    with mock_client({}) as client:
        assert gather.ask_daemon(client).system_home == "/var/lib/ztui"


# --------------------------------------------------------------------------- this machine


def test_open_tun_reports_what_the_path_is(short_tmp: Path) -> None:
    missing = gather.open_tun(str(short_tmp / "tun"))
    assert missing.errno == errno.ENOENT
    assert gather.open_tun(str(short_tmp)).errno == errno.EISDIR
    plain = short_tmp / "file"
    plain.write_text("")
    assert gather.open_tun(str(plain)) == TunFacts(
        str(plain), None, char_device=False, uid=os.geteuid()
    )
    assert gather.open_tun("/dev/null").char_device is True


def test_read_caps_from_a_proc_status(short_tmp: Path) -> None:
    """CapEff bit 12 and the effective uid, from overlayd's /proc/PID/status."""
    (short_tmp / "77").mkdir()
    (short_tmp / "77" / "status").write_text(
        "Name:\toverlayd\nUid:\t0\t108\t0\t0\nCapEff:\t0000000000001000\n"
    )
    caps = gather.read_caps(77, short_tmp)
    assert caps.daemon and caps.net_admin is True and caps.uid == 108
    (short_tmp / "78").mkdir()
    (short_tmp / "78" / "status").write_text("CapEff:\t0000000000000fff\n")
    assert gather.read_caps(78, short_tmp).net_admin is False
    gone = gather.read_caps(79, short_tmp)
    assert gone.cap_eff is None and gone.error
    own = gather.read_caps(None)
    assert not own.daemon and own.pid == os.getpid() and own.cap_eff is not None


def test_probe_socket_listening_stale_and_missing(short_tmp: Path) -> None:
    """A listener is named by the kernel (SO_PEERCRED: here, this very process); a socket
    file nobody listens on is ECONNREFUSED; no file is exists=False."""
    path = short_tmp / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        live = gather.probe_socket(path)
    assert live.connected and live.peer_pid == os.getpid() and live.peer_uid == os.geteuid()
    assert live.mode is not None and stat.S_ISSOCK(live.mode) and live.in_group_session
    stale = gather.probe_socket(path)  # the server closed; its file stays
    assert stale.exists and stale.connect_errno == errno.ECONNREFUSED
    path.unlink()
    assert gather.probe_socket(path).exists is False
    assert gather.probe_socket(None).path is None


def test_pyroute2_failing_is_a_skipped_check_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyroute2

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(pyroute2, "IPRoute", broken)
    kernel = gather.read_kernel()
    assert kernel.error is not None and "Operation not permitted" in kernel.error
    result = kernel_checks.check_mtu(kernel, DaemonFacts("unix:/x", "/x", "/var/lib/ztui"))
    assert result.status == "skipped" and "Operation not permitted" in result.detail


def test_read_kernel_sees_this_namespace() -> None:
    """Loopback is always there, with its address; nothing more can be assumed here."""
    kernel = gather.read_kernel()
    assert kernel.error is None, kernel.error
    assert kernel.link("lo") is not None
    assert KernelAddress("lo", "127.0.0.1/8") in kernel.addresses


# --------------------------------------------------------------------------- the command


def test_doctor_with_no_daemon_prints_a_report_and_exits_1(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No traceback, no one-line error: the report, daemon FAIL with the home to start."""
    assert cli.main(["--home", str(short_tmp), "doctor", "--json"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    report = {r["check"]: r for r in json.loads(out)}
    assert list(report) == list(checks.NAMES)
    assert report["daemon"]["status"] == "fail"
    assert f"`overlayd --home {short_tmp}`" in report["daemon"]["fix"]
    assert cli.main(["doctor", "--home", str(short_tmp)]) == 1
    out, _ = capsys.readouterr()
    assert out.splitlines()[-1].startswith("something failed: ")


def test_doctor_for_a_moved_system_node_advises_systemctl(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plain `ztui doctor` with $ZTUI_SYSTEM_HOME set finds the stopped system node there
    (as `ztui info` would) and says to start the unit, not a second overlayd by hand."""
    monkeypatch.setenv("ZTUI_SYSTEM_HOME", str(short_tmp))
    monkeypatch.delenv("ZTUI_HOME", raising=False)
    monkeypatch.setenv("HOME", str(short_tmp / "user"))  # no per-user node to find first
    assert cli.main(["doctor", "--json"]) == 1
    report = {r["check"]: r for r in json.loads(capsys.readouterr().out)}
    assert report["daemon"]["detail"] == f"not running: no socket at {short_tmp}/control.sock"
    assert report["daemon"]["fix"] == "start it: `sudo systemctl start overlayd`"


def test_doctor_usage_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["doctor", "--bogus"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--bogus" in err


async def doctor_json(home: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """The real `ztui doctor --json` in a subprocess, off the loop the daemons run on."""
    code, out, err = await ztui("--home", str(home), "doctor", "--json")
    assert out, err
    return code, {r["check"]: r for r in json.loads(out)}


async def test_doctor_against_real_daemons(overlay: LoopbackOverlay) -> None:
    """A leaf with a root: the daemon is found by its socket (its pid is this test's, the
    daemons run in-process), it has a root and reaches it over UDP. A leaf started with
    no roots fails the roots check and exits 1."""
    lonely = await overlay.add_leaf("lonely")
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf")
    for _ in range(200):  # wait_online would wait for the lonely leaf too
        if leaf.status().online:
            break
        await asyncio.sleep(0.05)
    _, report = await doctor_json(leaf.home.path)
    assert report["daemon"]["status"] == "ok", report
    assert f"pid {os.getpid()}" in report["daemon"]["detail"]
    assert report["daemon"]["detail"].endswith(f"at unix:{leaf.home.path / 'control.sock'}")
    assert report["socket"]["status"] == "ok"
    assert report["roots"] == {
        "check": "roots",
        "status": "ok",
        "detail": "1 configured",
        "fix": None,
    }
    assert report["root links"]["status"] == "ok", report["root links"]
    assert report["CAP_NET_ADMIN"]["detail"].startswith(f"overlayd (pid {os.getpid()}")
    code, report = await doctor_json(lonely.home.path)
    assert code == 1 and report["roots"]["status"] == "fail"
