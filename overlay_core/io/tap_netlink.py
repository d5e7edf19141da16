"""Netlink (pyroute2) steps behind TapDevice.open() and TapDevice.configure().

Each helper is one kind of change and turns a NetlinkError into a TapError that names it.
They take an AsyncIPRoute, never the synchronous IPRoute: pyroute2 0.9's IPRoute drives
its own event loop with run_until_complete(), which raises "This event loop is already
running" when called from a coroutine or callback of the daemon's loop.

Addresses and routes are synchronised, not just added: the caller keeps the set of those
we installed (`ours`), a helper removes the ones no longer wanted and (re)adds every
wanted one, tolerating "already there". Re-adding all of them, not only the new ones,
repairs drift: the kernel silently drops routes when addresses go away, and an admin may
have run `ip addr flush`. Addresses the kernel made itself (the fe80:: link-local) are
never in `ours`, so they are left alone. `ours` is updated step by step, so after a
failure half way it still says what is installed and the next call can clean it up.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from .tap_contract import TapError, config_error

log = logging.getLogger(__name__)

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Route = tuple[Network, Address | None]

# ifaddrmsg.ifa_flags bit (linux/if_addr.h). The controller hands out unique addresses, so
# IPv6 duplicate address detection would only keep a new address "tentative" (unusable
# for bind()) for a second and send neighbour solicitations across the overlay.
IFA_F_NODAD = 0x02


# ---- desired state: parsing, no netlink ------------------------------------------------


def format_mac(mac: bytes) -> str:
    return ":".join(f"{octet:02x}" for octet in mac)


def check_mac(mac: bytes, name: str) -> None:
    """A TAP needs a 6-byte unicast MAC; the kernel says only EADDRNOTAVAIL otherwise."""
    if len(mac) != 6:
        raise TapError(f"MAC for {name} must be 6 bytes, not {len(mac)}")
    if mac[0] & 0x01:
        raise TapError(f"MAC {format_mac(mac)} for {name} is a multicast address")


def parse_addresses(addresses: Sequence[str], name: str) -> list[Interface]:
    """'10.1.2.3/24' / 'fd00::1/64' strings as ipaddress interfaces, in order, deduplicated."""
    parsed: list[Interface] = []
    for text in addresses:
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            raise TapError(f"bad address {text!r} for {name} (want e.g. 10.147.17.5/24)")
        if iface not in parsed:
            parsed.append(iface)
    return parsed


def parse_routes(routes: Sequence[tuple[str, str | None]], name: str) -> list[Route]:
    """(target CIDR, gateway or None) pairs. Host bits in the target are dropped
    (10.1.2.3/16 means 10.1.0.0/16), as `ip route` does; families must match."""
    parsed: list[Route] = []
    for target, via in routes:
        try:
            net = ipaddress.ip_network(target, strict=False)
            gateway = ipaddress.ip_address(via) if via else None
        except ValueError:
            raise TapError(f"bad route {target} via {via} for {name}")
        if gateway is not None and gateway.version != net.version:
            raise TapError(f"route {net} on {name} has a gateway of the other family: {via}")
        if (net, gateway) not in parsed:
            parsed.append((net, gateway))
    return parsed


def describe_route(route: Route) -> str:
    net, gateway = route
    return f"{net} via {gateway}" if gateway is not None else str(net)


# ---- netlink steps ------------------------------------------------------------------


async def set_link(
    ipr: Any,
    index: int,
    name: str,
    *,
    mtu: int | None = None,
    mac: bytes | None = None,
    alias: str | None = None,
) -> None:
    """One RTM_NEWLINK that sets what is given and brings the link up.

    A TAP accepts a MAC change while up (IFF_LIVE_ADDR_CHANGE), so no down/up dance.
    """
    attrs: dict[str, Any] = {"state": "up"}
    if mtu is not None:
        attrs["mtu"] = mtu
    if mac is not None:
        attrs["address"] = format_mac(mac)
    if alias is not None:
        attrs["ifalias"] = alias  # IFLA_IFALIAS: shown by `ip link` as "alias ..."
    try:
        await ipr.link("set", index=index, **attrs)
    except NetlinkError as exc:
        if exc.code == errno.EINVAL and mtu is not None:
            raise TapError(f"MTU {mtu} rejected for {name} (a TAP takes 68-65521)", exc.code)
        raise config_error(exc.code, name, "set " + _describe_link(mtu, mac, alias))


def _describe_link(mtu: int | None, mac: bytes | None, alias: str | None) -> str:
    parts = ["up"]
    if mtu is not None:
        parts.append(f"MTU {mtu}")
    if mac is not None:
        parts.append(f"MAC {format_mac(mac)}")
    if alias is not None:
        parts.append(f"alias {alias}")
    return ", ".join(parts)


async def sync_addresses(
    ipr: Any, index: int, name: str, ours: set[Interface], wanted: Sequence[Interface]
) -> None:
    """Make the addresses we installed on `index` exactly `wanted`; updates `ours`."""
    for iface in sorted(ours - set(wanted), key=str):
        removal = ipr.addr("del", index=index, address=str(iface.ip), prefixlen=_plen(iface))
        # EADDRNOTAVAIL: already gone, which is what we wanted
        await _change(removal, errno.EADDRNOTAVAIL, name, f"remove address {iface}")
        ours.discard(iface)
    for iface in wanted:
        addition = ipr.addr("add", index=index, **_addr_attrs(iface))
        await _change(addition, errno.EEXIST, name, f"add address {iface}")
        ours.add(iface)


async def _change(request: Awaitable[Any], harmless: int, name: str, what: str) -> bool:
    """Await one netlink change; False if it failed with the `harmless` errno (the state
    is already as wanted), a config_error naming `what` if it failed otherwise."""
    try:
        await request
    except NetlinkError as exc:
        if exc.code != harmless:
            raise config_error(exc.code, name, what) from exc
        return False
    return True


def _plen(iface: Interface) -> int:
    return iface.network.prefixlen


def _addr_attrs(iface: Interface) -> dict[str, Any]:
    attrs: dict[str, Any] = {"address": str(iface.ip), "prefixlen": _plen(iface)}
    if iface.version == 4:
        # `ip addr add` sets no broadcast address unless told `brd +`; LAN discovery
        # protocols that send to x.y.z.255 over the overlay need it.
        if iface.network.prefixlen < 31:
            attrs["broadcast"] = str(iface.network.broadcast_address)
    else:
        attrs["flags"] = IFA_F_NODAD
    return attrs


async def remove_routes(
    ipr: Any, index: int, name: str, ours: set[Route], wanted: Sequence[Route]
) -> None:
    """Delete the routes in `ours` that are not `wanted`; updates `ours`.

    Deleting always names our oif, so it can only ever remove a route through our device.
    """
    for route in sorted(ours - set(wanted), key=describe_route):
        removal = ipr.route("del", oif=index, **_route_attrs(route))
        # ESRCH: the kernel already dropped it
        await _change(removal, errno.ESRCH, name, f"remove route {describe_route(route)}")
        ours.discard(route)


async def add_routes(
    ipr: Any, index: int, name: str, ours: set[Route], wanted: Sequence[Route]
) -> None:
    """Install every `wanted` route via `index`; updates `ours`.

    "add", not "replace": replace would silently take over a route to the same prefix
    that the host has through another interface. If such a route exists the add fails
    with EEXIST; we log it and leave the host's route alone.
    """
    for route in wanted:
        addition = ipr.route("add", oif=index, **_route_attrs(route))
        text = describe_route(route)
        if not await _change(addition, errno.EEXIST, name, f"add route {text}"):
            if route not in ours:
                log.warning("route %s exists already, maybe not via %s", text, name)
        ours.add(route)


def _route_attrs(route: Route) -> dict[str, Any]:
    net, gateway = route
    # pyroute2 splits "a.b.c.d/len" into dst and dst_len and derives the family from it.
    attrs: dict[str, Any] = {"dst": str(net)}
    if gateway is not None:
        attrs["gateway"] = str(gateway)
    return attrs
