"""The checks of what overlayd put into the kernel, and what it has to fit in: the
default route's MTU, the TAP devices' addresses and routes, and address clashes between
them and other interfaces. Pure, like checks.py: KernelFacts (read with pyroute2 by
gather.py) and the daemon's GET /networks in, results out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from overlay_core.api.schema import NetworkState

from .. import mtu as overlay_mtu
from .facts import DaemonFacts, JoinedNetwork, KernelFacts, KernelRoute
from .result import DAEMON_DOWN, NAMES, CheckResult, fail, ok, skip, warn

# IPv4 + UDP headers (20 + 8) and IPv6 + UDP (40 + 8) come off the underlay MTU first.
IPV4_UDP_BYTES, IPV6_UDP_BYTES = 28, 48
# proto/path.py PMTU_MIN: the datagram every path must carry; the console cannot import it.
MIN_DATAGRAM_BYTES = 1200


def default_route(kernel: KernelFacts) -> KernelRoute | None:
    """The default route packets to the roots take: IPv4's if there is one (most roots
    are reached over it), else IPv6's; the lowest metric wins, as in the kernel."""
    defaults = [r for r in kernel.routes if r.is_default]
    v4 = [r for r in defaults if r.target == "0.0.0.0/0"]
    pool = v4 or defaults
    return min(pool, key=lambda r: r.priority) if pool else None


def _network_mtu_notes(
    networks: Sequence[JoinedNetwork], payload: int
) -> tuple[list[str], list[JoinedNetwork]]:
    """Per joined network, how many datagrams its biggest frame takes on this underlay;
    and the networks that split TCP segments because their MSS clamping is off."""
    notes, unclamped = [], []
    for network in networks:
        frame = network.mtu + overlay_mtu.ETHERNET_HEADER_BYTES
        count = overlay_mtu.datagrams_for(frame, payload)
        notes.append(f"{network.nwid} (MTU {network.mtu}): {count} datagram{'s' * (count > 1)}")
        if count > 1 and network.mss == "off":
            unclamped.append(network)
    return notes, unclamped


def check_mtu(kernel: KernelFacts, daemon: DaemonFacts) -> CheckResult:
    """The default route's MTU and what it means for the networks' frames (README, MTU
    and MSS): underlay - IP/UDP - 45 bytes of ztui = the largest frame in one datagram."""
    name = NAMES[7]
    if kernel.error is not None:
        return skip(name, f"could not read the kernel's routes: {kernel.error}")
    route = default_route(kernel)
    if route is None:
        return warn(
            name,
            "no default route: the roots are reachable only if a more specific route leads there",
            "give this machine a gateway (its network settings, or `ip route add default via GW`)",
        )
    link = kernel.link(route.device) if route.device is not None else None
    mtu = route.mtu or (link.mtu if link is not None else None)
    if mtu is None:
        return skip(name, f"the default route ({route.device or 'no device'}) has no MTU")
    overhead = IPV6_UDP_BYTES if ":" in route.target else IPV4_UDP_BYTES
    payload = mtu - overhead
    frame = overlay_mtu.largest_frame(payload)
    source = "route" if route.mtu else "device"
    sums = (
        f"default route via {route.device} ({source} MTU {mtu}): a datagram carries at most "
        f"{mtu} - {overhead} = {payload} bytes, a frame of {payload} - "
        f"{overlay_mtu.FRAME_OVERHEAD_BYTES} = {frame} (an IP packet of "
        f"{frame - overlay_mtu.ETHERNET_HEADER_BYTES})"
    )
    if payload < MIN_DATAGRAM_BYTES:
        return fail(
            name,
            f"{sums}: less than the {MIN_DATAGRAM_BYTES}-byte datagrams every path must carry",
            f"raise the MTU of {route.device} to at least {MIN_DATAGRAM_BYTES + overhead}",
        )
    networks = [n for n in daemon.networks or () if n.state == NetworkState.OK]
    notes, unclamped = _network_mtu_notes(networks, payload)
    if notes:
        sums += "; biggest frames: " + ", ".join(notes)
    if unclamped:
        nwid = unclamped[0].nwid
        return warn(
            name,
            f"{sums}; mss is off on {nwid}, so full TCP segments are split too",
            f"`ztui set {nwid} mss=auto`: TCP segments then fit one datagram",
        )
    if not notes:
        sums += "; bigger frames go as several datagrams"
    return ok(name, sums)


def _route_key(
    target: str, gateway: str | None
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str | None] | None:
    try:
        net = ipaddress.ip_network(target, strict=False)
        via = str(ipaddress.ip_address(gateway)) if gateway else None
    except ValueError:
        return None
    return net, via


