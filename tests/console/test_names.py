"""Peers by name (issue 12): what a network's config calls a member, with its first overlay
IP, in `ztui peers`, `ztui ping` and the console's Peers tab and peer screen; `ztui ping`
takes a name or an overlay IP as its target. Against fixed JSON and the FakeNode; the same
with real daemons and the real console in tmux is in tests/daemon/test_peer_names.py."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from console import render
from console.cli import UsageError, ping_target
from console.screens.peer_detail import name_line
from console.screens.peers import SORTS, peer_matches
from console.testing.fake import FakeNode
from console.testing.fake_data import (
    HOME_NWID,
    LAPTOP,
    NODE,
    OFFICE_NWID,
    PHONE,
    ROOT_A,
    network,
    path,
    peer,
)
from console.widgets.keyed_table import Column, KeyedTable
from overlay_core.api.schema import EchoJson, NetworkJson, PeerJson, PeerNameJson

from .conftest import loaded, make_app, open_peer, second_poll, wait_for
from .test_app import text_of
from .test_approvals import bar_text
from .test_readable import table_lines

LAB_NWID = "9f3e1b5c7a000007"
NAS, OTHER = "074975ac24", "0a0b0c0d0e"


def entry(nwid: str, network: str, name: str, ips: list[str]) -> PeerNameJson:
    return {"nwid": nwid, "network": network, "name": name, "ips": ips}


def named(address: str, *entries: PeerNameJson, link: str = "DIRECT") -> PeerJson:
    return peer(address, link, [path("192.168.1.22:9993", 1.2, preferred=True)], names=[*entries])


ROOT = peer(ROOT_A, "DIRECT", [path("203.0.113.10:9993", 18.0, preferred=True)], role="ROOT")
NAS_PEER = named(
    NAS,
    entry(HOME_NWID, "home", "nas", ["10.147.17.22", "fd00::22"]),
    entry(LAB_NWID, "lab", "nas-lab", ["10.147.18.5"]),
)

# --------------------------------------------------------------------------- labels


def test_a_label_is_the_name_and_the_first_ip() -> None:
    """`nas (10.147.17.22)`; the name alone without IPs; the IP alone without a name."""
    assert render.name_label(entry(HOME_NWID, "home", "nas", ["10.147.17.22", "fd00::22"])) == (
        "nas (10.147.17.22)"
    )
    assert render.name_label(entry(HOME_NWID, "home", "nas", [])) == "nas"
    assert render.name_label(entry(HOME_NWID, "home", "", ["10.147.17.22"])) == "10.147.17.22"
    assert render.name_label(entry(HOME_NWID, "home", " ", [])) == ""


def test_a_peer_is_called_by_the_first_network_that_names_it() -> None:
    """Networks come in nwid order; one that only gives an IP yields to a later one that
    gives a name; a root or stranger (no entries) has no label."""
    unnamed_first = named(
        NAS,
        entry(HOME_NWID, "home", "", ["10.147.17.22"]),
        entry(LAB_NWID, "lab", "nas", ["10.147.18.5"]),
    )
    assert render.peer_label(unnamed_first) == "nas (10.147.18.5)"
    assert render.peer_labels(unnamed_first) == ["10.147.17.22", "nas (10.147.18.5)"]
    assert render.peer_label(NAS_PEER) == "nas (10.147.17.22)"
    assert render.peer_label(named(NAS, entry(HOME_NWID, "home", "", ["10.1.1.1"]))) == "10.1.1.1"
    assert render.peer_label(ROOT) == "" and render.peer_labels(ROOT) == []
    twice = named(NAS, entry(HOME_NWID, "home", "nas", []), entry(LAB_NWID, "lab", "nas", []))
    assert render.peer_labels(twice) == ["nas"]  # the same words once


def test_a_name_cannot_drive_the_terminal() -> None:
    """A controller's admin types the names every member prints: an escape sequence or a
    newline in one is shown as "?", never sent to the terminal as it is."""
    evil = named(NAS, entry(HOME_NWID, "home", "nas\x1b[2J\nroot\u202e", ["10.147.17.22"]))
    assert render.peer_label(evil) == "nas?[2J?root? (10.147.17.22)"
    line = render.peers_lines([evil])[1]
    assert "\x1b" not in line and "\n" not in line and "\u202e" not in line


def test_peers_text_ends_each_line_with_the_names() -> None:
    """`ztui peers` keeps zerotier-cli's columns and adds NAME at the end: every network's
    label for a member peer, "-" for a root."""
    lines = render.peers_lines([ROOT, NAS_PEER])
    assert lines[0].split() == list(render.PEER_COLUMNS) and lines[0].endswith("NAME")
    assert lines[1].endswith("  -") and lines[1].startswith(ROOT_A)
    assert lines[2].startswith(NAS)
    assert lines[2].endswith("  nas (10.147.17.22), nas-lab (10.147.18.5)")
    assert lines[0].index("NAME") == lines[2].index("nas (")


def test_pongs_and_the_summary_carry_the_name() -> None:
    reply: EchoJson = {
        "peer": NAS,
        "rtt_ms": 1.24,
        "endpoint": "192.168.1.22:9993",
        "link": "DIRECT",
        "relay": None,
    }
    label = render.peer_label(NAS_PEER)
    assert render.pong_line(reply, label) == (
        "pong from nas (10.147.17.22): 1.2 ms via 192.168.1.22:9993 (DIRECT)"
    )
    assert render.pong_line(reply) == f"pong from {NAS}: 1.2 ms via 192.168.1.22:9993 (DIRECT)"
    assert render.ping_summary(NAS, 1, [1.24], label)[0] == (
        f"--- {NAS} nas (10.147.17.22) ping statistics ---"
    )
    assert render.ping_summary(NAS, 1, [])[0] == f"--- {NAS} ping statistics ---"


# --------------------------------------------------------------------------- ping TARGET

PEERS = [
    ROOT,
    NAS_PEER,
    named(OTHER, entry(LAB_NWID, "lab", "NAS", ["10.147.18.9"])),
    named("1a2b3c4d5e", entry(HOME_NWID, "home", "printer", ["10.147.17.30"])),
    named("2a2b3c4d5e", entry(LAB_NWID, "lab", "printer", ["10.147.18.30"])),
]


@pytest.mark.parametrize(
    ("target", "address"),
    [
        (NAS, NAS),  # an address is an address, named or not
        (ROOT_A.upper(), ROOT_A),
        ("0123456789", "0123456789"),  # unknown here: the roots may know it
        ("nas", NAS),
        ("nas-lab", NAS),  # its name in the other network: the same peer
        (" nas ", NAS),
        ("NAS", OTHER),  # exact case first: OTHER is called "NAS"
        ("Nas-Lab", NAS),  # no exact match: any case
        ("10.147.17.22", NAS),
        ("10.147.18.5", NAS),
        ("fd00:0:0:0::0022", NAS),  # the same IPv6 address, written out
        ("10.147.18.9", OTHER),
    ],
)
def test_ping_target_resolves_names_and_ips(target: str, address: str) -> None:
    assert ping_target(target, PEERS) == address


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "printer",
            "2 peers have the name 'printer': 1a2b3c4d5e in home, 2a2b3c4d5e in lab; "
            "ping one by its address",
        ),
        (
            "laptop",
            "no peer has the name 'laptop' (an address is 10 hex digits; "
            "`ztui peers` lists the names and IPs this node knows)",
        ),
        (
            "8056c2e21",  # a mistyped address: the reason says what an address is
            "no peer has the name '8056c2e21' (an address is 10 hex digits; "
            "`ztui peers` lists the names and IPs this node knows)",
        ),
        (
            "10.147.17.99",
            "no peer has the overlay IP 10.147.17.99 "
            "(`ztui peers` lists the names and IPs this node knows)",
        ),
        (
            "evil\x1b[2J",  # shown escaped, as Python writes it
            "no peer has the name 'evil\\x1b[2J' (an address is 10 hex digits; "
            "`ztui peers` lists the names and IPs this node knows)",
        ),
    ],
)
def test_ping_target_refuses_unknown_and_ambiguous_names(target: str, message: str) -> None:
    """One line saying what matched (nothing, or which peers in which networks); main()
    prints it as `ztui: ...` and exits 2, as for any other bad argument."""
    with pytest.raises(UsageError) as raised:
        ping_target(target, PEERS)
    assert str(raised.value) == message
    assert "\n" not in str(raised.value)


# --------------------------------------------------------------------------- the console


def name_node(node: FakeNode, address: str, *entries: PeerNameJson) -> None:
    node.state.peers[address]["names"] = list(entries)


async def shown_peers(pilot: Pilot[None], node: FakeNode) -> KeyedTable:
    """The Peers table, once the first poll has landed and every peer of `node` is a row."""
    app = await loaded(pilot)
    table = app.screen.query_one("#peers-table", KeyedTable)
    await wait_for(pilot, lambda: table.row_count == len(node.state.peers))
    await pilot.pause()
    return table


async def test_peers_tab_shows_names_at_80_columns(node: FakeNode) -> None:
    """The story's laptop is `laptop (10.147.17.2)` beside its address; the roots and the
    unnamed peers show their address alone; nothing runs off the edge."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        table = await shown_peers(pilot, node)
        lines = table_lines(table)
        assert lines[0].split()[:3] == ["ADDRESS", "NAME", "LINK"]
        row = next(line for line in lines if LAPTOP in line)
        assert row.split()[:4] == [LAPTOP, "laptop", "(10.147.17.2)", "DIRECT"]
        root = next(line for line in lines if ROOT_A in line)
        assert root.split()[:2] == [ROOT_A, "DIRECT"]
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width


