"""`ztui netcheck` and `GET /netcheck`: against real daemons on 127.0.0.1, against none,
with bad arguments, and the text layout on its own (80 columns, verdict first)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from console import cli, render
from console.testing.fake import FakeNode
from console.testing.fake_data import NAT_SYMMETRIC, ROOT_A, ROOT_B
from console.testing.fake_data import netcheck as fake_netcheck
from overlay_core.api.schema import NetcheckJson
from overlay_core.io.daemon import Daemon
from overlay_core.lab.loopback import LoopbackOverlay
from overlay_core.proto.netcheck import MAPPING_NONE
from tests.cli_run import ztui

REPORT_TIMEOUT_S = 10.0


async def get_json(daemon: Daemon, method: str = "GET") -> tuple[int, object]:
    """One request to the daemon's control socket."""
    transport = httpx.AsyncHTTPTransport(uds=str(daemon.control_socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://overlayd") as client:
        response = await client.request(method, "/netcheck")
        return response.status_code, response.json()


async def reported(daemon: Daemon) -> NetcheckJson:
    """GET /netcheck once both roots have reported our endpoint."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPORT_TIMEOUT_S
    while True:
        status, body = await get_json(daemon)
        assert status == 200, body
        assert isinstance(body, dict)
        if len(body["external_v4"]) == 1 and all(r["external_v4"] for r in body["roots"]):
            return body  # type: ignore[return-value]
        assert loop.time() < deadline, f"no root reported our endpoint: {body}"
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- the daemon


async def test_route_and_cli_against_real_daemons(overlay: LoopbackOverlay) -> None:
    """Two roots and a leaf on 127.0.0.1: GET /netcheck lists both roots over UDP with a
    latency and the endpoint they see, which is the leaf's own address (no NAT), and
    `ztui netcheck --json` prints the same report; the text form leads with the verdict."""
    roots = [await overlay.add_root("r1"), await overlay.add_root("r2")]
    leaf = await overlay.add_leaf("leaf")
    await overlay.wait_online()
    body = await reported(leaf)
    assert body["udp"] and not body["tunneled"] and body["ipv4"]
    assert body["role"] == "LEAF" and body["local_port"] == leaf.udp_port
    assert body["external_v4"] == [f"127.0.0.1:{leaf.udp_port}"]
    assert body["mapping"] == MAPPING_NONE and body["port_preserved"] is True
    assert body["level"] == "ok"
    assert {r["address"] for r in body["roots"]} == {r.identity.address_text for r in roots}
    for root in body["roots"]:
        assert root["link"] == "UDP" and root["latency_ms"] is not None

    code, out, err = await ztui("--home", str(leaf.home.path), "netcheck", "--json")
    assert code == 0, err
    printed = json.loads(out)
    assert printed["verdict"] == body["verdict"] and printed["mapping"] == MAPPING_NONE

    code, out, err = await ztui("netcheck", "--home", str(leaf.home.path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == body["verdict"]
    assert lines[1] == "  next step: nothing to do"
    assert f"  port      preserved ({leaf.udp_port})" in lines
    assert all(len(line) <= 80 for line in lines), out


async def test_route_takes_only_get(overlay: LoopbackOverlay) -> None:
    """A POST is refused in the API's error shape, naming the method to use."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf")
    status, body = await get_json(leaf, "POST")
    assert status == 405
    assert body == {
        "error": "method_not_allowed",
        "reason": "POST is not allowed on /netcheck; use GET, HEAD",
        "field": None,
    }


# --------------------------------------------------------------------------- failures


def test_daemon_down_is_one_line(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No daemon: one line naming the socket and how to start it, exit 1."""
    assert cli.main(["--home", str(short_tmp), "netcheck"]) == cli.EXIT_FAIL
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "overlayd is not running" in err and str(short_tmp / "control.sock") in err


@pytest.mark.parametrize("args", [["netcheck", "--bogus"], ["netcheck", "extra"]])
def test_bad_arguments_are_one_line_and_exit_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "unrecognized arguments" in lines[0], err
    assert "--help" in lines[0] and "Traceback" not in err


# --------------------------------------------------------------------------- the text


def test_text_fits_80_columns_for_every_verdict() -> None:
    """Cone, symmetric and UDP-blocked reports: verdict first, next step second, every
    line within 80 columns, one 'reached at' and one 'sees us at' line per root."""
    cone = FakeNode.sample()
    symmetric = FakeNode.sample()
    symmetric.state.status["nat"] = NAT_SYMMETRIC
    tunneled = FakeNode.sample()
    for root in (ROOT_A, ROOT_B):
        tunneled.set_link(root, "TCP")
    for node, first in (
        (cone, "Direct connections should work"),
        (symmetric, "Symmetric NAT: peers behind another symmetric NAT will be relayed"),
        (tunneled, "UDP blocked: everything goes through the roots over TCP"),
    ):
        report = fake_netcheck(node.state)
        lines = render.netcheck_lines(report)
        assert lines[0].startswith(first), lines
        assert lines[1].startswith("  next step: ")
        assert all(len(line) <= 80 for line in lines), lines
        assert sum("reached at" in line for line in lines) == 2
        assert sum("sees us at" in line for line in lines) == 2


def test_text_names_a_moved_port() -> None:
    report = fake_netcheck(FakeNode.sample().state)
    report["port_preserved"] = False
    report["external_v4"] = ["198.51.100.23:40001", "198.51.100.23:40002"]
    facts = dict(render.netcheck_facts(report))
    assert facts["port"] == "not preserved (local 9993, roots see 40001, 40002)"
