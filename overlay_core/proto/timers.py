"""The node's clocks: what it does because time passed, and at the protocol events that
reset them.

There are no timer objects: every deadline is a timestamp on the state it concerns (a
path's last_receive, a handshake's last_sent, a peer's pushed_paths_at), and `tick`, run
every TICK_S, does whatever has come due. The methods named after protocol events (as
wireguard-go's timersHandshakeComplete, timersAnyAuthenticatedPacketReceived) are where
the receive side (inbound.py) moves those timestamps and starts what was waiting:

    packet_received     an authenticated, fresh packet came: the path is alive (learned
                        if new), the peer heard from; from a root over UDP, the TCP
                        fallback's clock restarts
    path_confirmed      a challenge sent to a path came back: it may carry traffic
    session_derived     we answered a HELLO: queued packets, our endpoints and the
                        punch rounds that waited for a session go
    handshake_complete  our HELLO was answered: the same, and one probe when nothing was
                        queued, so the responder may start sending on the session

and `tick` runs, in order: the roots we have no session with are HELLOed (backing off),
the TCP fallback opens or closes, the punching tables and hop trace move (punch.py),
each peer's timers run (handshake retries, path probes and MTU searches, forgetting the
silent), and link changes become events.
"""

from __future__ import annotations

from .diagnose import link_of
from .effects import CloseTcp, Effect, Endpoint, Event, OpenTcp, Transport, tcp
from .identity import format_address
from .outbound import Outbound
from .path import LATENCY_PROBE_S, PATH_ALIVE_S, Path
from .peer import Peer
from .punch import Punching
from .states import Link

HANDSHAKE_RETRY_S = 1.0
HANDSHAKE_MAX_ATTEMPTS = 8  # for leaves; roots are retried for ever, with backoff
ROOT_RETRY_MAX_S = 8.0
PUNCH_INTERVAL_S = 0.5  # between the probes of a punch round (punch.PUNCH_PROBES)
TCP_FALLBACK_AFTER_S = 8.0  # no UDP answer from any root for this long: open TCP
TCP_UDP_RETRY_S = 5.0  # while tunneled, still try UDP to the roots this often
PEER_FORGET_S = 600.0


