"""Virtual L2 networks, member side: join, configuration, credentials, frames.

How a member gets on a network
------------------------------
1. `join(nwid)` asks the I/O layer for a TAP port (OpenPort) and sends
   NETWORK_CONFIG_REQUEST to the network's controller (the node whose address is the top
   40 bits of the network id). The network is REQUESTING_CONFIGURATION.
2. The controller answers NETWORK_CONFIG (a config signed with its identity) or an ERROR:
   ACCESS_DENIED (a private network that hasn't approved us yet; we keep asking, and an
   approval is pushed to us at once) or NOT_FOUND. A config makes the network OK and the
   I/O layer puts its MTU, addresses and routes on the port (ConfigurePort), filtered by
   the member's allowManaged / allowGlobal / allowDefault settings.
3. Frames: a frame read from the TAP passes the flow rules and MSS clamping, and the
   switch picks the members it goes to. Before the first frame to a member we send it our
   certificate of membership (CREDENTIALS); a member accepts frames only from senders in
   its config's member list whose certificate the controller signed and agrees in time
   with its own. A deauthorized member vanishes from the list the controller pushes to
   everyone, so its frames are refused from that moment.

The controller side lives in overlay_core.controller (SQLite); the node only forwards
requests to it through the ConfigRequest effect and sends back what it answers, so this
package stays free of I/O.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

from .ethernet import mac_for
from .mss import clamp_mss, clamp_mss_to_mtu
from .netconf import CertificateOfMembership, NetworkConfig
from .rules import RuleSet
from .states import NetworkState
from .switch import SwitchTable

REQUEST_RETRY_S = 2.0  # while REQUESTING_CONFIGURATION
DENIED_RETRY_S = 10.0  # while ACCESS_DENIED / NOT_FOUND (approvals are pushed anyway)
CONFIG_REFRESH_S = 60.0  # while OK: keeps the certificate of membership fresh
CREDENTIALS_RESEND_S = 60.0
NEED_CREDENTIALS_EVERY_S = 1.0  # at most one NEED_CREDENTIALS per sender per second
DEFAULT_MTU = 2800
# Bytes a frame costs on the wire beyond itself: packet header (20), verb (1), network id
# (8), AEAD tag (16). The largest frame a path carries whole is its MTU minus this.
FRAME_OVERHEAD = 20 + 1 + 8 + 16
ETHERNET_HEADER = 14


@dataclass(slots=True)
class NetworkSettings:
    """What the member allows a controller to do to this machine (ZeroTier's allow*)."""

    allow_managed: bool = True  # addresses and routes from the controller
    allow_global: bool = False  # ...even public (global) ones
    allow_default: bool = False  # ...even a default route
    mtu: int | None = None  # local override of the network's MTU
    mss: str | None = None  # local override: "off", "auto" or "fixed:N"
    report: bool = True  # send path reports to the controller (reporting.py)

    def to_json(self) -> dict[str, object]:
        return {
            "report": self.report,
            "allow_managed": self.allow_managed,
            "allow_global": self.allow_global,
            "allow_default": self.allow_default,
            "mtu": self.mtu,
            "mss": self.mss,
        }


@dataclass(frozen=True, slots=True)
class PortConfig:
    """What the TAP device should look like; the I/O layer makes it so."""

    mtu: int
    addresses: tuple[str, ...]
    routes: tuple[tuple[str, str | None], ...]


@dataclass(slots=True)
class Network:
    nwid: int
    address: int  # this node
    settings: NetworkSettings
    state: NetworkState = NetworkState.REQUESTING_CONFIGURATION
    config: NetworkConfig | None = None
    port_error: str | None = None
    last_request: float | None = None
    last_config: float | None = None
    coms: dict[int, CertificateOfMembership] = field(default_factory=dict)
    com_sent: dict[int, float] = field(default_factory=dict)
    need_credentials_sent: dict[int, float] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    rules: RuleSet = field(default_factory=lambda: RuleSet([]))
    switch: SwitchTable | None = None
    applied: PortConfig | None = None
    # Built once per config: every frame asks "is this a member / a bridge?".
    member_set: frozenset[int] = frozenset()
    bridge_set: frozenset[int] = frozenset()
    # The port was opened with offloads (virtio_net_hdr on every read and write).
    offload: bool = False

    def __post_init__(self) -> None:
        self.switch = SwitchTable(self.nwid)

    @property
    def mac(self) -> bytes:
        return mac_for(self.nwid, self.address)

    @property
    def mtu(self) -> int:
        if self.settings.mtu is not None:
            return self.settings.mtu
        return self.config.mtu if self.config is not None else DEFAULT_MTU

    @property
    def mss_policy(self) -> str:
        if self.settings.mss is not None:
            return self.settings.mss
        return str(self.config.mss) if self.config is not None else "off"

    def members(self) -> frozenset[int]:
        return self.member_set

    def bridges(self) -> frozenset[int]:
        return self.bridge_set

    def request_due(self, now: float) -> bool:
        if self.state is NetworkState.PORT_ERROR:
            return False
        if self.last_request is None:
            return True
        interval = {
            NetworkState.REQUESTING_CONFIGURATION: REQUEST_RETRY_S,
            NetworkState.OK: CONFIG_REFRESH_S,
        }.get(self.state, DENIED_RETRY_S)
        return now - self.last_request >= interval

    def apply_config(self, config: NetworkConfig, now: float) -> None:
        self.config = config
        # Without its TAP the network can carry nothing: the port error stays the state
        # the user sees (with its reason) until they leave and join again.
        if self.state is not NetworkState.PORT_ERROR:
            self.state = NetworkState.OK
        self.last_config = now
        self.rules = _carry_counters(self.rules, RuleSet(config.rules))
        self.com_sent.clear()  # our certificate changed: peers need the new one
        self.member_set = config.member_addresses()
        self.bridge_set = frozenset(m.address for m in config.members if m.active_bridge)
        self.coms = {a: c for a, c in self.coms.items() if a in self.member_set}

    def deny(self, state: NetworkState) -> None:
        if self.state is not NetworkState.PORT_ERROR:  # see apply_config
            self.state = state
        self.config = None
        self.member_set = self.bridge_set = frozenset()
        self.coms.clear()
        self.com_sent.clear()

    def port_config(self) -> PortConfig:
        """The TAP's MTU, addresses and routes, after the member's allow* settings."""
        if self.config is None or not self.settings.allow_managed:
            return PortConfig(self.mtu, (), ())
        addresses = tuple(a for a in self.config.assigned_ips if self._allowed(a))
        routes = tuple((target, via) for target, via in self.config.routes if self._allowed(target))
        return PortConfig(self.mtu, addresses, routes)

    def _allowed(self, cidr: str) -> bool:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return False
        if network.prefixlen == 0:
            return self.settings.allow_default
        if network.network_address.is_global:
            return self.settings.allow_global
        return True

    def clamp(self, frame: bytes, path_mtu: int | None) -> bytes:
        """TCP MSS clamping per the policy; `path_mtu` is the datagram size to the peer."""
        policy = self.mss_policy
        if policy == "off":
            return frame
        if policy.startswith("fixed:"):
            return clamp_mss(frame, int(policy.split(":", 1)[1]))
        # auto: a full-sized TCP segment must fit one datagram on this path
        largest = self.mtu
        if path_mtu is not None:
            largest = min(largest, path_mtu - FRAME_OVERHEAD - ETHERNET_HEADER)
        return clamp_mss_to_mtu(frame, largest)


def _carry_counters(old: RuleSet, new: RuleSet) -> RuleSet:
    """Keep drop counts across config revisions when the rule list is unchanged."""
    if len(old.counters) == len(new.counters) and old.rules == new.rules:
        return old
    return new
