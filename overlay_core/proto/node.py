"""The node state machine: datagrams and timer ticks in, effects out.

How it works
------------
Every node has an identity and a list of roots. At start it sends HELLO to each root;
the OK carries the root's ephemeral key (a session with forward secrecy) and the
endpoint the root saw us at. From then on the node keeps every path it knows alive with
ECHO probes (path.py, on timers.py's tick), and everything else rides on sessions:

1. To talk to address X the node needs X's identity: it asks a root (WHOIS) unless it
   already knows it, queueing what it wanted to send.
2. With the identity it sends HELLO: through a root if it has no direct path (the root
   relays it), otherwise directly. HELLO and its OK are sealed with the static
   identity-to-identity key; everything after is sealed with the session key.
3. A root tells two UDP nodes where the other is (RENDEZVOUS) as soon as one asks for
   the other (WHOIS), and again while it relays between them. Both then punch in an
   order every common NAT lets through (punch.py: a low-TTL opener, PUNCH through the
   root, then probes); the first authenticated packet that arrives directly makes that
   path alive and preferred.
4. When no direct path is alive, traffic goes through a root (RELAY, or TCP when the
   node reaches its roots only over the TCP fallback), and the node keeps probing the
   direct endpoints it knows so it returns to DIRECT as soon as they answer.

Nothing here reads a clock, touches a socket or draws randomness except through
`random_bytes`; all time comes in as `now` (seconds, wall clock).

How the code is laid out
------------------------
`Node` is the facade the I/O layer and the API call: it owns the node's parts, wires them
together and keeps the public methods below. None of the parts inherits another; each
holds the ones it uses:

    outbound.Outbound      the core: peers, roots, keys; routing, sealing, HELLO, WHOIS,
                           probes (every other part sends through it)
    inbound.Inbound        opening packets and dispatching their verbs
    timers.Timers          the tick, and the protocol events that move its clocks
    punch.Punching         punch rounds, the hop trace, ICMP errors
    relay.Relay            a root's forwarding and introductions
    membership.Memberships virtual networks (through the sender.Sender protocol)
    reporting.Reporter     path reports to a network's controller (the same)
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from . import wire
from .datapath import RxBatch, merge_sends, receive_batch
from .diagnose import infer_nat, link_of, peer_status
from .effects import Effect, Endpoint, NodeStatus, Transport
from .hops import HopTrace
from .identity import Identity, format_address
from .inbound import Inbound
from .membership import Memberships
from .outbound import EchoWait, NodeConfig, Outbound
from .path import PMTU_MIN
from .peer import Learned, LearnedFrom, Peer
from .punch import Punching
from .relay import Relay
from .reporting import Reporter
from .roots import RootEntry, replace_roots
from .states import Link
from .timers import Timers
from .vnet import NetworkSettings
from .wire import Verb

__all__ = ["TICK_S", "NetworkSettings", "Node", "NodeConfig"]

TICK_S = 0.25
IPV4_HEADER_BYTES = 20  # without options, which we never send
IPV6_HEADER_BYTES = 40
UDP_HEADER_BYTES = 8


T = TypeVar("T")


class _CoreTable(Generic[T]):
    """A Node attribute that is Outbound's of the same name, read-only: assigning raises
    (AttributeError), so a test or the I/O layer cannot give the Node a table the parts
    do not share."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, node: Node, owner: type | None = None) -> T:
        return cast(T, getattr(node.outbound, self.name))

    def __set__(self, node: Node, value: T) -> None:
        raise AttributeError(f"Node.{self.name} is Outbound's: set node.outbound.{self.name}")