class Timers:
    """The tick and the protocol events that move its clocks; see the module docstring."""

    def __init__(self, out: Outbound, punching: Punching) -> None:
        self._out = out
        self._punching = punching
        self.tcp_wanted: set[Endpoint] = set()  # TCP fallback links we asked io/ to open
        self.last_udp_from_root: float | None = None
        # Per peer, the link (and best path) the last tick saw, to tell changes by.
        self._links: dict[int, tuple[Link, Endpoint | None]] = {}

    # ------------------------------------------------------------------ protocol events

    def start(self, now: float) -> list[Effect]:
        """The node starts: every root gets a HELLO (after a TCP link, when forced)."""
        self._out.started = now
        out: list[Effect] = []
        if self._out.config.force_tcp:
            out += self.want_tcp(now)
        out += self._contact_roots(now, force=True)
        return out

    def packet_received(
        self, peer: Peer, source: Endpoint, hops: int, size: int, now: float, packets: int = 1
    ) -> None:
        """Authenticated, fresh packets (`packets` of them, `size` bytes in all) from `peer`
        arrived from `source` (relayed when `hops`)."""
        peer.last_receive = now
        peer.counters["rx_packets"] += packets
        peer.counters["rx_bytes"] += size
        if hops:
            peer.relay_via = self._out.root_at(source)
            return
        path = self._out.path(peer, source, now)
        if not path.alive(now):
            peer.forget_best_path()  # a path coming (back) to life may be the best one
        if path.is_direct and path.last_receive is None and not peer.is_root:
            peer.punch.replies += 1
        if path.is_direct and not path.alive(now) and path.last_receive is not None:
            path.start_mtu_search(peer.mtu_limit)  # back from the dead: the route may differ
        path.received(size, now, packets)
        if path.confirmed:
            peer.punch.pending.pop(source, None)
            if peer.is_root and source.transport is Transport.UDP:
                self.last_udp_from_root = now

    def path_confirmed(self, peer: Peer, path: Path, now: float) -> None:
        """The peer answered a challenge sent to `path`: it may carry traffic now."""
        if path.confirmed:
            return
        path.confirm()
        peer.forget_best_path()
        peer.punch.pending.pop(path.endpoint, None)
        if peer.is_root and path.is_direct:
            self.last_udp_from_root = now

    def session_derived(self, peer: Peer, now: float) -> list[Effect]:
        """We answered `peer`'s HELLO: what waited for a session goes now."""
        out = self._out.flush(peer, now) + self._out.push_paths(peer, now)
        return out + self._punching.session_up(peer, now)

    def handshake_complete(self, peer: Peer, direct: Endpoint | None, now: float) -> list[Effect]:
        """`peer` answered our HELLO (from `direct`, or relayed: None): what waited for
        the session goes, or one probe on it, so the responder may start sending too."""
        out = self._out.flush(peer, now)
        if not out:
            out = self._out.probe(peer, direct, now)
        out += self._out.push_paths(peer, now)
        return out + self._punching.session_up(peer, now)

    # ------------------------------------------------------------------ the tick

    def tick(self, now: float) -> list[Effect]:
        out = self._contact_roots(now)
        out += self._tcp_fallback(now)
        out += self._punching.tick(now)
        for peer in list(self._out.peers.values()):
            out += self._tick_peer(peer, now)
        out += self._link_events(now)
        return out

    def forget_peer(self, address: int) -> None:
        """Drop a peer and everything kept per peer beside it, here and in the core."""
        self._out.drop_peer(address)
        self._punching.forget(address)
        self._links.pop(address, None)

    def _contact_roots(self, now: float, force: bool = False) -> list[Effect]:
        out: list[Effect] = []
        for address in self._out.roots:
            peer = self._out.peers[address]
            if peer.best_path(now) is not None and peer.tx_session is not None:
                continue
            handshake = peer.handshake
            if handshake is not None and not force:
                backoff = min(ROOT_RETRY_MAX_S, HANDSHAKE_RETRY_S * 2 ** (handshake.attempts - 1))
                if now - handshake.last_sent < backoff:
                    continue
            out += self._out.hello(peer, now, self._out.root_endpoints(peer))
        return out

    def want_tcp(self, now: float) -> list[Effect]:
        """A TCP link to every root (its first IPv4 endpoint) that has none asked for."""
        out: list[Effect] = []
        for entry in self._out.roots.values():
            v4 = [e for e in entry.endpoints if not e.is_ipv6] or list(entry.endpoints)
            endpoint = tcp(v4[0].host, v4[0].port)
            if endpoint not in self.tcp_wanted:
                self.tcp_wanted.add(endpoint)
                out.append(OpenTcp(endpoint))
        return out

    def _tcp_fallback(self, now: float) -> list[Effect]:
        config = self._out.config
        if config.is_root or not self._out.roots or config.force_tcp:
            return []
        if not config.tcp_fallback:
            return []
        last_udp = self.last_udp_from_root
        if not self.tcp_wanted:
            since = last_udp if last_udp is not None else self._out.started
            if now - since > TCP_FALLBACK_AFTER_S:
                event = Event("tcp", "no UDP answer from any root: opening the TCP fallback")
                return [event, *self.want_tcp(now)]
            return []
        if last_udp is not None and now - last_udp < PATH_ALIVE_S:
            out: list[Effect] = [Event("tcp", "UDP to the roots works again: closing TCP")]
            for endpoint in self.tcp_wanted:
                out.append(CloseTcp(endpoint))
                self._out.drop_tcp_paths(endpoint)
            self.tcp_wanted.clear()
            return out
        return []

    def _tick_peer(self, peer: Peer, now: float) -> list[Effect]:
        """One peer's timers: expired sessions and paths go, then a root's duties towards
        a leaf or anyone's towards its peers, then its punch rounds (punch.py)."""
        peer.drop_expired_sessions(now)
        for endpoint, path in list(peer.paths.items()):
            if path.forgettable(now) and endpoint.transport is Transport.UDP:
                del peer.paths[endpoint]
                peer.punch.pending.pop(endpoint, None)
                peer.forget_best_path()
        if self._out.config.is_root and not peer.is_root:
            out = self._root_duties(peer, now)
        else:
            out = self._peer_duties(peer, now)
        if peer.address in self._out.peers and peer.tx_session is not None:
            out += self._punching.tick_peer(peer, now)
        return out

    def _root_duties(self, peer: Peer, now: float) -> list[Effect]:
        """Leaves keep their own NAT mappings open; a root only challenges paths it has
        not confirmed yet (a leaf behind a NAT that changed its mapping) and forgets the
        silent peers."""
        out: list[Effect] = []
        for endpoint, path in list(peer.paths.items()):
            if not path.confirmed and path.needs_probe(now) and peer.tx_session is not None:
                out += self._out.probe(peer, endpoint, now)
        if not peer.paths and now - (peer.last_receive or peer.created) > PEER_FORGET_S:
            self.forget_peer(peer.address)
        return out

    def _peer_duties(self, peer: Peer, now: float) -> list[Effect]:
        out = self._retry_handshake(peer, now)
        if peer.tx_session is None:
            return out
        for endpoint, path in list(peer.paths.items()):
            if endpoint in peer.punch.pending:
                if now - (path.last_probe or 0.0) >= PUNCH_INTERVAL_S:
                    out += self._out.probe(peer, endpoint, now)
            elif path.needs_probe(now):
                out += self._punching.reprobe(peer, path, now)
            if path.is_direct and path.alive(now):
                size = path.next_mtu_probe(now)
                if size is not None:
                    out += self._out.probe_mtu(peer, path, size, now)
        if (
            not peer.is_root
            and peer.best_path(now) is None
            and now - (peer.last_relay_probe or 0.0) >= LATENCY_PROBE_S
        ):
            # A relayed peer: measure the round trip through the root, and keep the root
            # relaying now and then, which makes it introduce us again.
            peer.last_relay_probe = now
            out += self._out.probe(peer, None, now)
        if peer.is_root and self.tcp_wanted and not self._out.config.force_tcp:
            out += self._retry_root_udp(peer, now)
        if not peer.is_root and now - (peer.last_receive or peer.created) > PEER_FORGET_S:
            self.forget_peer(peer.address)
        return out

    def _retry_handshake(self, peer: Peer, now: float) -> list[Effect]:
        """A leaf's unanswered HELLO goes again every HANDSHAKE_RETRY_S, until the
        attempts run out (roots are retried by _contact_roots, for ever)."""
        handshake = peer.handshake
        if handshake is None or peer.is_root or now - handshake.last_sent < HANDSHAKE_RETRY_S:
            return []
        if handshake.attempts < HANDSHAKE_MAX_ATTEMPTS:
            return self._out.hello(peer, now)
        peer.handshake = None
        peer.queue.clear()
        text = (
            f"{format_address(peer.address)} did not answer {handshake.attempts} HELLOs; "
            "giving up until next use"
        )
        return [Event("handshake", text, peer.address)]

    def _retry_root_udp(self, peer: Peer, now: float) -> list[Effect]:
        out: list[Effect] = []
        for endpoint in self._out.roots[peer.address].endpoints:
            path = self._out.path(peer, endpoint, now)
            if now - (path.last_probe or 0.0) >= TCP_UDP_RETRY_S:
                out += self._out.probe(peer, endpoint, now)
        return out

    def _link_events(self, now: float) -> list[Effect]:
        """An event for each peer whose link changed since the last tick (or that is new
        and reachable), and the punch state's note of a direct path lost or back."""
        out: list[Effect] = []
        root_link = self._out.root_link(now)
        for address, peer in self._out.peers.items():
            best = peer.best_path(now)
            link = link_of(peer, root_link, now)
            old = self._links.get(address)
            self._links[address] = (link, best.endpoint if best is not None else None)
            if old is None:
                if link != Link.NONE:
                    out.append(Event("peer", f"{format_address(address)}: new, {link}", address))
                continue
            if old[0] == link:
                continue
            if old[0] == Link.DIRECT:
                peer.punch.last_direct_lost = now
                peer.punch.last_direct_endpoint = old[1]
            elif link == Link.DIRECT:
                peer.punch.last_direct_lost = None
            out.append(Event("link", f"{format_address(address)}: {old[0]} -> {link}", address))
        return out
