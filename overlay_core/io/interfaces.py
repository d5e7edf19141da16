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

import psutil

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

WILDCARDS = {"0.0.0.0", "::"}


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