LONG = "the-backup-box-in-the-garage-behind-the-bikes"  # 45 characters


async def test_a_long_name_drops_other_columns_before_it_is_cut(node: FakeNode) -> None:
    """At 80 columns (79 for cells) the address takes 12 and a 45-character name with its
    IP 61: LINK (8) and the other wide columns go, the name stays whole. At 120 columns
    they come back beside it."""
    name_node(node, LAPTOP, entry(HOME_NWID, "home", LONG, ["10.147.17.2"]))
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        table = await shown_peers(pilot, node)
        assert f"{LAPTOP}  {LONG} (10.147.17.2)" in "\n".join(table_lines(table))
        assert table.shown_columns[:2] == ["address", "name"]
        assert "link" not in table.shown_columns
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width
        await pilot.resize_terminal(120, 24)
        await pilot.pause()
        assert {"link", "latency"} <= set(table.shown_columns)
        assert f"{LONG} (10.147.17.2)" in "\n".join(table_lines(table))


async def test_a_name_too_long_for_the_screen_is_cut_last_and_marked(node: FakeNode) -> None:
    """The longest name a controller takes (64) with an IPv6 address cannot fit beside the
    address in 80 columns even alone: every other column is gone, the address is whole,
    and the label is cut to the rest, ending in "…"."""
    name = "n" * 64
    name_node(node, LAPTOP, entry(HOME_NWID, "home", name, ["fd7a:115c:a1e0::2"]))
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        table = await shown_peers(pilot, node)
        assert table.shown_columns == ["address", "name"]
        row = next(line for line in table_lines(table) if LAPTOP in line)
        # 79 cells (ztui.tcss's scrollbar takes 1), the address 10 + 2 of padding: 67 for
        # the name's column, 65 for its text
        assert row.split() == [LAPTOP, "n" * 64 + "…"]
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width


