"""The node state machine: datagrams and timer ticks in, effects out.

How it works
------------
Every node has an identity and a list of roots. At start it sends HELLO to each root;
the OK carries the root's ephemeral key (a session with forward secrecy) and the
endpoint the root saw us at. From then on the node keeps every path it knows alive with
ECHO probes (paths.py), and everything else rides on sessions:

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
"""

from __future__ import annotations

from collections.abc import Callable

from . import crypto, wire
from .crypto import EphemeralKey, Session, derive_session, ephemeral_dh, open_, static_key
from .datapath import RxBatch, merge_sends, receive_batch
from .diagnose import infer_nat, link_of, peer_status
from .effects import (
    Deliver,
    EchoFailed,
    EchoReply,
    Effect,
    Endpoint,
    Event,
    NodeStatus,
    Send,
    Transport,
)
from .identity import Identity, address_is_cached, derive_address, format_address
from .outbound import ECHO_TIMEOUT_S, HANDSHAKE_RETRY_S, EchoWait, NodeConfig, _u
from .path import PMTU_MIN
from .peer import Peer
from .punch import Punching
from .roots import RootEntry, replace_roots
from .vnet import NetworkSettings
from .wire import Cipher, MalformedError, Reader, Verb

__all__ = ["TICK_S", "NetworkSettings", "Node", "NodeConfig"]

TICK_S = 0.25
IPV4_HEADER_BYTES = 20  # without options, which we never send
IPV6_HEADER_BYTES = 40
UDP_HEADER_BYTES = 8


