"""The command palette's (Ctrl+P) ztui commands: every action by name, for the network,
member or peer it applies to ("Approve 3fa1c2d4e5 on home", "Leave network lab"), built
from what the console currently knows."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from .app import ZtuiApp

Command = tuple[str, str, Callable[[], Any]]
TABS = [("peers", "Peers"), ("networks", "Networks"), ("members", "Members"),
        ("traffic", "Traffic"), ("events", "Events")]  # fmt: skip


def commands(app: ZtuiApp) -> list[Command]:
    """(name, help, callback) for everything the user can do right now."""
    store = app.store
    found: list[Command] = [
        ("Join a network…", "paste a 16-digit network id", app.join_network),
        ("Create a network…", "host a new network on this node's controller", app.create_network),
        ("Help: all keys", "every key binding", app.action_help),
        ("Network check (netcheck)", "UDP, NAT type, roots, what to do", app.action_netcheck),
    ]
    found += [(f"Show {label}", f"tab {label}", partial(app.show_tab, tab)) for tab, label in TABS]
    for nwid, network in sorted(store.networks.items()):
        label = f"{network['name'] or nwid} ({nwid})" if network["name"] else nwid
        found.append((f"Leave network {label}", "asks first", partial(app.leave_network, nwid)))
        found.append(
            (
                f"Edit MTU/MSS of {label}",
                "with the path calculator",
                partial(app.edit_network, nwid),
            )
        )
    for member in sorted(store.members.values(), key=lambda m: (m["state"], m["address"])):
        hosted = store.hosted.get(member["nwid"])
        where = hosted["name"] if hosted and hosted["name"] else member["nwid"]
        who = f"{member['address']} on {where}"
        if member["state"] != "authorized":
            found.append((f"Approve {who}", member["state"], partial(app.approve_member, member)))
        else:
            found.append(
                (f"Deauthorize {who}", "asks first", partial(app.deauthorize_member, member))
            )
        found.append((f"Name member {who}…", "", partial(app.name_member, member)))
        found.append((f"Set IPs of member {who}…", "", partial(app.assign_ips, member)))
    for address, peer in sorted(store.peers.items()):
        found.append((f"Show peer {address}", peer["link"], partial(app.open_peer, address)))
        found.append(
            (
                f"Ping peer {address}",
                "through the overlay",
                partial(app.open_peer, address, ping=True),
            )
        )
    return found


class ZtuiCommands(Provider):
    """Joins, leaves, approvals, MTU edits, pings… each by name."""

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    async def discover(self) -> Hits:
        for name, help_text, callback in commands(self.ztui)[:8]:
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in commands(self.ztui):
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text or None)
