"""The Paths screen (issue 12): `p` on Members opens the highlighted member's network,
as a matrix when it fits and as a list of the worst pairs (asked for with ?limit=) when
it does not; the detail follows the selection; flagged members show why; each state the
view can be in is named with what to do; Escape goes back. On the fake node's stories
(fakenode/paths.py): `home` grown to five members, and `mesh`, 200 members."""

from __future__ import annotations

from textual.coordinate import Coordinate
from textual.pilot import Pilot

from console.app import ZtuiApp
from console.screens.main import MainScreen
from console.screens.paths import PathsScreen, matrix_width
from console.screens.paths_cells import LABEL_MAX, labels, member_detail, reported
from console.sync import PATHS_LIMIT
from console.testing.fake import FakeNode
from console.testing.fake_data import DESKTOP, HOME_NWID, LAPTOP, NODE, OFFSITE, PHONE
from console.testing.fakenode.paths import MESH_NWID

from .conftest import loaded, make_app, select_member, wait_for
from .test_app import notifications, text_of


async def open_paths(pilot: Pilot[None], nwid: str, member: str) -> PathsScreen:
    """From Members, with `member` of `nwid` highlighted, press p; wait for the view."""
    app = pilot.app
    assert isinstance(app, ZtuiApp)
    await select_member(pilot, nwid, member)
    await pilot.press("p")
    screen = app.screen
    assert isinstance(screen, PathsScreen)
    await wait_for(pilot, lambda: screen.mode != "none" or bool(shown_state(app)))
    await pilot.pause()
    return screen


def shown_state(app: ZtuiApp) -> str:
    state = app.screen.query_one("#paths-state")
    return text_of(app, "#paths-state") if state.display else ""


def detail(app: ZtuiApp) -> str:
    return text_of(app, "#paths-detail")


async def test_p_on_members_opens_the_networks_matrix_and_escape_goes_back() -> None:
    node = FakeNode.paths_sample()
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        screen = await open_paths(pilot, HOME_NWID, LAPTOP)
        assert screen.nwid == HOME_NWID and screen.mode == "matrix"
        assert f"GET /controller/networks/{HOME_NWID}/paths?limit={PATHS_LIMIT}" in node.requests
        assert set(screen.matrix.order) == {NODE, LAPTOP, PHONE, OFFSITE, DESKTOP}
        # It starts on the worst pair, and says why it is not DIRECT.
        assert "offsite reaches the roots only over TCP" in detail(app)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        assert app.paths_nwid is None  # the hosted poll stops reading the paths
        assert app.screen.query_one("#members-table").has_focus


async def test_moving_in_the_matrix_moves_the_detail() -> None:
    node = FakeNode.paths_sample()
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        screen = await open_paths(pilot, HOME_NWID, LAPTOP)
        assert screen.matrix.order == [DESKTOP, LAPTOP, NODE, OFFSITE, PHONE]  # by name
        screen.matrix.select(NODE, LAPTOP)
        await pilot.pause()
        assert detail(app).startswith("DIRECT  laptop (3a91c4e7f2) <-> nas (8056c2e21c)")
        assert "laptop -> nas: DIRECT 0.9ms via lan" in detail(app)
        await pilot.press("right")  # the diagonal: the member itself
        assert screen.matrix.selected == (NODE, NODE)
        assert detail(app).startswith("nas (8056c2e21c)  10.147.17.1 · reported")
        await pilot.press("right")
        assert screen.matrix.selected == (NODE, OFFSITE)
        text = detail(app)
        assert text.startswith("TCP  nas (8056c2e21c) <-> offsite (b2e4f6a810)")
        assert "nas -> offsite: TCP 61.2ms" in text and "offsite -> nas: TCP" in text
        assert "why: offsite reaches the roots only over TCP" in text
        await pilot.press("down")
        assert screen.matrix.selected == (OFFSITE, OFFSITE)
        await pilot.press("down")
        assert screen.matrix.selected == (PHONE, OFFSITE)
        text = detail(app)
        assert text.startswith("TCP  phone (5c07de91ab) <-> offsite (b2e4f6a810)")
        assert "phone -> offsite: RELAY" in text


async def test_the_flagged_member_is_marked_with_its_reason() -> None:
    node = FakeNode.paths_sample()
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        screen = await open_paths(pilot, HOME_NWID, LAPTOP)
        table = screen.members_table
        flagged = [key for key in table.keys if str(table.cells_of(key)[0]) == "!"]
        assert sorted(flagged) == ["offsite", "phone"]
        assert [row.key.value for row in table.ordered_rows][:2] == ["offsite", "phone"]
        phone = table.cells_of("phone")
        assert phone is not None and str(phone[-1]) == "symmetric NAT"
        await pilot.press("m")
        assert table.has_focus
        table.select_key("phone")
        await pilot.pause()
        view = app.store.paths
        assert view is not None
        why = next(m["flag_why"] for m in view["members"] if m["address"] == PHONE)
        assert why is not None and why.startswith("phone: not DIRECT with 4 of 4")
        assert " ".join(why.split()) in " ".join(detail(app).split())
        await pilot.press("m")
        assert screen.matrix.has_focus


