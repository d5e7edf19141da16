"""The command palette's (Ctrl+P) ztui commands: every action a key does on any screen,
by the name that key has in the footer and in `?`, for whatever it can act on right now
("Retry direct 5c07de91ab", "Approve 5c07de91ab on home", "Filter (5 Events)").

How the list is built: keymap.sections() names the classes whose BINDINGS the footer and
the help show. For each such binding, VERBS says how to run its action away from its
screen — once, per peer, per joined network, per member, or on a tab's view — and gives
a few synonyms ("create network" for "New network"). Names are the bindings' own
descriptions, so the footer, `?` and the palette cannot drift apart; a binding without a
verb fails tests/console/test_palette.py, so a new key cannot be left out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.fuzzy import Matcher
from textual.screen import Screen

from overlay_core.api.schema import MemberJson, network_words

from .screens import keymap
from .screens.paths import open_paths
from .screens.peer_detail import PeerScreen

if TYPE_CHECKING:
    from .app import ZtuiApp

TABS = {"peers": "1 Peers", "networks": "2 Networks", "members": "3 Members",
        "traffic": "4 Traffic", "events": "5 Events"}  # fmt: skip
# Shown before anything is typed: what people open the palette for.
DISCOVER = ("approve_request", "join", "create", "netcheck", "help", "approve")


@dataclass(frozen=True, slots=True)
class Command:
    """One entry: `name` is the binding's description and what it acts on."""

    name: str
    help: str
    run: Callable[[], object]
    owner: str  # the class whose binding this is, and its action: for tests
    action: str
    aliases: tuple[str, ...] = ()


Target = tuple[str, str, Callable[[], object]]  # (what it acts on, help, run)
Targets = Callable[["ZtuiApp"], list[Target]]


@dataclass(frozen=True, slots=True)
class Verb:
    """How the palette runs one binding's action, and other words people use for it."""

    targets: Targets
    synonyms: tuple[str, ...] = ()


# -- targets


def once(help_text: str, run: Callable[[ZtuiApp], object]) -> Targets:
    return lambda app: [("", help_text, partial(run, app))]


def on_tab(tab: str, action: str, help_text: str) -> Targets:
    """A view's own action (sort, filter…): show its tab, then run it there."""
    return lambda app: [(f"({TABS[tab]})", help_text, partial(app.run_view_action, tab, action))]


def under_palette(app: ZtuiApp) -> Screen[object] | None:
    """The screen the user was on when the palette opened."""
    stack: list[Screen[object]] = list(app.screen_stack)
    return next((s for s in reversed(stack) if not isinstance(s, CommandPalette)), None)


def when(ok: Callable[[ZtuiApp], bool], targets: Targets) -> Targets:
    return lambda app: targets(app) if ok(app) else []


def per_peer(run: Callable[[ZtuiApp, str], object]) -> Targets:
    def targets(app: ZtuiApp) -> list[Target]:
        return [
            (address, f"{peer['link']} {peer['role'].lower()}", partial(run, app, address))
            for address, peer in sorted(app.store.peers.items())
        ]

    return targets


def per_network(run: Callable[[ZtuiApp, str], object]) -> Targets:
    """Each network this node has joined, with its state."""
    return _networks(
        run,
        lambda app: {nwid: (n["name"] or "", n["state"]) for nwid, n in app.store.networks.items()},
    )


def per_hosted(run: Callable[[ZtuiApp, str], object]) -> Targets:
    """Each network this node's controller hosts, with its member count."""
    return _networks(
        run,
        lambda app: {
            nwid: (n["name"], f"{n['members']['authorized']} members")
            for nwid, n in app.store.hosted.items()
        },
    )


def _networks(
    run: Callable[[ZtuiApp, str], object],
    listed: Callable[[ZtuiApp], dict[str, tuple[str, str]]],
) -> Targets:
    """A target per network, by id; `listed` gives each as nwid -> (name, note)."""

    def targets(app: ZtuiApp) -> list[Target]:
        return [
            (network_words(name, nwid), note, partial(run, app, nwid))
            for nwid, (name, note) in sorted(listed(app).items())
        ]

    return targets