class Node:
    """One overlay node: datagrams, frames and ticks in, effects out (module docstring)."""

    def __init__(
        self,
        identity: Identity,
        config: NodeConfig,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.outbound = out = Outbound(identity, config, random_bytes)
        self.punching = Punching(out)
        self.relay = Relay(out)
        self.timers = Timers(out, self.punching)
        self.memberships = Memberships(out)
        self.reporter = Reporter(out, self.memberships)
        self.inbound = Inbound(
            out, self.timers, self.punching, self.relay, self.memberships, self.reporter
        )
        for root in out.roots.values():
            out.peer(root.identity, 0.0).is_root = True

    # The core's tables, as the I/O layer, the API and tests read them: read-only views of
    # Outbound's own, so that nothing can rebind one here and leave the parts on the old.
    identity: _CoreTable[Identity] = _CoreTable()
    address: _CoreTable[int] = _CoreTable()
    config: _CoreTable[NodeConfig] = _CoreTable()
    peers: _CoreTable[dict[int, Peer]] = _CoreTable()
    roots: _CoreTable[dict[int, RootEntry]] = _CoreTable()
    observed: _CoreTable[dict[int, Endpoint]] = _CoreTable()
    counters: _CoreTable[Counter[str]] = _CoreTable()
    drops: _CoreTable[Counter[str]] = _CoreTable()
    hops: _CoreTable[HopTrace] = _CoreTable()

    # ------------------------------------------------------------------ running

    def start(self, now: float) -> list[Effect]:
        return self.timers.start(now)

    def tick(self, now: float) -> list[Effect]:
        # What only ages goes first (it sends nothing), then the protocol's timers.
        self.inbound.expire(now)
        self.relay.expire(now)
        self.outbound.expire(now)
        out = self.timers.tick(now)
        out += self.memberships.tick(now)
        out += self.reporter.tick(now)
        return out

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> list[Effect]:
        return self.inbound.receive_datagram(data, source, now)

    def receive_datagrams(
        self, datagrams: list[bytes], source: Endpoint, now: float
    ) -> list[Effect]:
        """A batch from one source (a GRO read): the frames it delivers reach each TAP in
        one DeliverFrames, coalesced into super-frames where the port has offloads."""
        self.memberships.batch = batch = RxBatch()
        try:
            out = receive_batch(self, datagrams, source, now)
        finally:
            self.memberships.batch = None
        if self.config.is_root:
            out = merge_sends(out)
        return out + batch.effects()

    def set_roots(self, entries: list[RootEntry], now: float) -> list[Effect]:
        """Replace the roots at run time (PUT /roots): new roots get a HELLO now, removed
        ones are forgotten with their TCP links; roots.py's docstring has the details."""
        return replace_roots(self, entries, now)

    def set_local_endpoints(self, endpoints: list[Endpoint]) -> None:
        self.config.local_endpoints = list(endpoints)

    def tcp_up(self, endpoint: Endpoint, now: float) -> list[Effect]:
        self.outbound.tcp_up.add(endpoint)
        root = self.outbound.root_at(endpoint)
        if root is None:
            return []
        return self.outbound.hello(self.peers[root], now, [endpoint])

    def tcp_down(self, endpoint: Endpoint, now: float) -> list[Effect]:
        """The TCP link at `endpoint` closed: the paths over it go (nothing to send)."""
        self.outbound.drop_tcp_paths(endpoint)
        return []

    def authenticated_from(self, endpoint: Endpoint) -> bool:
        """True once some peer has a path at `endpoint` that carried an authenticated packet
        (only those set a path's last_receive). The I/O layer asks this of a new inbound TCP
        link to tell a real peer from a stranger; O(peers), so it asks only until it is."""
        for peer in self.peers.values():
            path = peer.paths.get(endpoint)
            if path is not None and path.last_receive is not None:
                return True
        return False

    # ------------------------------------------------------------------ peers and paths

    def send_user_data(self, dest: int, payload: bytes, now: float) -> list[Effect]:
        return self.outbound.send_to_address(dest, Verb.USER_DATA, payload, now)

    def echo(self, dest: int, now: float) -> tuple[int, list[Effect]]:
        echo_id = self.outbound.expect_echo(EchoWait(dest, now, user=True))
        payload = wire.echo_request(echo_id, int(now * 1e6))
        return echo_id, self.outbound.send_to_address(dest, Verb.ECHO, payload, now)

    def retry_direct(self, address: int, now: float) -> list[Effect]:
        """Punch again now: every known direct endpoint of the peer gets a fresh burst of
        probes, ignoring the back-off, and a packet through the root asks it to introduce
        us again. Raises KeyError for an unknown peer."""
        peer = self.peers[address]
        out: list[Effect] = []
        retry = Learned(LearnedFrom.RETRY)
        for endpoint, path in peer.paths.items():
            if path.is_direct and not path.alive(now):
                path.last_burst = None
                how = peer.punch.learned.get(endpoint, retry)
                out += self.punching.punch(peer, endpoint, how, now)
        if not peer.is_root:
            out += self.outbound.probe(peer, None, now)  # relayed: the root RENDEZVOUSes
        return out

    def probe_mtu(self, address: int, now: float) -> list[Effect]:
        """Start a new path MTU search on every live direct path of the peer (KeyError if
        unknown); the results show in the peer's paths within seconds."""
        peer = self.peers[address]
        out: list[Effect] = []
        for path in peer.paths.values():
            if path.is_direct and path.alive(now):
                path.start_mtu_search(peer.mtu_limit)
                size = path.next_mtu_probe(now)
                if size is not None:
                    out += self.outbound.probe_mtu(peer, path, size, now)
        return out

    def set_phys_mtu(self, phys_mtu: int) -> None:
        """The largest datagram worth searching for changed (an interface's MTU did):
        every direct path's next search goes up to it."""
        if phys_mtu == self.config.phys_mtu:
            return
        self.config.phys_mtu = phys_mtu
        for peer in self.peers.values():
            peer.mtu_limit = phys_mtu
            for path in peer.paths.values():
                if path.is_direct:
                    path.mtu_limit = max(phys_mtu, PMTU_MIN)

    def path_mtu_hint(self, endpoint: Endpoint, link_mtu: int, now: float) -> list[Effect]:
        """A router says IP packets above `link_mtu` bytes do not fit on the way to
        `endpoint` (ICMP "fragmentation needed" / ICMPv6 "packet too big" for one of our
        datagrams, read by the I/O layer). Every direct path at `endpoint` is lowered to the
        UDP payload that fits, never below PMTU_MIN and never upward: the ICMP is not
        authenticated (path.py). Unknown endpoints are ignored."""
        self.counters["pmtu_icmp_hints"] += 1
        if endpoint.transport is not Transport.UDP:
            return []
        ip_header = IPV6_HEADER_BYTES if endpoint.is_ipv6 else IPV4_HEADER_BYTES
        size = link_mtu - ip_header - UDP_HEADER_BYTES
        for peer in self.peers.values():
            path = peer.paths.get(endpoint)
            if path is not None and path.mtu_lowered_to(size, now):
                self.counters["pmtu_icmp_lowered"] += 1
        return []

    def icmp_error(
        self, kind: str, endpoint: Endpoint, offender: str | None, now: float
    ) -> list[Effect]:
        """An ICMP error for a datagram we sent to `endpoint` (punch.py has the kinds)."""
        return self.punching.icmp_error(kind, endpoint, offender, now)

    # ------------------------------------------------------------------ virtual networks

    def join(self, nwid: int, now: float, settings: NetworkSettings | None = None) -> list[Effect]:
        return self.memberships.join(nwid, settings or NetworkSettings(), now)

    def leave(self, nwid: int, now: float) -> list[Effect]:
        return self.memberships.leave(nwid, now)

    def set_network_settings(self, nwid: int, settings: NetworkSettings) -> list[Effect]:
        """Raises KeyError for a network this node has not joined."""
        return self.memberships.set_settings(nwid, settings)

    def port_failed(self, nwid: int, reason: str) -> list[Effect]:
        """The I/O layer could not create or configure the TAP device of `nwid`."""
        return self.memberships.port_failed(nwid, reason)

    def port_opened(self, nwid: int, offload: bool) -> list[Effect]:
        """The TAP of `nwid` is open; `offload`: it reads and writes virtio_net_hdrs."""
        self.memberships.port_opened(nwid, offload)
        return []

    def receive_frame(self, nwid: int, frame: bytes, now: float) -> list[Effect]:
        """An Ethernet frame read from the TAP device of `nwid`."""
        return self.memberships.receive_frame(nwid, frame, now)

    def receive_frames(self, nwid: int, frames: list[bytes], now: float) -> list[Effect]:
        """A batch of reads from the TAP of `nwid` (each with its virtio_net_hdr on a port
        opened with offloads, see port_opened); super-frames leave as segments."""
        return self.memberships.receive_frames(nwid, frames, now)

    def answer_config_request(
        self, nwid: int, member: int, reply: bytes | str, now: float
    ) -> list[Effect]:
        """What the controller answered a ConfigRequest (or wants pushed to a member):
        signed config bytes, or a denial: NetworkState.ACCESS_DENIED / NOT_FOUND."""
        return self.memberships.answer_config_request(nwid, member, reply, now)

    # ------------------------------------------------------------------ status

    def snapshot(self, now: float) -> NodeStatus:
        nat = infer_nat(self.observed, self.config.local_endpoints)
        root_link = self.outbound.root_link(now)
        tunneled = root_link == Link.TCP
        reachable = sum(1 for a in self.roots if self.peers[a].best_path(now) is not None)
        names = self.memberships.names()
        peers = [
            peer_status(
                p,
                link_of(p, root_link, now),
                nat,
                tunneled,
                now,
                p.is_root,
                names.get(p.address),
            )
            for p in sorted(self.peers.values(), key=lambda p: p.address)
        ]
        return NodeStatus(
            address=format_address(self.address),
            version=self.config.version,
            online=reachable > 0 or (self.config.is_root and not self.roots),
            tunneled=tunneled,
            is_root=self.config.is_root,
            roots_reachable=reachable,
            roots_total=len(self.roots),
            external_endpoints=sorted({str(e) for e in self.observed.values()}),
            nat=nat,
            uptime_s=round(max(0.0, now - self.outbound.started), 3),
            counters=dict(self.counters),
            drops=dict(self.drops),
            peers=peers,
            networks=self.memberships.status(now),
        )
