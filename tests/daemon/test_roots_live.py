"""GET/PUT /roots on a real daemon, and `ztui roots`: a running node takes new roots without
a restart, keeps them in its home across one, and refuses bad roots files whole.

The defect: roots could only be given at start, so a node run by systemd (which already
holds the port) had no way to get them; `overlayd --roots FILE` failed with "Address
already in use" and saved nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest

from overlay_core.api.http import MAX_BODY_BYTES
from overlay_core.io.cli import build_parser, daemon_config, merge_settings
from overlay_core.io.daemon import Daemon
from overlay_core.io.home import Home
from overlay_core.lab.loopback import LOOPBACK, LoopbackOverlay
from overlay_core.proto.identity import Identity
from overlay_core.proto.roots import parse_roots
from tests.cli_run import ztui_sync

from .test_api_hostile import assert_4xx_with_reason, assert_no_traceback_logged
from .test_daemon_api import unix_client

REACH_S = 10.0


async def wait_for_root_link(api: httpx.AsyncClient, address: str) -> dict[str, object]:
    """GET /peers/{address} once the node holds it as a ROOT with a live link."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REACH_S
    while True:
        response = await api.get(f"/peers/{address}")
        if response.status_code == 200:
            peer: dict[str, object] = response.json()
            if peer["role"] == "ROOT" and peer["link"] == "DIRECT":
                return peer
        assert loop.time() < deadline, f"{address} never became a live root: {response.text}"
        await asyncio.sleep(0.05)


async def test_put_roots_gives_a_running_node_roots_it_then_reaches(
    overlay: LoopbackOverlay,
) -> None:
    """A leaf started with no roots is handed one with PUT /roots: the answer names the
    root added and where it is saved, the node HELLOs it at once and it appears in
    /peers as a ROOT with a DIRECT link, in /roots with a UDP link, and the node goes
    ONLINE. HOME/roots.txt holds it and settings.json names that file."""
    leaf = await overlay.add_leaf("leaf")  # before the root: it starts with none
    root = await overlay.add_root()
    async with unix_client(leaf) as api:
        before = (await api.get("/roots")).json()
        assert before["roots"] == [] and before["saved_in"] is None
        assert (await api.get("/status")).json()["state"] == "OFFLINE"

        text = "# our root\n" + overlay.roots[0].to_text() + "  # on loopback\n"
        response = await api.put("/roots", json={"roots": text})
        assert response.status_code == 200, response.text
        answer = response.json()
        address = root.identity.address_text
        assert (answer["added"], answer["removed"]) == ([address], [])
        assert [r["address"] for r in answer["roots"]] == [address]

        await wait_for_root_link(api, address)
        kinds = [(e["kind"], e["message"]) for e in leaf.recent_events()]
        assert ("roots", f"1 root in use; added {address}") in kinds
        (listed,) = (await api.get("/roots")).json()["roots"]
        assert listed["link"] == "UDP" and listed["endpoint"] == f"127.0.0.1:{root.udp_port}"
        assert listed["identity"] == root.identity.to_public_text()
        status = (await api.get("/status")).json()
        assert status["state"] == "ONLINE" and status["roots_total"] == 1

    saved = leaf.home.path / "roots.txt"
    assert answer["saved_in"] == str(saved.resolve())
    assert parse_roots(saved.read_text()) == overlay.roots
    assert leaf.home.load_settings()["roots"] == str(saved.resolve())