def per_member(
    run: Callable[[ZtuiApp, MemberJson], object], states: Collection[str] | None = None
) -> Targets:
    def targets(app: ZtuiApp) -> list[Target]:
        members = sorted(app.store.members.values(), key=lambda m: (m["state"], m["address"]))
        return [
            (
                f"{m['address']} on {app.where(m)}",
                f"{m['state']}{', ' + m['name'] if m['name'] else ''}",
                partial(run, app, m),
            )
            for m in members
            if states is None or m["state"] in states
        ]

    return targets


def for_request(run: Callable[[ZtuiApp], object]) -> Targets:
    """The bar's approve or dismiss, for the member the bar has chosen (what `a` and `x`
    act on); nothing while no request is shown."""

    def targets(app: ZtuiApp) -> list[Target]:
        member = app.join_requests.chosen
        if member is None:
            return []
        label = f"{member['address']} on {app.where(member)}"
        return [(label, "the join request in the bar", partial(run, app))]

    return targets


def choose_request(step: int) -> Targets:
    def run(app: ZtuiApp) -> None:
        app.join_requests.move(step)
        app.changed.publish("requests")

    return when(lambda app: len(app.join_requests.shown) > 1, once("join requests", run))


NOT_AUTHORIZED = ("pending", "deauthorized")
PING = Verb(per_peer(lambda app, a: app.open_peer(a, ping=True)), ("echo",))
APPROVE_REQUEST = Verb(
    for_request(lambda app: app.action_approve_request()), ("approve join request", "accept")
)
DISMISS_REQUEST = Verb(
    for_request(lambda app: app.action_dismiss_request()), ("dismiss join request", "ignore")
)

VERBS: dict[tuple[str, str], Verb] = {
    ("ZtuiApp", "quit"): Verb(once("leave ztui", lambda app: app.exit()), ("exit",)),
    ("ZtuiApp", "help"): Verb(once("every key", lambda app: app.action_help()), ("keys",)),
    **{
        ("ZtuiApp", f"show_tab('{tab}')"): Verb(
            once(f"tab {label}", partial(lambda app, t: app.show_tab(t), t=tab)),
            (f"show {tab}", f"tab {label}"),
        )
        for tab, label in TABS.items()
    },
    ("ZtuiApp", "netcheck"): Verb(
        once("ztui netcheck", lambda app: app.action_netcheck()), ("netcheck", "NAT type")
    ),
    ("ZtuiApp", "approve_request"): APPROVE_REQUEST,
    ("ZtuiApp", "dismiss_request"): DISMISS_REQUEST,
    ("RequestsBar", "app.approve_request"): APPROVE_REQUEST,
    ("RequestsBar", "app.dismiss_request"): DISMISS_REQUEST,
    ("RequestsBar", "choose(-1)"): Verb(choose_request(-1)),
    ("RequestsBar", "choose(1)"): Verb(choose_request(1)),
    ("PeersTable", "select_cursor"): Verb(
        per_peer(lambda app, a: app.open_peer(a)), ("show peer", "open peer", "paths")
    ),
    ("PeersView", "cycle_sort"): Verb(on_tab("peers", "cycle_sort", "the next sort column")),
    ("PeersView", "filter"): Verb(
        on_tab("peers", "filter", "any text, relay reasons too"), ("search peers",)
    ),
    ("PeersView", "ping"): PING,
    ("PeerScreen", "app.pop_screen"): Verb(
        when(
            lambda app: isinstance(under_palette(app), PeerScreen),
            once("to the tabs", lambda app: app.show_tab("peers")),
        ),
        ("close peer",),
    ),
    ("PeerScreen", "ping"): PING,
    ("PeerScreen", "retry_direct"): Verb(
        per_peer(lambda app, a: app.retry_direct(a)), ("retry", "punch", "hole punch")
    ),
    ("PeerScreen", "probe_mtu"): Verb(
        per_peer(lambda app, a: app.probe_mtu(a)), ("probe", "path MTU", "PMTU")
    ),
    ("NetworksTable", "select_cursor"): Verb(
        per_network(lambda app, n: app.edit_network(n)), ("edit network", "settings")
    ),
    ("NetworksView", "join"): Verb(
        once("paste a 16-digit network id", lambda app: app.join_network()), ("join network",)
    ),
    ("NetworksView", "leave"): Verb(
        per_network(lambda app, n: app.leave_network(n)), ("leave network",)
    ),
    ("NetworksView", "edit"): Verb(
        per_network(lambda app, n: app.edit_network(n)), ("MTU", "MSS", "allow managed")
    ),
    ("MembersView", "approve"): Verb(
        per_member(lambda app, m: app.approve_member(m), NOT_AUTHORIZED),
        ("authorize", "accept member"),
    ),
    ("MembersView", "jump_pending"): Verb(
        on_tab("members", "jump_pending", "the first member waiting"), ("first pending",)
    ),
    ("MembersView", "paths"): Verb(
        per_hosted(open_paths), ("path matrix", "who is direct", "relayed members")
    ),
    ("MembersView", "deauthorize"): Verb(
        per_member(lambda app, m: app.deauthorize_member(m), ("authorized",)),
        ("deauthorize", "revoke"),
    ),
    ("MembersView", "remove"): Verb(
        per_member(lambda app, m: app.remove_member(m)), ("delete member", "kick")
    ),
    ("MembersView", "name"): Verb(
        per_member(lambda app, m: app.name_member(m)), ("rename member", "name member")
    ),
    ("MembersView", "ips"): Verb(
        per_member(lambda app, m: app.assign_ips(m)), ("IP addresses", "assign IP")
    ),
    ("MembersView", "create"): Verb(
        once("host a network on this node's controller", lambda app: app.create_network()),
        ("create network", "create a network", "host network"),
    ),
    ("EventsView", "filter"): Verb(
        on_tab("events", "filter", "kind, peer, network, words"), ("search events",)
    ),
    ("EventsView", "follow"): Verb(
        on_tab("events", "follow", "jump to the newest event"), ("newest event", "tail")
    ),
}


