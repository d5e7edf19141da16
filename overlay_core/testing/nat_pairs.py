"""Hole punching between pairs of homes behind different NATs, all on one rig (issue 10).

The system test tests/netns/test_nat_traversal.py and the benchmark bench/bench_nat.py
share this: one OverlayWorld with two roots on the internet and, for each pairing, two
homes with one host each, where fresh leaves (new identity, new UDP port, so no NAT state
of an earlier run is reused) are started, pinged and stopped again.

    key   home 1                                   home 2
    a     MASQUERADE, no input firewall, ISP hop   MASQUERADE, no input firewall, ISP hop
    b     MASQUERADE, no input firewall, behind    MASQUERADE, no input firewall, ISP hop
          a carrier NAT (MASQUERADE, no input
          firewall, ISP hop; LAN 100.64.0.0/24)
    c     MASQUERADE + input firewall, ISP hop     MASQUERADE, no input firewall, ISP hop
    fw    MASQUERADE + input firewall, flat        MASQUERADE + input firewall, flat
    flat  MASQUERADE, no input firewall, flat      MASQUERADE, no input firewall, flat
          (not in the issue's list: the peer's router is the next hop, no TTL can help)

All NATs keep the source port (no --random-fully). "No input firewall" is the case of issue
10: a router that accepts packets to itself from the WAN keeps a conntrack entry (UNREPLIED)
for a peer's punch that arrives before its own host has sent anything, and then has to
masquerade its host's packets to that peer from another port (lab/netns.py,
add_nat_site's input_firewall). "ISP hop" is a routed hop between the home and the
internet (lab/netns_isp.py): only with one can a low-TTL packet open our NAT without
reaching the peer's router. "fw" is the flat rig of tests/netns/test_overlay_nat.py.

Time to DIRECT (`time_to_direct`) is measured as a user would see it: echoes from leaf 1
to leaf 2 every 0.25 s through leaf 1's API (what `ztui ping` does), clock started as the
first is sent and stopped by the first echo that comes back DIRECT or the first time leaf
1 lists leaf 2 with link DIRECT, whichever is first.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..lab.netns import Host, Site
from ..lab.world import ApiCallError, OverlayNode, OverlayWorld, WorldError
from ..proto.states import Link

ROOT_NAMES = ("root1", "root2")
FIRST_LEAF_PORT = 21001
ECHO_INTERVAL_S = 0.25
ECHO_TIMEOUT_S = 1.0
CARRIER = "cgnat"  # the carrier-grade NAT site of pairing b
CARRIER_LAN = "100.64.0.0/24"


@dataclass(frozen=True)
class HomeSpec:
    site: str  # router namespace name; its host is `<site>pc`
    lan: str
    input_firewall: bool
    isp_hop: bool
    behind_carrier: bool = False

    def describe(self) -> str:
        words = ["MASQUERADE", "+ input firewall" if self.input_firewall else "no firewall"]
        if self.behind_carrier:
            words.append("behind CGNAT (no firewall, ISP hop)")
        elif self.isp_hop:
            words.append("ISP hop")
        else:
            words.append("flat")
        return " ".join(words)


@dataclass(frozen=True)
class PairingSpec:
    key: str
    title: str
    homes: tuple[HomeSpec, HomeSpec]


def _home(site: str, lan: str, firewall: bool, isp_hop: bool, carrier: bool = False) -> HomeSpec:
    return HomeSpec(site, lan, firewall, isp_hop, carrier)


PAIRINGS: dict[str, PairingSpec] = {
    spec.key: spec
    for spec in (
        PairingSpec(
            "a",
            "plain NAT <-> plain NAT (no input firewalls, ISP hops)",
            (_home("a1", "10.11.0.0/24", False, True), _home("a2", "10.12.0.0/24", False, True)),
        ),
        PairingSpec(
            "b",
            "CGNAT'd home <-> plain NAT (no input firewalls, ISP hops)",
            (
                _home("b1", "10.21.0.0/24", False, False, carrier=True),
                _home("b2", "10.22.0.0/24", False, True),
            ),
        ),
        PairingSpec(
            "c",
            "input firewall <-> plain NAT (ISP hops)",
            (_home("c1", "10.31.0.0/24", True, True), _home("c2", "10.32.0.0/24", False, True)),
        ),
        PairingSpec(
            "fw",
            "input firewall <-> input firewall (flat internet)",
            (_home("fw1", "10.41.0.0/24", True, False), _home("fw2", "10.42.0.0/24", True, False)),
        ),
        # Not in the list: the case no TTL can help, the peer's router being the
        # next hop (what the flat rig gave every pairing before the ISP hop existed).
        PairingSpec(
            "flat",
            "plain NAT <-> plain NAT (no input firewalls, flat internet)",
            (_home("f1", "10.51.0.0/24", False, False), _home("f2", "10.52.0.0/24", False, False)),
        ),
    )
}


@dataclass
class Pair:
    """One pairing on the rig: its two homes, their hosts, and the leaves running now."""

    spec: PairingSpec
    sites: tuple[Site, Site]
    hosts: tuple[Host, Host]
    leaves: list[OverlayNode] = field(default_factory=list)
    runs: int = 0

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def routers(self) -> list[Site]:
        """Every NAT router between the two leaves (a carrier NAT after its home)."""
        return [r for site in self.sites for r in site.routers]


@dataclass
class DirectTiming:
    """How one run of `time_to_direct` went."""

    seconds: float | None  # first ping -> DIRECT; None: not within the cap
    via: str | None  # "echo" or "link": what showed DIRECT first
    echoes: list[str]  # one word per echo: DIRECT, RELAY, TCP, or "-" for no reply

    def as_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "via": self.via, "echoes": self.echoes}


class NatPairs:
    """The pairings' homes on a world's rig, with two roots; see the module docstring.

    Args:
        world: an OverlayWorld with no roots yet (they are added here).
        keys: which PAIRINGS to build.
        log_level: the leaves' overlayd --log-level.
    """

    def __init__(self, world: OverlayWorld, keys: Iterable[str], log_level: str = "debug") -> None:
        self.world = world
        self.rig = world.rig
        self.log_level = log_level
        self.roots = world.add_roots(len(ROOT_NAMES), ROOT_NAMES)
        self.carrier: Site | None = None
        self.pairs: dict[str, Pair] = {}
        self._next_port = FIRST_LEAF_PORT
        for key in keys:
            spec = PAIRINGS[key]
            sites = tuple(self._home(home) for home in spec.homes)
            hosts = tuple(site.add_host(f"{site.name}pc") for site in sites)
            self.pairs[key] = Pair(spec, (sites[0], sites[1]), (hosts[0], hosts[1]))

    def _home(self, home: HomeSpec) -> Site:
        upstream = None
        if home.behind_carrier:
            if self.carrier is None:
                self.carrier = self.rig.add_nat_site(
                    CARRIER, lan_cidr=CARRIER_LAN, input_firewall=False, isp_hop=True
                )
            upstream = self.carrier
        return self.rig.add_nat_site(
            home.site,
            lan_cidr=home.lan,
            input_firewall=home.input_firewall,
            isp_hop=home.isp_hop,
            upstream=upstream,
        )

    # ---- leaves -------------------------------------------------------------------------

    def start_leaves(self, pair: Pair) -> tuple[OverlayNode, OverlayNode]:
        """Fresh leaves on the pair's hosts (new homes, hence identities, and new ports),
        started and answering their APIs (not yet online: see wait_online)."""
        self.stop_leaves(pair)
        pair.runs += 1
        for host in pair.hosts:
            site = host.site
            assert site is not None
            port = self._next_port
            self._next_port += 1
            node = self.world.add_member(
                f"{host.name}-{pair.runs}",
                host,
                port=port,
                advertise=str(site.lan),
                log_level=self.log_level,
            )
            pair.leaves.append(node)
        return pair.leaves[0], pair.leaves[1]

    def stop_leaves(self, pair: Pair) -> None:
        for node in pair.leaves:
            node.stop()
        pair.leaves.clear()

    def wait_online(self, nodes: Sequence[OverlayNode], timeout: float = 20.0) -> None:
        for node in nodes:
            self.world.wait_online(node, timeout)

    # ---- measuring ----------------------------------------------------------------------

    def time_to_direct(
        self, a: OverlayNode, b: OverlayNode, cap_s: float, interval_s: float = ECHO_INTERVAL_S
    ) -> DirectTiming:
        """Echo a -> b every interval_s until a reply or a's link to b is DIRECT, at most
        cap_s after the first echo (see the module docstring)."""
        echoes: list[str] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < cap_s:
            started = time.monotonic()
            reply = echo(a, b, min(ECHO_TIMEOUT_S, max(0.1, cap_s - (started - t0))))
            echoes.append(reply["link"] if reply is not None else "-")
            if reply is not None and reply["link"] == Link.DIRECT:
                return DirectTiming(round(time.monotonic() - t0, 3), "echo", echoes)
            if link(a, b) == Link.DIRECT:
                return DirectTiming(round(time.monotonic() - t0, 3), "link", echoes)
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
        return DirectTiming(None, None, echoes)

    # ---- reporting ----------------------------------------------------------------------

    def conntrack(self, pair: Pair) -> str:
        """`conntrack -L -p udp` on every NAT router of the pair, for failure reports."""
        parts = []
        for router in pair.routers:
            proc = router.run(["conntrack", "-L", "-p", "udp"], timeout=10)
            head = f"$ ip netns exec {router.ns} conntrack -L -p udp  # {router.name} {router.addr}"
            parts.append(f"{head}\n{proc.stdout.rstrip()}\n{proc.stderr.strip()}")
        return "\n".join(parts)

    def describe(self, pair: Pair) -> str:
        lines = [f"pairing {pair.key}: {pair.spec.title}"]
        for home, site, host in zip(pair.spec.homes, pair.sites, pair.hosts, strict=True):
            isp = f", ISP router {site.isp.addr}" if site.isp is not None else ""
            lines.append(
                f"  {site.name}: {home.describe()}; WAN {site.addr}, public {site.public_addr}"
                f"{isp}; host {host.name} {host.addr}"
            )
        return "\n".join(lines)

    def report(self, pair: Pair) -> str:
        """What every daemon believed, then the pair's homes and their routers' conntrack."""
        return "\n".join([self.world.report(), self.describe(pair), self.conntrack(pair)])


def echo(a: OverlayNode, b: OverlayNode, timeout_s: float) -> dict[str, Any] | None:
    """One overlay echo a -> b through a's API (EchoJson), None on no reply."""
    try:
        reply: dict[str, Any] = a.request(
            "POST", f"/peers/{b.address}/echo", {"timeout_s": round(timeout_s, 3)}
        )
    except ApiCallError as exc:
        if exc.status == 504:
            return None
        raise
    return reply


def link(a: OverlayNode, b: OverlayNode) -> str | None:
    """a's link to b (DIRECT, RELAY, TCP), None if a does not list b (or cannot answer)."""
    with contextlib.suppress(WorldError):
        peer = a.peer(b.address)
        return str(peer["link"]) if peer is not None else None
    return None