def _missing_on_device(network: JoinedNetwork, device: str, kernel: KernelFacts) -> list[str]:
    """What overlayd put on the device that the kernel no longer has there."""
    if kernel.link(device) is None:
        return [f"{device} of {network.nwid} is gone"]
    have_addrs = {a.parsed for a in kernel.addresses if a.device == device}
    missing = [a for a in network.addresses if ipaddress.ip_interface(a) not in have_addrs]
    keys = [(_route_key(r.target, r.gateway), r.device) for r in kernel.routes]
    here = {key for key, dev in keys if key is not None and dev == device}
    for target, via in network.routes:
        key = _route_key(target, via)
        if key in here:
            continue
        route = f"route {target}" + (f" via {via}" if via else "")
        # The same prefix through another interface: that route was there first (overlayd
        # adds, never replaces) or was put there since; either way ours is not in force.
        elsewhere = sorted(
            {d for k, d in keys if d and d != device and k and key and k[0] == key[0]}
        )
        missing.append(f"{route} (goes via {', '.join(elsewhere)})" if elsewhere else route)
    if not missing:
        return []
    return [f"{', '.join(missing)} missing on {device} ({network.nwid})"]


def _with_devices(
    check: str, kernel: KernelFacts, daemon: DaemonFacts
) -> CheckResult | list[JoinedNetwork]:
    """The joined networks that have a device, or the reason the check is skipped."""
    if daemon.status is None:
        return skip(check, DAEMON_DOWN)
    if daemon.networks is None:
        return skip(check, f"GET /networks gave no usable answer: {daemon.networks_error}")
    if kernel.error is not None:
        return skip(check, f"could not read the kernel's addresses and routes: {kernel.error}")
    networks = [n for n in daemon.networks if n.device]
    if not networks:
        return skip(check, "no joined network has a device")
    return networks


ROUTES_FIX = (
    "`ztui leave {nwid}` and `ztui join {nwid}`, or restart overlayd; if they go again, the "
    "NAS's network daemon deletes foreign routes: turn off its route management"
)


def check_routes(kernel: KernelFacts, daemon: DaemonFacts) -> CheckResult:
    """Are the addresses and routes overlayd put on its TAPs still in the kernel? A NAS
    vendor's network daemon is known to delete routes it did not make."""
    name = NAMES[8]
    networks = _with_devices(name, kernel, daemon)
    if isinstance(networks, CheckResult):
        return networks
    problems: list[str] = []
    broken: list[str] = []
    for network in networks:
        found = _missing_on_device(network, network.device or "", kernel)
        problems += found
        broken += [network.nwid] if found else []
    if problems:
        return fail(name, "; ".join(problems), ROUTES_FIX.format(nwid=broken[0]))
    devices = ", ".join(n.device or "" for n in networks)
    return ok(name, f"every address and route overlayd set is in place ({devices})")


def _comparable(
    kernel: KernelFacts,
) -> list[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
    """Addresses that can clash: not loopback, link-local (fe80::/64 is on every link by
    design) or multicast."""
    out = []
    for address in kernel.addresses:
        iface = address.parsed
        ip = iface.ip
        if address.device == "lo" or ip.is_loopback or ip.is_link_local or ip.is_multicast:
            continue
        out.append((address.device, iface))
    return out


def check_addresses(kernel: KernelFacts, daemon: DaemonFacts) -> CheckResult:
    """The same address, or overlapping subnets, on two ztui devices, or on a ztui device
    and another interface: the kernel then sends the traffic to only one of them."""
    name = NAMES[9]
    networks = _with_devices(name, kernel, daemon)
    if isinstance(networks, CheckResult):
        return networks
    ours = {n.device for n in networks}
    addresses = _comparable(kernel)
    clashes: list[str] = []
    seen: set[frozenset[tuple[str, str]]] = set()
    foreign: tuple[str, str] | None = None  # the first clash with a non-ztui interface
    for dev_a, a in addresses:
        if dev_a not in ours:
            continue
        for dev_b, b in addresses:
            pair = frozenset({(dev_a, str(a)), (dev_b, str(b))})
            if dev_b == dev_a or pair in seen or a.version != b.version:
                continue
            if a.ip == b.ip:
                clashes.append(f"{a.ip} is on both {dev_a} and {dev_b}")
            elif a.network.overlaps(b.network):
                clashes.append(f"{a.network} on {dev_a} overlaps {b.network} on {dev_b}")
            else:
                continue
            seen.add(pair)
            if dev_b not in ours and foreign is None:
                foreign = (str(b), dev_b)
    if not clashes:
        devices = ", ".join(sorted(d for d in ours if d))
        return ok(name, f"no address of {devices} clashes with another interface")
    if foreign is None:
        fix = (
            "two networks hand out the same addresses: move one to another pool on its "
            "controller, or `ztui leave` one of them"
        )
    else:
        address, device = foreign
        fix = (
            f"if {address} on {device} is not meant to be there, `sudo ip addr del {address} "
            f"dev {device}`; else move the network to another pool on its controller"
        )
    return fail(name, "; ".join(clashes), fix)