async def test_a_big_network_lists_its_worst_pairs_and_says_how_many() -> None:
    node = FakeNode.mesh(members=200)
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        first = min(a for a in node.state.members[MESH_NWID])
        screen = await open_paths(pilot, MESH_NWID, first)
        assert screen.mode == "list"
        assert f"GET /controller/networks/{MESH_NWID}/paths?limit={PATHS_LIMIT}" in node.requests
        assert f"{PATHS_LIMIT} of 19900 pairs" in text_of(app, "#paths-legend")
        table = screen.pairs_table
        assert table.row_count == PATHS_LIMIT
        view = app.store.paths
        assert view is not None and view["pairs_total"] == 19_900
        label = labels(view["members"])
        worst = view["pairs"][0]
        assert table.selected_key == f"{label[worst['a']]}/{label[worst['b']]}"
        assert f"{worst['a']}) <-> " in detail(app)
        await pilot.press("down")
        second = view["pairs"][1]
        assert f"({second['a']}) <-> " in detail(app) and f"({second['b']})" in detail(app)
        # Nothing that names a member is cut at 80 columns.
        for cells in (table.cells_of(k) for k in table.keys):
            assert cells is not None and not any(str(c).endswith("…") for c in cells[1:3])


def glyph_at(screen: PathsScreen, a: str, b: str) -> str:
    order = screen.matrix.order
    return str(screen.matrix.get_cell_at(Coordinate(order.index(a), order.index(b))))


async def test_the_matrix_follows_a_link_that_changes() -> None:
    """The next hosted poll brings the change: one cell each side of the diagonal."""
    node = FakeNode.paths_sample()
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        screen = await open_paths(pilot, HOME_NWID, LAPTOP)
        assert glyph_at(screen, NODE, LAPTOP) == glyph_at(screen, LAPTOP, NODE) == "D"
        node.set_link(LAPTOP, "RELAY")
        app.poke("hosted")
        await wait_for(pilot, lambda: glyph_at(screen, NODE, LAPTOP) == "R")
        assert glyph_at(screen, LAPTOP, NODE) == "R"
        assert glyph_at(screen, NODE, OFFSITE) == "T"


async def test_no_reports_yet_is_named_with_what_to_do() -> None:
    """The plain NAS story: the laptop sends no reports and the NAS's own is off."""
    node = FakeNode.sample()
    node.state.networks[HOME_NWID]["settings"]["report"] = False
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await open_paths(pilot, HOME_NWID, LAPTOP)
        await wait_for(pilot, lambda: "No path reports yet" in shown_state(app))
        said = " ".join(shown_state(app).split())
        assert "members report within 30 s of joining" in said
        assert f"`ztui set {HOME_NWID} report=no` do not" in said
        assert app.screen.query_one("#paths-members").display  # who is in, all "no report"


async def test_a_node_hosting_nothing_says_where_paths_are_seen() -> None:
    node = FakeNode.sample()
    node.state.hosted.clear()
    node.state.members.clear()
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await pilot.press("3", "p")
        assert isinstance(app.screen, PathsScreen)
        await wait_for(pilot, lambda: "hosts no networks" in shown_state(app))
        assert "Run ztui there" in " ".join(shown_state(app).split())


async def test_a_network_deleted_meanwhile_is_named_not_hosted_here() -> None:
    node = FakeNode.paths_sample()
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await open_paths(pilot, HOME_NWID, LAPTOP)
        del node.state.hosted[HOME_NWID]
        app.poke("hosted")
        await wait_for(pilot, lambda: "does not host network" in shown_state(app))
        said = " ".join(shown_state(app).split())
        assert f"network {HOME_NWID} (any more): its controller is {NODE}" in said
        assert not app.screen.query_one("#paths-matrix").display


async def test_the_daemon_going_away_shows_the_banner_and_the_view_comes_back() -> None:
    node = FakeNode.paths_sample()
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        screen = await open_paths(pilot, HOME_NWID, LAPTOP)
        node.go_down()
        app.poke("node")
        await wait_for(pilot, lambda: screen.has_class("-offline"))
        await wait_for(pilot, lambda: "retrying in" in text_of(app, "#offline"))
        assert "overlayd is not running" in text_of(app, "#offline")
        assert not screen.query_one("#paths-body").display
        node.come_back()
        await wait_for(pilot, lambda: not screen.has_class("-offline"))
        await wait_for(pilot, lambda: screen.mode == "matrix")


