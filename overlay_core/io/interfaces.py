"""Which of this machine's addresses we tell peers about as direct paths.

Peers learn our LAN addresses through PUSH_DIRECT_PATHS and try them before anything NAT
punched, which is how two machines on one LAN end up DIRECT without ever touching a root.
Advertising an address the peer cannot reach (a docker bridge, a VPN tunnel) only costs a
few wasted probes, but advertising loopback would make every peer on this host look
direct, so the policy is:

1. bound to specific addresses: exactly those (that's all the sockets can answer on);
2. else `--advertise CIDR ...` given: interface addresses inside one of those networks;
3. else: every non-loopback, non-link-local interface address.

`select_advertised` is pure so the policy is tested without real interfaces.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from pathlib import Path

import psutil

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

WILDCARDS = {"0.0.0.0", "::"}
DEFAULT_LINK_MTU = 1500
JUMBO_LINK_MTU = 9000
_DATAGRAM_OVERHEAD = 40 + 8 + 20  # IPv6, UDP, margin: 1500 -> 1432 (DEFAULT_PHYS_MTU)


def parse_networks(texts: Iterable[str]) -> list[IPNetwork]:
    """Parse `10.0.0.0/8`, `192.168.1.7` (a /32) or `fd00::/8`; ValueError names the bad one."""
    networks: list[IPNetwork] = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--advertise {text!r}: expected an IP address or CIDR") from None
    return networks


def interface_addresses() -> list[str]:
    """All IPv4 and IPv6 addresses configured on this machine's interfaces."""
    found: list[str] = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                # psutil reports scoped IPv6 as "fe80::1%eth0"; the scope is not an address.
                found.append(addr.address.split("%", 1)[0])
    return found


def interface_mtus() -> list[int]:
    """The MTUs of this machine's interfaces that can carry our datagrams: up, and neither
    loopback (its 64 KiB says nothing about a path to a peer) nor a TUN/TAP device (our
    own networks' TAPs, MTU 2800 by default, never carry the datagrams that make them)."""
    return [
        stats.mtu
        for name, stats in psutil.net_if_stats().items()
        if stats.isup
        and "loopback" not in stats.flags.split(",")
        and not Path(f"/sys/class/net/{name}/tun_flags").exists()
    ]


def phys_mtu_from(mtus: Iterable[int]) -> int:
    """The largest datagram (UDP payload) a path MTU search may try: the largest interface
    MTU less IPv6 and UDP headers (48) and a 20-byte margin for tunnels on the way, as the
    1500-byte default keeps (1432). Never below that default, which has always been the
    search ceiling (a smaller link is found by the search), and never above a 9000-byte
    jumbo frame's (8932): larger MTUs are virtual devices, not paths to peers."""
    largest = min(max(mtus, default=DEFAULT_LINK_MTU), JUMBO_LINK_MTU)
    return max(largest, DEFAULT_LINK_MTU) - _DATAGRAM_OVERHEAD


def select_advertised(
    candidates: Iterable[str],
    binds: Iterable[str],
    advertise: Iterable[IPNetwork] | None,
    *,
    ipv6: bool = True,
) -> list[str]:
    """Apply the policy in the module docstring; returns unique addresses in input order."""
    specific = [b for b in binds if b not in WILDCARDS]
    if specific:
        return list(dict.fromkeys(specific))
    networks = list(advertise) if advertise is not None else None
    chosen: list[str] = []
    for text in candidates:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if ip.version == 6 and not ipv6:
            continue
        if networks is not None:
            if not any(ip in net for net in networks):
                continue
        elif ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
            continue
        chosen.append(str(ip))
    return list(dict.fromkeys(chosen))
