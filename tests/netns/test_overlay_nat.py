"""System tests (tier 3): real `overlayd` processes behind real Linux NATs.

The world, built once for the module: an OverlayWorld (overlay_core/lab/world.py) with the
homes of overlay_core/testing/nat_pairs.py's pairing "fw":

    root1, root2 198.18.1.x                      two roots on the "internet", UDP+TCP 9993
    fw1 (router, MASQUERADE) -- fw1pc 10.41.0.2  a leaf behind a home NAT
    fw2 (router, MASQUERADE) -- fw2pc 10.42.0.2  another leaf behind another home NAT

The routers also drop unsolicited traffic from the WAN to themselves, the default of every
consumer router (the rig's input_firewall default; its docstring says why hole punching
depends on it).

Both roots run for the whole module. Each test sets the two NATs the way its story needs
(port-preserving, --random-fully, UDP blocked), then starts two fresh leaves (new homes,
so new identities, and a new UDP port, so no NAT mapping from an earlier test is reused)
and stops them again at the end. Leaves bind 0.0.0.0 and advertise only their LAN prefix,
so every address a node ever tells a peer about lies inside the rig.

Everything is observed the way a user would: each daemon's control socket answers what
`ztui info --json` and `ztui peers --json` print (the namespaces share the filesystem, so
the console runs in the host namespace), and `ztui` itself pings and explains. Waits are
polls with deadlines; a failed wait shows how the NATs are set, every daemon's `ztui
info`, `ztui peers` and the tail of its log, so a red run says what the nodes believed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from overlay_core.lab.netns import Site, unavailable_reason
from overlay_core.lab.world import OverlayNode, OverlayWorld
from overlay_core.proto.states import Link
from overlay_core.testing.nat_pairs import NatPairs, Pair

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
]

PAIRING = "fw"  # both homes MASQUERADE with an input firewall, on the flat internet
ONLINE_TIMEOUT_S = 15.0
TCP_FALLBACK_TIMEOUT_S = 20.0  # the node opens TCP after ~8 s without a UDP answer
UDP_RETURN_TIMEOUT_S = 20.0  # while tunneled it retries UDP to the roots every ~5 s

Status = dict[str, Any]


@dataclass
class Story:
    """The module's world and its two homes, as one test sees them."""

    nat: NatPairs
    pair: Pair

    @property
    def world(self) -> OverlayWorld:
        return self.nat.world

    @property
    def home1(self) -> Site:
        return self.pair.sites[0]

    @property
    def home2(self) -> Site:
        return self.pair.sites[1]

    @property
    def root_addresses(self) -> set[str]:
        return {root.address for root in self.nat.roots}

    def set_nats(self, *, random_fully: bool, block_udp_home1: bool = False) -> None:
        for site in (self.home1, self.home2):
            self.world.rig.set_nat_random_fully(site, random_fully)
        self.world.rig.block_udp(self.home1, block_udp_home1)
        self.world.rig.block_udp(self.home2, False)

    def start_leaves(self) -> tuple[OverlayNode, OverlayNode]:
        """Fresh leaves on the two homes' hosts, their APIs answering."""
        return self.nat.start_leaves(self.pair)

    def wait_status(
        self, leaf: OverlayNode, what: str, ok: Callable[[Status], bool], timeout: float
    ) -> Status:
        """Until `leaf`'s status (`ztui info --json`) passes `ok`; that status."""

        def probe() -> Status | None:
            status: Status | None = leaf.try_get("/status")
            return status if status is not None and ok(status) else None

        return self.world.wait(f"{leaf.name} {what}", probe, timeout)

    def wait_relay_explained(self, me: OverlayNode, other: OverlayNode) -> dict[str, Any]:
        """`me`'s PeerJson for `other` once its relay reason counts direct attempts (the
        punch was tried)."""

        def probe() -> dict[str, Any] | None:
            peer = me.peer(other.address)
            reason = peer["relay_reason"] if peer is not None else None
            if reason is None or reason["punch_attempts"] == 0:
                return None
            return peer if "direct attempts" in reason["summary"] else None

        what = f"{me.name} to have punched at {other.name} and explain the relay"
        return self.world.wait(what, probe, ONLINE_TIMEOUT_S)

    def fail(self, message: str) -> str:
        """An assertion message: what went wrong, then the homes and what every node
        believed."""
        return f"{message}\n{self.nat.report(self.pair)}"