def test_labels_are_unique_and_never_cut_an_address() -> None:
    def member(address: str, name: str) -> dict[str, object]:
        return {"address": address, "name": name}

    got = labels(
        [
            member("0000000001", "nas"),
            member("0000000002", ""),
            member("0000000003", "a-very-long-name-for-a-desktop"),
            member("0000000004", "twin"),
            member("0000000005", "twin"),
            member("0000000006", "0000000001"),  # a name that reads as another's address
            member("0000000007", "a/b"),
        ]  # type: ignore[misc]
    )
    assert got == {
        "0000000001": "nas",
        "0000000002": "0000000002",
        "0000000003": "a-very-long…",
        "0000000004": "0000000004",
        "0000000005": "0000000005",
        "0000000006": "0000000006",
        "0000000007": "0000000007",
    }
    assert all(len(label) <= LABEL_MAX for label in got.values())


def test_the_matrix_width_counts_labels_and_padding() -> None:
    """Five labels of up to 7 cells: 9 for the row labels, 9 + 8 + 5 + 9 + 7 across, one
    for the scrollbar: 48, well inside 80."""
    assert matrix_width(["desktop", "laptop", "nas", "offsite", "phone"]) == 48


async def test_a_matrix_that_no_longer_fits_becomes_the_list() -> None:
    """Eight members named host-NNN need 91 columns: a matrix at 120, the list at 80. A
    tab key leaves the screen like Escape does."""
    node = FakeNode.mesh(members=8)
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        screen = await open_paths(pilot, MESH_NWID, min(node.state.members[MESH_NWID]))
        assert screen.mode == "matrix" and len(screen.matrix.order) == 8
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: screen.mode == "list")
        assert screen.pairs_table.row_count == 28
        assert "28 of 28 pairs" in text_of(app, "#paths-legend")
        await pilot.press("1")
        assert isinstance(app.screen, MainScreen) and app.paths_nwid is None


def test_a_members_state_is_said_in_words() -> None:
    """Online with its age, OFFLINE past online_within_s, "reporting off" for a member
    whose last report said it stopped (not OFFLINE: it is up), or no report at all."""
    view = {"online_within_s": 75.0}
    base = {
        "address": "0000000001",
        "name": "nas",
        "ips": ["10.147.17.1"],
        "version": "0.1.0",
        "uptime_s": 60,
        "nat": "endpoint-independent",
        "tcp_fallback": False,
        "direct": 2,
        "not_direct": 1,
        "flag": None,
        "flag_why": None,
    }
    online = {**base, "online": True, "reporting": True, "report_age_s": 12.0}
    gone = {**base, "online": False, "reporting": True, "report_age_s": 130.0}
    off = {**base, "online": False, "reporting": False, "report_age_s": 130.0}
    silent = {**base, "online": False, "reporting": None, "report_age_s": None, "nat": None}
    assert reported(online).plain == "12s ago"  # type: ignore[arg-type]
    assert reported(gone).plain == "OFFLINE 2m"  # type: ignore[arg-type]
    assert reported(silent).plain == "no report"  # type: ignore[arg-type]
    said = member_detail(gone, view).plain  # type: ignore[arg-type]
    assert "OFFLINE: no report for 2m (over 75 s)" in said
    assert reported(off).plain == "reporting off"  # type: ignore[arg-type]
    said = member_detail(off, view).plain  # type: ignore[arg-type]
    assert "reporting switched off on it (2m ago): `ztui set NWID report=yes` there" in said
    said = member_detail(silent, view).plain  # type: ignore[arg-type]
    assert "no path report (an older version, or never online since joining)" in said
    assert "DIRECT with 2 of 3" in member_detail(online, view).plain  # type: ignore[arg-type]


async def test_an_overlayd_without_the_paths_view_is_named_where_the_view_would_be() -> None:
    """An older daemon answers 404 not_found for the route: the screen says so, and the
    rest of the hosted poll (members, the request bar) goes on without a toast."""
    node = FakeNode.paths_sample()
    route = f"/controller/networks/{HOME_NWID}/paths"
    node.fail_with(404, error="not_found", reason=f"no such resource: GET {route}", path=route)
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await open_paths(pilot, HOME_NWID, LAPTOP)
        await wait_for(pilot, lambda: "did not give" in shown_state(app))
        said = " ".join(shown_state(app).split())
        assert f"did not give the paths of {HOME_NWID}: this overlayd predates" in said
        assert f"no such resource: GET {route}" in said
        assert not notifications(app)
        assert app.store.members_loaded and app.store.hosted
