"""ActionsApp: what the keys do to the node — join, leave, settings, approve, deauthorize,
remove, name, IPs, create, and a peer's retry-direct and MTU probe. The screens' keys and
the command palette both call these, so an action does the same whichever way it is
asked. Each opens a dialog when it needs an answer, then runs the API call in a worker.
Success is one notification; an ApiError is one notification with the daemon's own reason
(never a traceback); either way the poller concerned is poked so the tables show the
result at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from textual import work

from overlay_core.api.schema import ControllerNetworkJson, MemberJson, NetworkJson

from . import mtu, render
from .client import ApiError
from .screens.create_network import CreateNetworkModal
from .screens.edit_network import EditNetworkModal
from .screens.modals import ConfirmModal, PromptModal, parse_ips, parse_name, parse_nwid
from .sync import SyncedApp

T = TypeVar("T")


class ActionsApp(SyncedApp):
    # -- running calls

    def run_api(
        self,
        call: Awaitable[T],
        *,
        success: Callable[[T], str] | None = None,
        poke: str | None = None,
        answered: Callable[[bool], None] | None = None,
    ) -> None:
        """Await `call` in a worker; notify its outcome; refresh the poller `poke`.
        `answered` hears whether the call succeeded, before the notification."""
        self._run_api(call, success, poke, answered)

    @work(group="actions")
    async def _run_api(
        self,
        call: Awaitable[Any],
        success: Callable[[Any], str] | None,
        poke: str | None,
        answered: Callable[[bool], None] | None,
    ) -> None:
        try:
            result = await call
        except ApiError as exc:
            if answered is not None:
                answered(False)
            self.notify(str(exc), title="overlayd refused", severity="error", timeout=8)
        except Exception as exc:  # a bug must read as a message, not kill the console
            if answered is not None:
                answered(False)
            self.notify(f"{type(exc).__name__}: {exc}", title="ztui error", severity="error")
        else:
            if answered is not None:
                answered(True)
            if success is not None:
                self.notify(success(result), timeout=5)
        if poke is not None:
            self.poke(poke)

    # -- networks this node joins

    def join_network(self) -> None:
        def describe(nwid: str) -> str:
            return f"network {nwid[10:]} of controller {render.controller_of(nwid)}"

        prompt = PromptModal(
            "Join a network",
            "Paste the network's 16-hex-digit id (its admin has it). A private network "
            "lets you in once the admin approves this node.",
            parse_nwid,
            placeholder="e.g. 8056c2e21c000001",
            describe=describe,
        )
        self.push_screen(prompt, self._join_answered)

    def _join_answered(self, nwid: str | None) -> None:
        if nwid is None:
            return
        me = self.store.status["address"] if self.store.status else None

        def joined(network: NetworkJson) -> str:
            return "\n".join(render.joined_lines(network, me))

        self.run_api(self.client.join(nwid), success=joined, poke="networks")

    def leave_network(self, nwid: str) -> None:
        network = self.store.networks.get(nwid)
        name = f"{network['name']} ({nwid})" if network and network["name"] else nwid
        device = network["device"] if network and network["device"] else "its device"
        question = (
            f"Leave {name}? {device} goes away and this node stops carrying the network's "
            "traffic. Joining again needs the id (and, if private, approval)."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_api(
                    self.client.leave(nwid), success=lambda _: f"left {name}", poke="networks"
                )

        self.push_screen(ConfirmModal("Leave network", question, yes="Leave"), answered)

    def edit_network(self, nwid: str) -> None:
        network = self.store.networks.get(nwid)
        if network is None:
            return
        path = mtu.tightest_path(list(self.store.peers.values()))

        def answered(body: dict[str, Any] | None) -> None:
            if body is not None:
                self.run_api(
                    self.client.set_network(nwid, body),
                    success=render.settings_line,
                    poke="networks",
                )

        self.push_screen(EditNetworkModal(network, path), answered)

    # -- networks this node's controller hosts

    def where(self, member: MemberJson) -> str:
        """The member's network as people call it: its name, else its id."""
        hosted = self.store.hosted.get(member["nwid"])
        return hosted["name"] if hosted and hosted["name"] else member["nwid"]

    def approve_member(self, member: MemberJson) -> None:
        """Every way to approve comes here (`a` on the bar or a row, Enter on the bar, the
        palette), so a pending member's approval is sent once: the join requests hold a
        mark from the key press until a poll shows the controller's answer."""
        nwid, address = member["nwid"], member["address"]
        if member["state"] == "authorized":
            self.notify(f"{address} is already a member of {self.where(member)}")
            return
        requests = self.join_requests
        if member["state"] == "pending" and not requests.start_approving(member):
            return  # sent already: the bar says "approving…" until a poll settles it

        def approved(result: MemberJson) -> str:
            ips = f" with {', '.join(result['ips'])}" if result["ips"] else ""
            return f"approved {address} on {self.where(member)}{ips}"

        def answered(ok: bool) -> None:
            requests.approval_answered(member, ok, self.hosted_polls_started)
            self.changed.publish("requests")

        call = self.client.update_member(nwid, address, {"authorized": True})
        self.run_api(call, success=approved, poke="hosted", answered=answered)
        self.changed.publish("requests")

    def deauthorize_member(self, member: MemberJson) -> None:
        nwid, address = member["nwid"], member["address"]
        question = (
            f"Deauthorize {address} ({member['name'] or 'no name'}) on {self.where(member)}? "
            "Peers refuse its frames within seconds; approve it again to undo."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                call = self.client.update_member(nwid, address, {"authorized": False})
                self.run_api(call, success=lambda _: f"deauthorized {address}", poke="hosted")

        self.push_screen(ConfirmModal("Deauthorize member", question, yes="Deauthorize"), answered)

    def remove_member(self, member: MemberJson) -> None:
        """Delete the member from the controller, after a dialog that names it."""
        nwid, address = member["nwid"], member["address"]
        network = self.where(member)
        ips = f" and frees {', '.join(member['ips'])}" if member["ips"] else ""
        me = self.store.status["address"] if self.store.status else None
        if address == me:
            # The controller lets its own node in without an admin: removing it alone
            # lasts until the node's next config request, seconds later.
            after = (
                "This is this node; while it stays joined it is let in again at once — "
                f"leave the network on it first (ztui leave {nwid}) to keep it out."
            )
        else:
            after = "It can ask to join again, and then needs approval."
        question = (
            f"Remove {address} ({member['name'] or 'no name'}, {member['state']}) from "
            f"{network} ({nwid})? The controller forgets it{ips}; peers refuse its frames "
            f"within seconds. {after}"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                call = self.client.delete_member(nwid, address)
                done = f"removed {address} from {network}"
                self.run_api(call, success=lambda _: done, poke="hosted")

        self.push_screen(ConfirmModal("Remove member", question, yes="Remove"), answered)

    def name_member(self, member: MemberJson) -> None:
        nwid, address = member["nwid"], member["address"]
        prompt = PromptModal(
            f"Name {address}",
            "A name for this member (at most 64 characters); empty removes it.",
            parse_name,
            value=member["name"],
            describe=lambda name: f"{address} will be called {name!r}",
        )

        def answered(name: str | None) -> None:
            if name is not None:
                call = self.client.update_member(nwid, address, {"name": name})
                self.run_api(call, success=lambda _: f"named {address} {name!r}", poke="hosted")

        self.push_screen(prompt, answered)

    def assign_ips(self, member: MemberJson) -> None:
        nwid, address = member["nwid"], member["address"]
        hosted = self.store.hosted.get(nwid)
        pools = ", ".join(hosted["pools"]) if hosted and hosted["pools"] else "none"
        prompt = PromptModal(
            f"IP addresses of {address}",
            f"IPv4/IPv6 addresses, separated by commas; they replace the member's. "
            f"Pools of this network: {pools}.",
            parse_ips,
            value=", ".join(member["ips"]),
            placeholder="e.g. 10.147.17.20",
            describe=lambda ips: f"{address} gets {', '.join(ips) or 'no addresses'}",
        )

        def answered(ips: list[str] | None) -> None:
            if ips is not None:
                call = self.client.update_member(nwid, address, {"ips": ips})
                self.run_api(
                    call,
                    success=lambda m: f"{address}: {', '.join(m['ips']) or 'no addresses'}",
                    poke="hosted",
                )

        self.push_screen(prompt, answered)

    # -- peers

    def retry_direct(self, address: str) -> None:
        call = self.client.retry_direct(address)
        done = f"{address}: punching again to every endpoint we know; watch LINK"
        # 202 Accepted: the node acts within seconds; the next polls show the outcome.
        self.run_api(call, success=lambda _: done, poke="node")

    def probe_mtu(self, address: str) -> None:
        call = self.client.probe_mtu(address)
        done = f"{address}: searching the path MTU again; MTU shows … meanwhile"
        self.run_api(call, success=lambda _: done, poke="node")

    # -- networks this node's controller hosts, continued

    def create_network(self) -> None:
        def created(network: ControllerNetworkJson) -> str:
            return f"created {network['name']}: members join with id {network['nwid']}"

        def answered(body: dict[str, Any] | None) -> None:
            if body is not None:
                self.run_api(self.client.create_network(body), success=created, poke="hosted")

        self.push_screen(CreateNetworkModal(), answered)