@pytest.fixture(scope="module")
def nat() -> Iterator[NatPairs]:
    with OverlayWorld() as world:
        yield NatPairs(world, [PAIRING])


@pytest.fixture
def net(nat: NatPairs) -> Iterator[Story]:
    """The module's world; leaves started by the test are stopped and the NATs reset."""
    story = Story(nat, nat.pairs[PAIRING])
    try:
        yield story
    finally:
        nat.stop_leaves(story.pair)
        story.set_nats(random_fully=False)


# --------------------------------------------------------------------------------------
# helpers


def _online(net: Story, leaf: OverlayNode) -> None:
    net.world.wait_online(leaf, ONLINE_TIMEOUT_S)  # both roots


def _nat_says(word: str) -> Callable[[Status], bool]:
    return lambda status: word in status["nat"]


def _tunneled(tunneled: bool) -> Callable[[Status], bool]:
    """The node reaches a root and is (or is no longer) tunneled over TCP."""
    return lambda status: status["tunneled"] == tunneled and status["roots_reachable"] >= 1


def _ping(
    net: Story, src: OverlayNode, dst: OverlayNode, count: int, interval: float
) -> dict[str, Any]:
    proc = src.ztui(
        "ping", dst.address, "-c", str(count), "-i", str(interval), "--timeout", "2", "--json"
    )
    assert proc.stdout.strip(), net.fail(f"ztui ping printed nothing: {proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _links(result: dict[str, Any]) -> list[str]:
    """One word per echo, in order: DIRECT, RELAY, TCP, or '-' for no reply."""
    return [r["link"] if r is not None else "-" for r in result["replies"]]


def _host(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0].strip("[]")


# --------------------------------------------------------------------------------------
# the stories


def test_hole_punching_gives_direct(net: Story) -> None:
    """Two homes behind ordinary (port-preserving) NATs end up talking directly.

    Each leaf HELLOs both roots and learns its external endpoint from them; with two
    reporters agreeing on the port, `ztui info` calls the NAT a cone that punching works
    through. pc1 pings pc2: the first echoes go through a root (pc1 has no idea where
    pc2 is), the root sends both a RENDEZVOUS with the other's public endpoint, they punch
    through their NATs, and the later echoes come back DIRECT. Afterwards each side's
    `ztui peers` lists the other as DIRECT over a path to the other NAT's public address.
    """
    net.set_nats(random_fully=False)
    a, b = net.start_leaves()
    for leaf in (a, b):
        _online(net, leaf)
        net.wait_status(leaf, "to call its NAT a cone", _nat_says("cone"), ONLINE_TIMEOUT_S)

    result = _ping(net, a, b, count=8, interval=0.5)
    links = _links(result)
    first = result["replies"][0]
    assert first is not None and first["link"] == Link.RELAY, net.fail(f"echo links {links}")
    assert first["relay"] in net.root_addresses, net.fail(f"first echo {first}")
    last = result["replies"][-1]
    assert last is not None and last["link"] == Link.DIRECT, net.fail(f"echo links {links}")
    assert _host(last["endpoint"]) == net.home2.addr, net.fail(f"last echo {last}")
    assert result["received"] == result["sent"], net.fail(f"echo links {links}")

    for me, other, other_site in ((a, b, net.home2), (b, a, net.home1)):
        peer = net.world.wait_link(me, other, Link.DIRECT, ONLINE_TIMEOUT_S)
        preferred = peer["preferred_path"]
        assert preferred is not None and _host(preferred) == other_site.addr, net.fail(
            f"{me.name}'s preferred path to {other.name} is {preferred}, "
            f"not {other_site.name}'s public address {other_site.addr}"
        )
        live = [p["endpoint"] for p in peer["paths"] if p["alive"]]
        assert any(_host(e) == other_site.addr for e in live), net.fail(f"live paths {live}")
        assert peer["relay_reason"] is None, net.fail(f"DIRECT with a reason: {peer}")


def test_random_fully_on_both_nats_stays_relay_and_says_why(net: Story) -> None:
    """Two homes behind port-randomising (symmetric) NATs stay relayed, and say why.

    With --random-fully each new flow leaves the NAT on a random port, so the two roots
    see each leaf on different ports: `ztui info` reports a symmetric NAT. The root's
    RENDEZVOUS hands each side the port the *root* saw, which the other NAT does not use
    for the peer, so every punch is dropped. Traffic still flows through the root (the
    pings are answered, RELAY), and `ztui peers` tells the user in words why the link is
    relayed: the direct attempts got no answers, and this node's NAT is symmetric.
    """
    net.set_nats(random_fully=True)
    a, b = net.start_leaves()
    for leaf in (a, b):
        _online(net, leaf)
        net.wait_status(leaf, "to call its NAT symmetric", _nat_says("symmetric"), ONLINE_TIMEOUT_S)
    info_text = a.ztui("info").stdout
    assert "symmetric" in info_text and "hole punching fails" in info_text, net.fail(info_text)

    # Long enough for all punch probes (6 x 0.5 s per endpoint) to go unanswered.
    result = _ping(net, a, b, count=8, interval=0.5)
    links = _links(result)
    assert result["received"] >= result["sent"] - 1, net.fail(f"echo links {links}")
    assert set(links) <= {Link.RELAY, "-"}, net.fail(f"a link went direct: {links}")
    replies = [r for r in result["replies"] if r is not None]
    assert all(r["relay"] in net.root_addresses for r in replies), net.fail(f"{replies}")

    for me, other in ((a, b), (b, a)):
        peer = net.wait_relay_explained(me, other)
        assert peer["link"] == Link.RELAY, net.fail(
            f"{me.name} sees {other.name} as {peer['link']}"
        )
        reason = peer["relay_reason"]
        assert reason["punch_replies"] == 0, net.fail(f"punch answered? {reason}")
        words = " ".join([reason["summary"], reason["local_nat"], *reason["details"]])
        assert "symmetric" in words, net.fail(f"the reason does not mention the NAT: {reason}")

        text = me.ztui("peers").stdout
        lines = text.splitlines()
        row = next((i for i, line in enumerate(lines) if line.startswith(other.address)), None)
        assert row is not None and Link.RELAY in lines[row], net.fail(f"ztui peers:\n{text}")
        because = lines[row + 1] if row + 1 < len(lines) else ""
        assert because.strip().startswith("relay because:"), net.fail(f"ztui peers:\n{text}")
        assert "direct attempts" in because and "NAT is symmetric" in because, net.fail(
            f"ztui peers:\n{text}"
        )


def test_udp_blocked_uses_tcp_fallback(net: Story) -> None:
    """A home whose router drops all UDP still joins the overlay, over TCP to the roots.

    pc1's HELLOs to the roots go unanswered; after ~8 s it opens TCP connections to the
    roots' port and `ztui info` shows it tunneled. pc2 (ordinary NAT) is reached through a
    root over that TCP link: `ztui peers` on pc1 shows pc2 with link TCP, and pings get
    replies. When the router lets UDP through again, pc1's periodic UDP retries to the
    roots are answered and it drops back to UDP (tunneled false).
    """
    net.set_nats(random_fully=False, block_udp_home1=True)
    a, b = net.start_leaves()
    _online(net, b)
    net.wait_status(a, "to tunnel to the roots over TCP", _tunneled(True), TCP_FALLBACK_TIMEOUT_S)

    result = _ping(net, a, b, count=4, interval=0.5)
    links = _links(result)
    assert result["received"] >= 3, net.fail(f"pings over TCP: {links}")
    peer = net.world.wait_link(a, b, Link.TCP, ONLINE_TIMEOUT_S)
    text = a.ztui("peers").stdout
    assert "tcp because:" in text and "allow outbound UDP" in text, net.fail(
        f"ztui peers:\n{text}\npeer: {peer}"
    )

    net.world.rig.block_udp(net.home1, False)
    what = "to return to UDP after UDP was unblocked"
    net.wait_status(a, what, _tunneled(False), UDP_RETURN_TIMEOUT_S)
    result = _ping(net, a, b, count=4, interval=0.5)
    links = _links(result)
    assert result["received"] >= 3 and Link.TCP not in links, net.fail(f"pings after: {links}")