async def test_peer_screen_lists_every_network_s_name(node: FakeNode) -> None:
    """Enter on a peer: one line per network both are in, with the name and every IP; a
    name with markup in it is shown as typed. The pongs carry the first label."""
    name_node(
        node,
        LAPTOP,
        entry(HOME_NWID, "home", "laptop", ["10.147.17.2", "fd00::2"]),
        entry(OFFICE_NWID, "office", "[b]alice[/b]", []),
        entry(LAB_NWID, "", "", ["10.147.18.7"]),
    )
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await open_peer(pilot, LAPTOP)
        summary = text_of(app, "#peer-summary")
        assert f"in home ({HOME_NWID}) as laptop: 10.147.17.2, fd00::2" in summary
        assert f"in office ({OFFICE_NWID}) as [b]alice[/b]: no IP" in summary
        assert f"in a network ({LAB_NWID}), no name: 10.147.18.7" in summary


async def test_peer_screen_of_a_root_has_no_name_lines(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await open_peer(pilot, ROOT_A)
        summary = text_of(app, "#peer-summary")
        assert " in " not in summary and summary.startswith(f"{ROOT_A}  ROOT")


def test_name_line_escapes_markup() -> None:
    assert name_line(entry(HOME_NWID, "home", "[red]x", ["10.0.0.1"])) == (
        f"in home ({HOME_NWID}) as [b]\\[red]x[/b]: 10.0.0.1"
    )


def test_filter_and_sort_know_names() -> None:
    """`/` finds a peer by any of its names or IPs; the name sort puts named peers first,
    A to Z, then the rest by address."""
    assert peer_matches(NAS_PEER, "nas-lab") and peer_matches(NAS_PEER, "10.147.18.5")
    assert peer_matches(NAS_PEER, "fd00::22")  # a second IP: not shown, still found
    assert not peer_matches(NAS_PEER, "laptop") and not peer_matches(ROOT, "nas")
    key = dict(SORTS)["name"]
    zed = named("0000000001", entry(HOME_NWID, "home", "Zed", []))
    stranger = peer("0000000002", "DIRECT", [])
    order = sorted([stranger, zed, ROOT, NAS_PEER], key=lambda p: key(p, None))
    assert [p["address"] for p in order] == [NAS, "0000000001", "0000000002", ROOT_A]


def test_names_snapshot_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The story's laptop in full at 80x24: its name in home under the link line."""
    node = FakeNode.sample()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await loaded(pilot)
        await second_poll(pilot, node)
        app = pilot.app
        await wait_for(pilot, lambda: f"▶ {PHONE}" in bar_text(app))
        app.clear_notifications()
        app.screen.query_one("#peers-table", KeyedTable).select_key(LAPTOP)
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(node), terminal_size=(80, 24), run_before=run_before)