async def test_roots_the_running_node_refused_are_a_500_that_says_so(
    overlay: LoopbackOverlay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon logs and swallows an exception inside the node (one bad call must not
    stop it). PUT /roots must not then answer 200 as if the roots were in use: it says
    they were saved, not applied, and what to do."""
    from overlay_core.proto.node import Node

    leaf = await overlay.add_leaf("leaf")
    await overlay.add_root()

    def broken(self: Node, entries: object, now: float) -> list[object]:
        raise RuntimeError("a bug in set_roots")

    monkeypatch.setattr(Node, "set_roots", broken)
    async with unix_client(leaf) as api:
        response = await api.put("/roots", json={"roots": overlay.roots[0].to_text()})
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["error"] == "not_applied" and "restart overlayd" in body["reason"]
    assert parse_roots((leaf.home.path / "roots.txt").read_text()) == overlay.roots


async def test_roots_set_at_run_time_are_used_after_a_restart(
    overlay: LoopbackOverlay,
) -> None:
    """After PUT /roots the node is stopped and started again the way `overlayd --home H`
    starts it (settings.json, then the roots file it names): it comes up with those
    roots and reaches them."""
    leaf = await overlay.add_leaf("leaf")
    root = await overlay.add_root()
    async with unix_client(leaf) as api:
        text = overlay.roots[0].to_text()
        assert (await api.put("/roots", json={"roots": text})).status_code == 200
    await overlay.stop("leaf")

    home = Home(leaf.home.path)
    args = build_parser().parse_args(["--port", "0", "--bind", LOOPBACK])
    settings, _ = merge_settings(home, args)
    config = daemon_config(home, settings)
    config.advertise = [LOOPBACK]
    assert config.roots == overlay.roots
    again = Daemon(config)
    overlay.daemons["leaf"] = again  # stopped by the fixture, even if this test fails
    await again.start()
    async with unix_client(again) as api:
        await wait_for_root_link(api, root.identity.address_text)


# --------------------------------------------------------------------------- hostile


def good_line(overlay: LoopbackOverlay) -> str:
    return overlay.roots[0].to_text()


async def test_bad_roots_bodies_are_4xx_and_change_nothing(
    overlay: LoopbackOverlay, caplog: pytest.LogCaptureFixture
) -> None:
    """Huge, binary, malformed, empty, secret-bearing and mistyped bodies are each a 4xx
    JSON error with a reason (a bad line is named, with field "roots"); afterwards the
    node has its old root, still reached, and nothing was written to its home."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf")
    await overlay.wait_online()
    line = good_line(overlay)
    secret = Identity.generate()
    caplog.set_level(logging.DEBUG)
    bad_lines = {
        f"# fine\n{line}\nnonsense 1.2.3.4:9993\n": "roots file line 3",
        f"{line.split()[0]} root.example.net:9993": "line 1: endpoint",
        f"{line}\n{line}": "line 2: root",
        f"{secret.to_secret_text()} 127.0.0.1:9993": "secret identity",
        "\x00\x01\x02 \ufffd": "line 1",
        "": "lists no roots",
        "# only a comment\n\n": "lists no roots",
    }
    async with unix_client(leaf) as api:
        before = (await api.get("/roots")).json()
        for text, words in bad_lines.items():
            response = await api.put("/roots", json={"roots": text})
            assert_4xx_with_reason(response, repr(text[:30]))
            body = response.json()
            assert response.status_code == 400 and body["field"] == "roots", body
            assert words in body["reason"], body
        raw_bodies = [
            b'{"roots": "' + b"#" * (MAX_BODY_BYTES + 10) + b'"}',  # past the limit: 413
            b"\xff\xfe\x00\x01binary",
            b'{"roots": 5}',
            b'{"roots": ["a", "b"]}',
            b'{"roots": null}',
            b"{}",
            b"",
            b"[]",
            json.dumps({"roots": line, "extra": 1}).encode(),
            line.encode(),  # the file itself, not wrapped in JSON
        ]
        for raw in raw_bodies:
            headers = {"Content-Type": "application/json"}
            response = await api.put("/roots", content=raw, headers=headers)
            assert_4xx_with_reason(response, repr(raw[:30]))
        assert (await api.put("/roots", content=raw_bodies[0])).status_code == 413

        after = (await api.get("/roots")).json()
        for answer in (before, after):  # the latency moves; the rest must not
            for root in answer["roots"]:
                root["latency_ms"] = None
        assert after == before and after["roots"][0]["link"] == "UDP"
    assert not (leaf.home.path / "roots.txt").exists()
    assert not leaf.home.settings_path.exists()
    assert_no_traceback_logged(caplog)


# --------------------------------------------------------------------------- ztui roots


async def test_ztui_roots_set_and_show_with_their_exit_codes(
    overlay: LoopbackOverlay, short_tmp: Path
) -> None:
    """`ztui roots set FILE` gives the running node its roots (exit 0, and the root is
    listed as answering), `-` reads stdin, `ztui roots` lists them; a bad line or an
    unreadable file is exit 2 with one line, a node that is not running exit 1."""
    leaf = await overlay.add_leaf("leaf")
    root = await overlay.add_root()
    home = str(leaf.home.path)
    good = overlay.write_roots_file(short_tmp / "roots.txt")
    address = root.identity.address_text

    done = await asyncio.to_thread(ztui_sync, "--home", home, "roots", "set", str(good))
    assert done.returncode == 0, done.stderr
    assert "1 root in use" in done.stdout and f"added {address}" in done.stdout
    assert f"{address}  UDP" in done.stdout  # it waited for the root to answer

    shown = await asyncio.to_thread(ztui_sync, "--home", home, "roots", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [r["address"] for r in json.loads(shown.stdout)["roots"]] == [address]
    again = await asyncio.to_thread(
        ztui_sync, "--home", home, "roots", "set", "-", "--json", stdin=good.read_text()
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["added"] == []

    bad = short_tmp / "bad.txt"
    bad.write_text(good.read_text() + "not-a-root 1.2.3.4:9993\n")
    for args, code, words in (
        (("roots", "set", str(bad)), 2, "roots file line 2"),
        (("roots", "set", str(short_tmp / "missing.txt")), 2, "cannot read"),
        (("roots", "set"), 2, "required"),
        (("roots", "set", str(good), "--wait", "nan"), 2, "seconds"),
        (("--home", str(short_tmp / "no-node"), "roots", "set", str(good)), 1, "not running"),
        (("--home", str(short_tmp / "no-node"), "roots"), 1, "not running"),
    ):
        result = await asyncio.to_thread(ztui_sync, "--home", home, *args)
        assert result.returncode == code, (args, result)
        assert "Traceback" not in result.stderr
        (message,) = result.stderr.strip().splitlines()
        assert words in message, (args, message)
    assert leaf.live_roots.status()[0].link == "UDP"  # the failures changed nothing