class Node(Punching):
    # ------------------------------------------------------------------ public API

    def start(self, now: float) -> list[Effect]:
        self._started = now
        out: list[Effect] = []
        if self.config.force_tcp:
            out += self._want_tcp(now)
        out += self._contact_roots(now, force=True)
        return out

    def set_roots(self, entries: list[RootEntry], now: float) -> list[Effect]:
        """Replace the roots at run time (PUT /roots): new roots get a HELLO now, removed
        ones are forgotten with their TCP links; roots.py's docstring has the details."""
        return replace_roots(self, entries, now)

    def set_local_endpoints(self, endpoints: list[Endpoint]) -> None:
        self.config.local_endpoints = list(endpoints)

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

    def send_user_data(self, dest: int, payload: bytes, now: float) -> list[Effect]:
        return self._send_to_address(dest, Verb.USER_DATA, payload, now)

    def echo(self, dest: int, now: float) -> tuple[int, list[Effect]]:
        echo_id = self._expect_echo(EchoWait(dest, now, user=True))
        payload = wire.echo_request(echo_id, int(now * 1e6))
        return echo_id, self._send_to_address(dest, Verb.ECHO, payload, now)

    def retry_direct(self, address: int, now: float) -> list[Effect]:
        """Punch again now: every known direct endpoint of the peer gets a fresh burst of
        probes, ignoring the back-off, and a packet through the root asks it to introduce
        us again. Raises KeyError for an unknown peer."""
        peer = self.peers[address]
        out: list[Effect] = []
        for endpoint, path in peer.paths.items():
            if path.is_direct and not path.alive(now):
                path.last_burst = None
                out += self._punch(peer, endpoint, peer.punch.learned.get(endpoint, "retry"), now)
        if not peer.is_root:
            out += self._probe(peer, None, now)  # relayed: the root sees it and RENDEZVOUSes
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
                    out += self._probe_mtu(peer, path, size, now)
        return out

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

    # -- virtual networks (membership.py, vnet.py)

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

    def receive_frame(self, nwid: int, frame: bytes, now: float) -> list[Effect]:
        """An Ethernet frame read from the TAP device of `nwid`."""
        return self.memberships.receive_frame(nwid, frame, now)

    def receive_frames(self, nwid: int, frames: list[bytes], now: float) -> list[Effect]:
        """A batch of reads from the TAP of `nwid` (each with its virtio_net_hdr on a port
        opened with offloads, see port_opened); super-frames leave as segments."""
        return self.memberships.receive_frames(nwid, frames, now)

    def port_opened(self, nwid: int, offload: bool) -> list[Effect]:
        """The TAP of `nwid` is open; `offload`: it reads and writes virtio_net_hdrs."""
        self.memberships.port_opened(nwid, offload)
        return []

    def answer_config_request(
        self, nwid: int, member: int, reply: bytes | str, now: float
    ) -> list[Effect]:
        """What the controller answered a ConfigRequest (or wants pushed to a member):
        signed config bytes, or "ACCESS_DENIED" / "NOT_FOUND"."""
        return self.memberships.answer_config_request(nwid, member, reply, now)

    def tcp_up(self, endpoint: Endpoint, now: float) -> list[Effect]:
        self._tcp_up.add(endpoint)
        root = self._root_at(endpoint)
        if root is None:
            return []
        return self._hello(self.peers[root], now, [endpoint])

    def tcp_down(self, endpoint: Endpoint, now: float) -> list[Effect]:
        return self.tcp_down_paths(endpoint)

    def authenticated_from(self, endpoint: Endpoint) -> bool:
        """True once some peer has a path at `endpoint` that carried an authenticated packet
        (only those set a path's last_receive). The I/O layer asks this of a new inbound TCP
        link to tell a real peer from a stranger; O(peers), so it asks only until it is."""
        for peer in self.peers.values():
            path = peer.paths.get(endpoint)
            if path is not None and path.last_receive is not None:
                return True
        return False

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> list[Effect]:
        self.counters["rx_packets"] += 1
        self.counters["rx_bytes"] += len(data)
        if len(data) < wire.HEADER_BYTES:
            self.drops["malformed"] += 1
            return []
        if wire.source_of(data) == self.address:
            # Forged (or looped back): never a peer, never a WHOIS or handshake with ourself.
            self.drops["from_self"] += 1
            return []
        if wire.dest_of(data) != self.address:
            if self.config.is_root:
                return self._forward(data, source, now)
            self.drops["not_for_us"] += 1
            return []
        try:
            if wire.is_fragment(data):
                packet = self._reassembler.add_fragment(wire.parse_fragment(data), now)
            elif data[18] & wire.FLAG_FRAGMENTED:
                packet = self._reassembler.add_head(wire.source_of(data), _u(data[:8]), data, now)
            else:
                packet = data
            if packet is None:
                return []
            return self._receive_packet(packet, source, now)
        except MalformedError:
            self.drops["malformed"] += 1
            return []

    def receive_datagrams(
        self, datagrams: list[bytes], source: Endpoint, now: float
    ) -> list[Effect]:
        """A batch from one source (a GRO read): the frames it delivers reach each TAP in
        one DeliverFrames, coalesced into super-frames where the port has offloads."""
        self._rx_batch = batch = RxBatch()
        try:
            out = receive_batch(self, datagrams, source, now)
        finally:
            self._rx_batch = None
        if self.config.is_root:
            out = merge_sends(out)
        return out + batch.effects()

    def tick(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        self._reassembler.expire(now)
        self._relay.expire(now)
        self._admission.rotate(self._random, now)
        self._admission.expire(now)
        self._rehandshakes.expire(now)
        self._pushes.expire(now)
        for echo_id in [i for i, w in self._echoes.items() if now - w.sent > ECHO_TIMEOUT_S]:
            del self._echoes[echo_id]
        for address in [a for a, t in self._whois.items() if now - t > 30.0]:
            self._whois.pop(address, None)
            self._whois_queue.pop(address, None)
        out += self._contact_roots(now)
        out += self._tcp_fallback(now)
        out += self._tick_punching(now)
        for peer in list(self.peers.values()):
            out += self._tick_peer(peer, now)
        out += self._link_events(now)
        out += self.memberships.tick(now)
        out += self.reporter.tick(self, now)
        return out

    def snapshot(self, now: float) -> NodeStatus:
        nat = infer_nat(self.observed, self.config.local_endpoints)
        root_link = self._root_link(now)
        tunneled = root_link == "TCP"
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
            uptime_s=round(max(0.0, now - self._started), 3),
            counters=dict(self.counters),
            drops=dict(self.drops),
            peers=peers,
            networks=self.memberships.status(now),
        )

    # ------------------------------------------------------------------ receiving

    def _receive_packet(self, packet: bytes, source: Endpoint, now: float) -> list[Effect]:
        """Authenticate, check freshness, then learn from and dispatch one whole packet.

        A path is learned only from a packet that authenticated and is fresh: session
        packets pass the replay window here, HELLOs their timestamp and OK(HELLO)s their
        handshake's packet id in the handlers, which call `_heard` only after that."""
        header = wire.parse_header(packet)
        if header.cipher is Cipher.COOKIE:
            return self._on_cookie_reply(packet, source, now)
        head = packet[: wire.HEADER_BYTES]
        session: Session | None = None
        if header.cipher is Cipher.HELLO:
            opened = self._open_hello(header, packet, source, now)
            if isinstance(opened, list):
                return opened
            peer, plain = opened
        else:
            known = self.peers.get(header.source)
            if known is None:
                self.drops["unknown_peer"] += 1
                return self._whois_for(header.source, now, unsolicited=True)
            peer = known
            ad, body = wire.associated_data(head), packet[wire.HEADER_BYTES :]
            if header.cipher is Cipher.STATIC:
                plain = open_(self._static_key(peer), head, ad, body)
            else:
                session = peer.sessions.get(header.key_id)
                if session is None or session.expired(now):
                    self.drops["unknown_session"] += 1
                    return self._rehandshake(peer, now)
                if not session.replay.check(header.packet_id):
                    self.drops["replay"] += 1
                    return []
                plain = session.open(head, ad, body)
        if plain is None or not plain:
            self.drops["bad_mac" if plain is None else "malformed"] += 1
            return []
        return self._dispatch(peer, header, session, plain, len(packet), source, now)

    def _dispatch(
        self,
        peer: Peer,
        header: wire.Header,
        session: Session | None,
        plain: bytes,
        size: int,
        source: Endpoint,
        now: float,
    ) -> list[Effect]:
        """An authenticated packet of `size` bytes (replay-checked when `session`): accept
        its id, learn the path, and hand its verb to the handler."""
        if session is not None:
            session.replay.accept(header.packet_id)
            if not session.confirmed and session.reply_endpoint is not None:
                confirmed = peer.paths.get(session.reply_endpoint)
                if confirmed is not None:
                    self._confirm(peer, confirmed, now)
            peer.confirm(session)
        try:
            verb = Verb(plain[0])
        except ValueError:
            self.drops["unknown_verb"] += 1
            return []
        if header.cipher is Cipher.HELLO and verb is not Verb.HELLO:
            self.drops["malformed"] += 1
            return []
        if header.cipher is Cipher.STATIC and plain[:2] != bytes([Verb.OK, Verb.HELLO]):
            self.drops["malformed"] += 1  # only OK(HELLO) travels under the static key
            return []
        self._rx_bytes = size
        if session is not None:
            self._heard(peer, source, header.hops, size, now)
        reader = Reader(plain[1:])
        handler = self._HANDLERS[verb]
        return handler(self, peer, header, reader, source, now)

    def _open_hello(
        self, header: wire.Header, packet: bytes, source: Endpoint, now: float
    ) -> tuple[Peer, bytes | None] | list[Effect]:
        """The sender and plaintext of a HELLO, cheapest checks first (admission.py); or
        what to do instead: nothing (dropped, counted) or a COOKIE reply."""
        # parse_header has checked the length: the clear key, the cookie, a sealed verb.
        head, body = packet[: wire.HEADER_BYTES], packet[wire.HEADER_BYTES :]
        clear = wire.PUBLIC_KEY_BYTES + (wire.COOKIE_BYTES if header.cookie else 0)
        key_bytes, sealed = body[: wire.PUBLIC_KEY_BYTES], body[clear:]
        ad = wire.associated_data(head) + body[:clear]
        peer = self.peers.get(header.source)
        if peer is not None and peer.identity.public_key == key_bytes:
            if not peer.hello_answers.take(now):
                self.drops["hello_rate_limited"] += 1
                return []
            return peer, open_(self._static_key(peer), head, ad, sealed)
        known = address_is_cached(key_bytes)
        if known and derive_address(key_bytes) != header.source:
            self.drops["bad_identity"] += 1
            return []
        cookie = body[wire.PUBLIC_KEY_BYTES : clear] if header.cookie else None
        verdict = self._admission.admit(source, key_bytes, cookie, now)
        if not verdict.admit:
            self.drops[f"hello_{verdict.reason}"] += 1
            if verdict.cookie is None:
                return []
            self.counters["cookies_sent"] += 1
            return [Send(source, wire.pack_cookie_reply(header, self.address, verdict.cookie))]
        claimed = Identity(header.source, key_bytes)
        try:
            plain = open_(static_key(self.identity, claimed), head, ad, sealed)
        except ValueError:  # not an Ed25519 point
            self.drops["bad_identity"] += 1
            return []
        if plain is None:  # junk fails here, before the proof of work
            self.drops["bad_mac"] += 1
            return []
        if not known:
            self.counters["identity_checks"] += 1
            if derive_address(key_bytes) != header.source:
                self.drops["bad_identity"] += 1
                return []
        return self._peer(claimed, now), plain

    def _on_cookie_reply(self, packet: bytes, source: Endpoint, now: float) -> list[Effect]:
        """A peer under load wants our HELLO again with this cookie (admission.py)."""
        header, cookie = wire.parse_cookie_reply(packet)
        peer = self.peers.get(header.source)
        handshake = peer.handshake if peer is not None else None
        if peer is None or handshake is None or handshake.sent_to.get(header.packet_id) != source:
            self.drops["unexpected_cookie"] += 1
            return []
        del handshake.sent_to[header.packet_id]  # one cookie per HELLO
        previous = peer.cookie
        peer.cookie = (cookie, source, now)
        self.counters["cookies_received"] += 1
        if previous is not None and now - previous[2] < HANDSHAKE_RETRY_S:
            return []  # the next regular retry brings it: never a HELLO per cookie
        return self._hello(peer, now, [source])

    def _heard(
        self, peer: Peer, source: Endpoint, hops: int, size: int, now: float, packets: int = 1
    ) -> None:
        """Authenticated, fresh packets (`packets` of them, `size` bytes in all) from `peer`
        arrived from `source`."""
        peer.last_receive = now
        peer.counters["rx_packets"] += packets
        peer.counters["rx_bytes"] += size
        if hops:
            peer.relay_via = self._root_at(source)
            return
        path = self._path(peer, source, now)
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
                self._last_udp_from_root = now

    def _on_hello(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        hello = wire.Hello.parse(reader)
        if hello.timestamp_ms <= peer.last_hello_timestamp_ms:
            self.drops["stale_hello"] += 1
            return []
        peer.last_hello_timestamp_ms = hello.timestamp_ms
        self._heard(peer, source, header.hops, self._rx_bytes, now)
        peer.version, peer.features = hello.version, hello.features
        peer.is_root = peer.is_root or peer.address in self.roots
        if header.hops == 0:
            self._observe(peer, hello.observed)
        ephemeral = EphemeralKey.from_secret(self._random(32))
        shared = ephemeral_dh(ephemeral.secret, hello.ephemeral)
        if shared is None:
            self.drops["bad_key"] += 1
            return []
        # Our first choice among the suites it offers (authenticated: see crypto.py).
        suite, features = crypto.answer_suite(
            self.config.suites,
            hello.features,
            partial_csum=self.config.partial_csum,
            punch=self.config.punch_sync,
        )
        session = derive_session(
            self._static_key(peer),
            shared,
            hello.ephemeral,
            ephemeral.public,
            initiator=False,
            now=now,
            suite=suite,
        )
        session.reply_endpoint = source if header.hops == 0 else None
        peer.add_session(session)
        reply = wire.Hello(
            wire.PROTOCOL_VERSION,
            self.config.version,
            self.config.is_root,
            hello.timestamp_ms,
            ephemeral.public,
            source if header.hops == 0 else None,
            features,
        )
        payload = wire.pack_ok(Verb.HELLO, header.packet_id, reply.pack())
        out = self._emit(peer, Cipher.STATIC, None, Verb.OK, payload, source, now)
        out += self._flush(peer, now) + self._push_paths(peer, now)
        return out + self._session_up(peer, now)

    def _on_ok(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        in_re, in_re_id = reader.u8(), reader.u64()
        if in_re == Verb.HELLO:
            return self._on_ok_hello(peer, header, reader, source, in_re_id, now)
        if in_re == Verb.ECHO:
            return self._on_ok_echo(peer, header, reader, source, now)
        if in_re == Verb.WHOIS:
            return self._on_ok_whois(reader, now)
        return []

    def _on_ok_hello(
        self,
        peer: Peer,
        header: wire.Header,
        reader: Reader,
        source: Endpoint,
        in_re_id: int,
        now: float,
    ) -> list[Effect]:
        ok = wire.Hello.parse(reader)
        handshake = peer.handshake
        sent_to = handshake.sent_to.get(in_re_id) if handshake is not None else None
        if handshake is None or sent_to is None:
            self.drops["unexpected_ok"] += 1
            return []
        suite = crypto.suite_in_ok(ok.features, handshake.offered)
        if suite is None:  # more than one suite, or one we did not offer
            self.drops["bad_suite"] += 1
            return []
        if header.hops == 0 and sent_to == source:  # our HELLO's packet id came back
            self._confirm(peer, self._path(peer, source, now), now)
        self._heard(peer, source, header.hops, self._rx_bytes, now)
        shared = ephemeral_dh(handshake.ephemeral.secret, ok.ephemeral)
        if shared is None:
            self.drops["bad_key"] += 1
            return []
        peer.add_session(
            derive_session(
                self._static_key(peer),
                shared,
                handshake.ephemeral.public,
                ok.ephemeral,
                initiator=True,
                now=now,
                suite=suite,
            )
        )
        peer.handshake = None
        peer.version, peer.features = ok.version, ok.features
        if header.hops == 0:
            self._observe(peer, ok.observed)
            path = peer.paths.get(source)
            if path is not None and path.latency is not None:
                path.latency.add(max(0.0, now - ok.timestamp_ms / 1000))
        out = self._flush(peer, now)
        if not out:  # use the session once, so the responder may start sending on it
            out = self._probe(peer, source if header.hops == 0 else None, now)
        return out + self._push_paths(peer, now) + self._session_up(peer, now)

    def _on_ok_echo(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        echo = wire.Echo.parse(reader)
        wait = self._echoes.pop(echo.echo_id, None)
        if wait is None or wait.peer != peer.address:
            return []
        if header.hops == 0 and wait.endpoint == source:  # the challenge came back
            self._confirm(peer, self._path(peer, source, now), now)
        rtt = max(0.0, now - wait.sent)
        if wait.trace_ttl is not None:
            self.hops.answered(wait.trace_ttl, now)
        if wait.probe_size is not None and wait.endpoint is not None:
            probed = peer.paths.get(wait.endpoint)
            if probed is not None:
                probed.mtu_fits(wait.probe_size)
            return []  # padded probes take longer: keep them out of the latency numbers
        if header.hops == 0:
            self._observe(peer, echo.observed)
            latency = peer.paths[source].latency
            if latency is not None:
                latency.add(rtt)
        else:
            peer.relay_latency.add(rtt)
        if not wait.user:
            return []
        if header.hops == 0:
            link = "DIRECT" if source.transport is Transport.UDP else "TCP"
            relay = None
        else:
            relay = self._root_at(source)
            link = "TCP" if source.transport is Transport.TCP else "RELAY"
        return [EchoReply(peer.address, echo.echo_id, rtt, source, link, relay)]

    def _on_ok_whois(self, reader: Reader, now: float) -> list[Effect]:
        try:
            identity = Identity.from_public_key(reader.take(wire.PUBLIC_KEY_BYTES))
        except ValueError:
            self.drops["bad_identity"] += 1
            return []
        if identity.address not in self._whois:
            return []
        del self._whois[identity.address]
        peer = self._peer(identity, now)
        for verb, payload in self._whois_queue.pop(identity.address, []):
            peer.queue.append((verb, payload))
        return self._ensure_handshake(peer, now)

    def _on_error(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        in_re, _in_re_id, code = reader.u8(), reader.u64(), reader.u8()
        if code == wire.ErrorCode.NEED_HELLO:
            return self._rehandshake(peer, now)
        if code in (
            wire.ErrorCode.ACCESS_DENIED,
            wire.ErrorCode.NETWORK_NOT_FOUND,
            wire.ErrorCode.NEED_CREDENTIALS,
        ):
            return self.memberships.on_error(peer, code, reader, now)
        if in_re == Verb.WHOIS and code == wire.ErrorCode.OBJ_NOT_FOUND:
            address = reader.address()
            self._whois.pop(address, None)
            dropped = len(self._whois_queue.pop(address, []))
            reason = f"no node {format_address(address)} is known to root " + format_address(
                peer.address
            )
            out: list[Effect] = []
            for echo_id, wait in list(self._echoes.items()):
                if wait.peer == address and wait.user:
                    del self._echoes[echo_id]
                    out.append(EchoFailed(address, echo_id, reason))
            if dropped or out:  # a lookup we wanted, not one a stranger's packet caused
                out.insert(0, Event("whois", f"{reason}; {dropped} queued packets dropped"))
            else:
                self.counters["whois_not_found"] += 1
            return out
        return []

    def _on_whois(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        address = reader.address()
        found = self.peers.get(address)
        if found is None:
            payload = wire.pack_error(
                Verb.WHOIS, header.packet_id, wire.ErrorCode.OBJ_NOT_FOUND, wire.addr_bytes(address)
            )
            return self._send(peer, Verb.ERROR, payload, now, source)
        ok = wire.pack_ok(Verb.WHOIS, header.packet_id, found.identity.public_key)
        return self._send(peer, Verb.OK, ok, now, source) + self._introduce_on_whois(
            peer, found, now
        )

    def _on_rendezvous(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        if not peer.is_root:
            self.drops["rendezvous_not_from_root"] += 1
            return []
        address = reader.address()
        endpoint = reader.endpoint()
        other = self.peers.get(address)
        if endpoint is None or address == self.address:
            return []
        how = f"root {format_address(peer.address)}"
        if other is None:
            # A root introduces us when the other side asks for us (WHOIS): its HELLO is on
            # the way, and we punch once that session is up (punch.py). Looking it up and
            # greeting it too would only cross two handshakes.
            self._remember_rendezvous(address, endpoint, how, now)
            return []
        return self._punch(other, endpoint, how, now)

    def _on_echo(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        echo = wire.Echo.parse(reader)
        path = peer.paths.get(source) if header.hops == 0 else None
        if path is not None and not path.confirmed and not path.challenged(now):
            # Prove the address before answering anything there; the answer can wait for
            # the next probe. A side that already challenged answers, so two sides that
            # punch at once each confirm the other within one round trip.
            return self._probe(peer, source, now)
        reply = wire.Echo(echo.echo_id, echo.timestamp_us, source if header.hops == 0 else None)
        return self._send(peer, Verb.OK, wire.pack_ok(Verb.ECHO, 0, reply.pack()), now, source)

    def _on_push_direct_paths(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        out: list[Effect] = []
        if self.config.is_root:
            return out
        if not self._pushes.allow(peer.address, now):
            # Each push makes us probe up to 16 addresses the peer chose: a peer may not
            # aim that at a third party faster than this (it pushes every 60 s itself).
            self.drops["push_rate_limited"] += 1
            return out
        for endpoint in wire.parse_endpoints(reader)[: wire.MAX_PUSHED_ENDPOINTS]:
            if endpoint not in peer.paths:
                out += self._punch(peer, endpoint, "the peer's own list", now)
        return out

    def _on_punch_verb(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        return self._on_punch(peer, reader, now)

    def _on_frame(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        return self.memberships.on_frame(peer, reader, now)

    def _on_frame_partial(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        return self.memberships.on_frame(peer, reader, now, partial=True)

    def _on_credentials(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        return self.memberships.on_credentials(peer, reader, now)

    def _on_config_request(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        return self.memberships.on_config_request(peer, reader, now)

    def _on_config(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        return self.memberships.on_config(peer, reader, now)

    def _on_path_report(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        return self.reporter.on_report(self, peer.address, reader, now)

    def _on_user_data(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        return [Deliver(peer.address, reader.rest())]

    _HANDLERS: dict[
        Verb, Callable[[Node, Peer, wire.Header, Reader, Endpoint, float], list[Effect]]
    ] = {
        Verb.HELLO: _on_hello,
        Verb.OK: _on_ok,
        Verb.ERROR: _on_error,
        Verb.WHOIS: _on_whois,
        Verb.RENDEZVOUS: _on_rendezvous,
        Verb.ECHO: _on_echo,
        Verb.PUSH_DIRECT_PATHS: _on_push_direct_paths,
        Verb.PUNCH: _on_punch_verb,
        Verb.USER_DATA: _on_user_data,
        Verb.FRAME: _on_frame,
        Verb.FRAME_PARTIAL: _on_frame_partial,
        Verb.CREDENTIALS: _on_credentials,
        Verb.NETWORK_CONFIG_REQUEST: _on_config_request,
        Verb.NETWORK_CONFIG: _on_config,
        Verb.PATH_REPORT: _on_path_report,
    }