# --------------------------------------------------------------------------- KeyedTable fit

FIT_COLUMNS = [
    Column("id", "ID"),
    Column("name", "NAME", fit=True),
    Column("state", "STATE", priority=1),
    Column("note", "NOTE", priority=2),
]


class FitApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(FIT_COLUMNS)


@pytest.mark.parametrize(
    ("name", "shown", "cell"),
    [
        ("n" * 10, ["id", "name", "state", "note"], "n" * 10),
        ("n" * 30, ["id", "name", "state"], "n" * 30),  # NOTE goes before NAME is cut
        ("n" * 42, ["id", "name"], "n" * 42),  # STATE too
        ("n" * 60, ["id", "name"], "n" * 49 + "…"),  # alone it is too wide: cut to fit
    ],
)
async def test_a_fit_column_is_cut_only_when_nothing_is_left_to_drop(
    name: str, shown: list[str], cell: str
) -> None:
    """60 columns, 58 for cells (the scrollbar's room is kept): ID 4+2, STATE 7+2, NOTE
    12+2, NAME its own width + 2; cut, it gets 58 - 6 - 2 = 50."""
    async with FitApp().run_test(size=(60, 6)) as pilot:
        table = pilot.app.query_one(KeyedTable)
        table.sync([("id01", ("id01", name, "RUNNING", "a note here."))])
        await pilot.pause()
        assert table.shown_columns == shown
        assert table.render_line(1).text.split()[1] == cell
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width


def test_a_fit_column_must_be_one_that_is_never_dropped() -> None:
    with pytest.raises(ValueError, match="never dropped"):
        KeyedTable([Column("id", "ID"), Column("name", "NAME", priority=2, fit=True)])
    with pytest.raises(ValueError, match="shown whole"):
        KeyedTable([Column("id", "ID", fit=True)])


def test_ping_target_finds_a_member_not_yet_talked_to_in_the_networks_rosters() -> None:
    """Right after joining, /peers lists only roots: `ztui ping nas` still works, because
    the network's config names every member (the network's `roster`); a peer entry wins
    over the roster when both exist, and a name in two rosters for two members is refused."""
    home = fake_network(HOME_NWID, "home", [("1111111111", "printer", ["10.147.17.30"])])
    lab = fake_network(LAB_NWID, "lab", [("2222222222", "printer", ["10.147.18.30"])])
    assert ping_target("printer", [ROOT], [home]) == "1111111111"
    assert ping_target("10.147.17.30", [ROOT], [home]) == "1111111111"
    assert ping_target("nas", [ROOT, NAS_PEER], [home]) == NAS
    with pytest.raises(UsageError, match="2 peers have the name 'printer'"):
        ping_target("printer", [ROOT], [home, lab])


def fake_network(nwid: str, name: str, roster: list[tuple[str, str, list[str]]]) -> NetworkJson:
    joined = network(nwid, NODE, state="OK")
    joined["name"] = name
    joined["roster"] = [{"address": a, "name": n, "ips": ips} for a, n, ips in roster]
    return joined