def commands(app: ZtuiApp) -> list[Command]:
    """Every command the palette offers right now, in the order `?` lists the keys."""
    from .app import ZtuiApp

    found: dict[str, Command] = {}
    for _title, owners in keymap.sections(ZtuiApp):
        for owner in owners:
            if owner in keymap.LOCAL:
                continue
            for binding in keymap.bindings_of(owner):
                verb = VERBS.get((owner.__name__, binding.action))
                if verb is None:
                    continue  # the test names it: every binding must have a verb
                for target, help_text, run in verb.targets(app):
                    name = f"{binding.description} {target}".strip()
                    aliases = tuple(f"{word} {target}".strip() for word in verb.synonyms)
                    found.setdefault(
                        name,
                        Command(name, help_text, run, owner.__name__, binding.action, aliases),
                    )
    return list(found.values())


def find(app: ZtuiApp, query: str) -> Iterator[tuple[float, Command, str]]:
    """(score, command, the text that matched: its name or a synonym) for each match."""
    matcher = Matcher(query)
    for command in commands(app):
        best, text = matcher.match(command.name), command.name
        if best < 1:
            for alias in command.aliases:
                score = matcher.match(alias)
                if score > best:
                    best, text = score, alias
        if best > 0:
            yield best, command, text


class ZtuiCommands(Provider):
    """Every key's action by name; see the module docstring."""

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    async def discover(self) -> Hits:
        found = commands(self.ztui)
        listed = [c for a in DISCOVER for c in found if c.action.removeprefix("app.") == a]
        for command in listed[:8]:
            yield DiscoveryHit(command.name, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for score, command, text in find(self.ztui, query):
            shown = matcher.highlight(command.name) if text == command.name else Text(command.name)
            help_text = command.help if text == command.name else f"“{text}” · {command.help}"
            yield Hit(score, shown, command.run, text=command.name, help=help_text or None)
