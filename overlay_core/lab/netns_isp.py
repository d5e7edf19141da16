"""The netns rig's routed uplinks: an ISP router between a home and the internet, and a home
behind a carrier-grade NAT. Used by `Rig.add_nat_site(isp_hop=True)` and
`Rig.add_nat_site(upstream=site)` (lab/netns.py builds the namespaces and calls these
functions to wire them).

Why: on the flat internet bridge every home router is the very next hop of every other
one. On the real internet at least the ISPs' routers lie between two homes, so a packet
sent with a small TTL dies at an ISP router, which answers with ICMP "time exceeded" from
its own public address. Hole punching relies on that to open its own NAT without its first
packet ever reaching the peer's router (a router without an input firewall would keep a
conntrack entry for it that steals the peer's port), and learns how many NATs it sits
behind by reading those ICMP messages. Neither can be tested without such a hop.

    ns <p>-inet            ns <p>-home1isp (ISP router)         ns <p>-home1 (home router)
    br0 198.18.0.1/15 <--> up0       198.18.1.13/15              wan0 198.18.1.12/32
                           v-home1   198.18.1.13/32  <-------->  default via 198.18.1.13
                           route 198.18.1.12/32 dev v-home1      lan0 10.1.0.1/24 ...
                           proxy ARP / NDP on up0 for 198.18.1.12

* The home keeps its public address on the internet's /15: everyone else still takes it
  for on-link and asks for it by ARP (or NDP) on the bridge. The ISP router answers for it
  (proxy ARP on up0, with a /32 route to the home's WAN; proxy NDP for its IPv6 address),
  takes the packets and routes them to the home: one hop that decrements the TTL. Proxy
  delays are 0, so the first packet to a home is not held back by a random wait.
* The ISP router's link to the home carries the ISP's own public address again (as a
  /32), so the ICMP it sends towards the home ("time exceeded", "fragmentation needed")
  comes from its public address, as a real ISP router's does: never an address that only
  exists behind a NAT. The home router's WAN is a /32 with a default route via that address.
* Between two such homes: pc -> home1 (MASQUERADE) -> home1's ISP -> [bridge] -> home2's
  ISP -> home2 -> pc2: `ping -t 2` from pc1 dies at home1's ISP, and the ICMP comes back
  through home1's MASQUERADE to pc1 (conntrack relates it to the flow it quotes).
* An oversized DF packet is now routed, not bridged, into the home: the ISP router sends
  "fragmentation needed" for it instead of the bridge dropping it silently.

A carrier-grade NAT (`upstream=cgnat`) is an ordinary NAT site whose LAN (use RFC 6598
space, lan_cidr="100.64.0.0/24") holds home routers instead of hosts: the home router's
WAN takes the next free LAN address, default route via the upstream's LAN gateway, so the
home's traffic is masqueraded twice. Its `addr` is that 100.64 address (the source of the
packets it masquerades); `public_addr` is the address the internet sees. The carrier NAT
can itself have an ISP hop, as it would (it is the ISP). IPv4 only: it has no IPv6.
"""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .netns import IspRouter, Rig, Site


def isp_name(site_name: str, taken: Container[str]) -> str:
    """`<site>isp` cut to the rig's 8-character names ("home1isp"), `ispN` if that is taken."""
    name = site_name[:5] + "isp"
    n = 1
    while name in taken:
        name, n = f"isp{n}", n + 1
    return name


def wire_isp_hop(rig: Rig, isp: IspRouter, site: Site) -> None:
    """Connect a site's WAN through its ISP router (already on the internet) with a routed
    hop, leaving the site's public address on-link for everyone on the internet."""
    assert site.addr6 is not None  # a site with an ISP hop is on the internet, dual-stack
    up, down = isp.iface, site.outer_if
    rig.veth(isp, down, site, site.WAN_IF)
    # The ISP router: its own public address also on the link down to the home, a host
    # route to the home, forwarding, and answering ARP/NDP on the internet for the home.
    isp.ip("addr", "add", f"{isp.addr}/32", "dev", down)
    isp.ip("-6", "addr", "add", f"{isp.addr6}/128", "dev", down, "nodad")
    isp.ip("route", "add", f"{site.addr}/32", "dev", down)
    isp.ip("-6", "route", "add", f"{site.addr6}/128", "dev", down)
    isp.sysctl("net.ipv4.ip_forward", 1)
    isp.sysctl("net.ipv6.conf.all.forwarding", 1)
    isp.sysctl(f"net.ipv4.conf.{up}.proxy_arp", 1)
    isp.sysctl(f"net.ipv4.neigh.{up}.proxy_delay", 0)
    isp.sysctl(f"net.ipv6.conf.{up}.proxy_ndp", 1)
    isp.sysctl(f"net.ipv6.neigh.{up}.proxy_delay", 0)
    isp.ip("-6", "neigh", "add", "proxy", site.addr6, "dev", up)
    # The home router: a /32 WAN, everything via the ISP router.
    wan = site.WAN_IF
    site.ip("addr", "add", f"{site.addr}/32", "dev", wan)
    site.ip("-6", "addr", "add", f"{site.addr6}/128", "dev", wan, "nodad")
    site.ip("route", "add", f"{isp.addr}/32", "dev", wan, "scope", "link")
    site.ip("route", "add", "default", "via", isp.addr, "dev", wan)
    site.ip("-6", "route", "add", f"{isp.addr6}/128", "dev", wan)
    site.ip("-6", "route", "add", "default", "via", isp.addr6, "dev", wan)


def wire_upstream(rig: Rig, site: Site, upstream: Site) -> None:
    """Put a site's WAN on its upstream (carrier-grade NAT) site's LAN at `site.addr`."""
    rig.veth(upstream, site.outer_if, site, site.WAN_IF)
    upstream.ip("link", "set", site.outer_if, "master", upstream.LAN_IF)
    site.ip("addr", "add", f"{site.addr}/{upstream.lan.prefixlen}", "dev", site.WAN_IF)
    site.ip("route", "add", "default", "via", upstream.gateway)
