"""The node's receive side: a datagram in, opened, checked, and handed to whoever it is for.

`Inbound.receive_datagram` takes one datagram as the I/O layer read it:

1. Not addressed to us: a root forwards it (relay.py), anyone else drops it.
2. Fragments are reassembled (fragment.py); a whole packet is opened with the key its
   cipher names: a HELLO with the static identity-to-identity key, after the cheap
   admission checks (admission.py); an OK(HELLO) with the static key of a known peer;
   everything else with a session, after the replay window.
3. `dispatch` learns from the authenticated packet (timers.packet_received: the path is
   alive, the peer heard from) and hands its verb to a handler. The verbs of the session
   layer (HELLO, OK, ERROR, WHOIS, ECHO) are handled here; the others only carry a payload
   from an authenticated peer, and go to the part that owns them: the punch verbs to
   punch.py, frames, configs and credentials to membership.py, path reports to
   reporting.py.

A path is learned only from a packet that authenticated and is fresh: session packets pass
the replay window here, HELLOs their timestamp and OK(HELLO)s their handshake's packet id
in the handlers, which call `packet_received` only after that. The batched way in
(datapath.receive_batch) runs the same checks and calls `dispatch` for anything but a
plain frame.
"""

from __future__ import annotations

from collections.abc import Callable

from . import crypto, wire
from .admission import HelloAdmission
from .crypto import EphemeralKey, Session, derive_session, ephemeral_dh, open_, static_key
from .effects import Deliver, EchoFailed, EchoReply, Effect, Endpoint, Event, Send, Transport
from .fragment import Reassembler
from .identity import Identity, address_is_cached, derive_address, format_address
from .membership import Memberships
from .outbound import Outbound
from .peer import Peer
from .punch import Punching
from .relay import Relay
from .reporting import Reporter
from .states import Link
from .timers import HANDSHAKE_RETRY_S, Timers
from .wire import Cipher, MalformedError, Reader, Verb

# A verb of the session layer: it may care how the packet came (its header, its source).
Handler = Callable[[Peer, wire.Header, Reader, Endpoint, float], list[Effect]]
# A verb that only carries a payload from an authenticated peer.
PayloadHandler = Callable[[Peer, Reader, float], list[Effect]]


class Inbound:
    """Opens and dispatches what arrives; see the module docstring."""

    def __init__(
        self,
        out: Outbound,
        timers: Timers,
        punching: Punching,
        relay: Relay,
        memberships: Memberships,
        reporter: Reporter,
    ) -> None:
        self._out = out
        self._timers = timers
        self._relay = relay
        self._reassembler = Reassembler(out.drops)
        # Admission control for the work strangers can make us do (admission.py).
        self._admission = HelloAdmission(out.random(32), 0.0)
        self._rx_bytes = 0  # size of the packet being handled, for the handlers
        self._handlers: dict[Verb, Handler] = {
            Verb.HELLO: self._on_hello,
            Verb.OK: self._on_ok,
            Verb.WHOIS: self._on_whois,
            Verb.ECHO: self._on_echo,
        }
        self._payload_handlers: dict[Verb, PayloadHandler] = {
            Verb.ERROR: self._on_error,
            Verb.USER_DATA: self._on_user_data,
            Verb.RENDEZVOUS: punching.on_rendezvous,
            Verb.PUSH_DIRECT_PATHS: punching.on_push_direct_paths,
            Verb.PUNCH: punching.on_punch,
            Verb.FRAME: memberships.on_frame,
            Verb.FRAME_PARTIAL: memberships.on_frame_partial,
            Verb.CREDENTIALS: memberships.on_credentials,
            Verb.NETWORK_CONFIG_REQUEST: memberships.on_config_request,
            Verb.NETWORK_CONFIG: memberships.on_config,
            Verb.PATH_REPORT: reporter.on_report,
        }
        self._memberships = memberships

    def expire(self, now: float) -> None:
        """Drop what only ages: half-reassembled packets; rotate the cookie secret."""
        self._reassembler.expire(now)
        self._admission.rotate(self._out.random, now)
        self._admission.expire(now)

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> list[Effect]:
        out = self._out
        out.counters["rx_packets"] += 1
        out.counters["rx_bytes"] += len(data)
        if len(data) < wire.HEADER_BYTES:
            out.drops["malformed"] += 1
            return []
        if wire.source_of(data) == out.address:
            # Forged (or looped back): never a peer, never a WHOIS or handshake with ourself.
            out.drops["from_self"] += 1
            return []
        if wire.dest_of(data) != out.address:
            if out.config.is_root:
                return self._relay.forward(data, source, now)
            out.drops["not_for_us"] += 1
            return []
        try:
            if wire.is_fragment(data):
                packet = self._reassembler.add_fragment(wire.parse_fragment(data), now)
            elif data[18] & wire.FLAG_FRAGMENTED:
                packet_id = int.from_bytes(data[:8], "big")
                packet = self._reassembler.add_head(wire.source_of(data), packet_id, data, now)
            else:
                packet = data
            if packet is None:
                return []
            return self._receive_packet(packet, source, now)
        except MalformedError:
            out.drops["malformed"] += 1
            return []

    def _receive_packet(self, packet: bytes, source: Endpoint, now: float) -> list[Effect]:
        """Authenticate and check the freshness of one whole packet, then dispatch it."""
        out = self._out
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
            known = out.peers.get(header.source)
            if known is None:
                out.drops["unknown_peer"] += 1
                return out.whois_for(header.source, now, unsolicited=True)
            peer = known
            ad, body = wire.associated_data(head), packet[wire.HEADER_BYTES :]
            if header.cipher is Cipher.STATIC:
                plain = open_(out.static_key(peer), head, ad, body)
            else:
                session = peer.sessions.get(header.key_id)
                if session is None or session.expired(now):
                    out.drops["unknown_session"] += 1
                    return out.rehandshake(peer, now)
                if not session.replay.check(header.packet_id):
                    out.drops["replay"] += 1
                    return []
                plain = session.open(head, ad, body)
        if plain is None or not plain:
            out.drops["bad_mac" if plain is None else "malformed"] += 1
            return []
        return self.dispatch(peer, header, session, plain, len(packet), source, now)

    def dispatch(
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
        out = self._out
        if session is not None:
            session.replay.accept(header.packet_id)
            if not session.confirmed and session.reply_endpoint is not None:
                confirmed = peer.paths.get(session.reply_endpoint)
                if confirmed is not None:
                    self._timers.path_confirmed(peer, confirmed, now)
            peer.confirm(session)
        try:
            verb = Verb(plain[0])
        except ValueError:
            out.drops["unknown_verb"] += 1
            return []
        if header.cipher is Cipher.HELLO and verb is not Verb.HELLO:
            out.drops["malformed"] += 1
            return []
        if header.cipher is Cipher.STATIC and plain[:2] != bytes([Verb.OK, Verb.HELLO]):
            out.drops["malformed"] += 1  # only OK(HELLO) travels under the static key
            return []
        self._rx_bytes = size
        if session is not None:
            self._timers.packet_received(peer, source, header.hops, size, now)
        reader = Reader(plain[1:])
        handler = self._handlers.get(verb)
        if handler is not None:
            return handler(peer, header, reader, source, now)
        return self._payload_handlers[verb](peer, reader, now)

    # ------------------------------------------------------------------ handshakes

    def _open_hello(
        self, header: wire.Header, packet: bytes, source: Endpoint, now: float
    ) -> tuple[Peer, bytes | None] | list[Effect]:
        """The sender and plaintext of a HELLO, cheapest checks first (admission.py); or
        what to do instead: nothing (dropped, counted) or a COOKIE reply."""
        out = self._out
        # parse_header has checked the length: the clear key, the cookie, a sealed verb.
        head, body = packet[: wire.HEADER_BYTES], packet[wire.HEADER_BYTES :]
        clear = wire.PUBLIC_KEY_BYTES + (wire.COOKIE_BYTES if header.cookie else 0)
        key_bytes, sealed = body[: wire.PUBLIC_KEY_BYTES], body[clear:]
        ad = wire.associated_data(head) + body[:clear]
        peer = out.peers.get(header.source)
        if peer is not None and peer.identity.public_key == key_bytes:
            if not peer.hello_answers.take(now):
                out.drops["hello_rate_limited"] += 1
                return []
            return peer, open_(out.static_key(peer), head, ad, sealed)
        known = address_is_cached(key_bytes)
        if known and derive_address(key_bytes) != header.source:
            out.drops["bad_identity"] += 1
            return []
        cookie = body[wire.PUBLIC_KEY_BYTES : clear] if header.cookie else None
        verdict = self._admission.admit(source, key_bytes, cookie, now)
        if not verdict.admit:
            out.drops[f"hello_{verdict.reason}"] += 1
            if verdict.cookie is None:
                return []
            out.counters["cookies_sent"] += 1
            return [Send(source, wire.pack_cookie_reply(header, out.address, verdict.cookie))]
        claimed = Identity(header.source, key_bytes)
        try:
            plain = open_(static_key(out.identity, claimed), head, ad, sealed)
        except ValueError:  # not an Ed25519 point
            out.drops["bad_identity"] += 1
            return []
        if plain is None:  # junk fails here, before the proof of work
            out.drops["bad_mac"] += 1
            return []
        if not known:
            out.counters["identity_checks"] += 1
            if derive_address(key_bytes) != header.source:
                out.drops["bad_identity"] += 1
                return []
        return out.peer(claimed, now), plain

    def _on_cookie_reply(self, packet: bytes, source: Endpoint, now: float) -> list[Effect]:
        """A peer under load wants our HELLO again with this cookie (admission.py)."""
        out = self._out
        header, cookie = wire.parse_cookie_reply(packet)
        peer = out.peers.get(header.source)
        handshake = peer.handshake if peer is not None else None
        if peer is None or handshake is None or handshake.sent_to.get(header.packet_id) != source:
            out.drops["unexpected_cookie"] += 1
            return []
        del handshake.sent_to[header.packet_id]  # one cookie per HELLO
        previous = peer.cookie
        peer.cookie = (cookie, source, now)
        out.counters["cookies_received"] += 1
        if previous is not None and now - previous[2] < HANDSHAKE_RETRY_S:
            return []  # the next regular retry brings it: never a HELLO per cookie
        return out.hello(peer, now, [source])

    def _on_hello(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        out = self._out
        hello = wire.Hello.parse(reader)
        if hello.timestamp_ms <= peer.last_hello_timestamp_ms:
            out.drops["stale_hello"] += 1
            return []
        peer.last_hello_timestamp_ms = hello.timestamp_ms
        self._timers.packet_received(peer, source, header.hops, self._rx_bytes, now)
        peer.version, peer.features = hello.version, hello.features
        peer.is_root = peer.is_root or peer.address in out.roots
        if header.hops == 0:
            out.observe(peer, hello.observed)
        ephemeral = EphemeralKey.from_secret(out.random(32))
        shared = ephemeral_dh(ephemeral.secret, hello.ephemeral)
        if shared is None:
            out.drops["bad_key"] += 1
            return []
        config = out.config
        # Our first choice among the suites it offers (authenticated: see crypto.py).
        suite, features = crypto.answer_suite(
            config.suites, hello.features, partial_csum=config.partial_csum, punch=config.punch_sync
        )
        session = derive_session(
            out.static_key(peer),
            shared,
            hello.ephemeral,
            ephemeral.public,
            initiator=False,
            now=now,
            suite=suite,
        )
        direct = source if header.hops == 0 else None
        session.reply_endpoint = direct
        peer.add_session(session)
        reply = wire.Hello(
            wire.PROTOCOL_VERSION,
            config.version,
            config.is_root,
            hello.timestamp_ms,
            ephemeral.public,
            direct,
            features,
        )
        payload = wire.pack_ok(Verb.HELLO, header.packet_id, reply.pack())
        packet = out.seal(peer, Cipher.STATIC, None, Verb.OK, payload)
        effects = out.emit(peer, packet, source, now)
        return effects + self._timers.session_derived(peer, now)

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
        out = self._out
        ok = wire.Hello.parse(reader)
        handshake = peer.handshake
        sent_to = handshake.sent_to.get(in_re_id) if handshake is not None else None
        if handshake is None or sent_to is None:
            out.drops["unexpected_ok"] += 1
            return []
        suite = crypto.suite_in_ok(ok.features, handshake.offered)
        if suite is None:  # more than one suite, or one we did not offer
            out.drops["bad_suite"] += 1
            return []
        if header.hops == 0 and sent_to == source:  # our HELLO's packet id came back
            self._timers.path_confirmed(peer, out.path(peer, source, now), now)
        self._timers.packet_received(peer, source, header.hops, self._rx_bytes, now)
        shared = ephemeral_dh(handshake.ephemeral.secret, ok.ephemeral)
        if shared is None:
            out.drops["bad_key"] += 1
            return []
        peer.add_session(
            derive_session(
                out.static_key(peer),
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
            out.observe(peer, ok.observed)
            path = peer.paths.get(source)
            if path is not None:
                path.latency.add(max(0.0, now - ok.timestamp_ms / 1000))
        direct = source if header.hops == 0 else None
        return self._timers.handshake_complete(peer, direct, now)

    # ------------------------------------------------------------------ probes, lookups

    def _on_ok_echo(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        out = self._out
        echo = wire.Echo.parse(reader)
        wait = out.echoes.pop(echo.echo_id, None)
        if wait is None or wait.peer != peer.address:
            return []
        if header.hops == 0 and wait.endpoint == source:  # the challenge came back
            self._timers.path_confirmed(peer, out.path(peer, source, now), now)
        rtt = max(0.0, now - wait.sent)
        if wait.trace_ttl is not None:
            out.hops.answered(wait.trace_ttl, now)
        if wait.probe_size is not None and wait.endpoint is not None:
            probed = peer.paths.get(wait.endpoint)
            if probed is not None:
                probed.mtu_fits(wait.probe_size)
            return []  # padded probes take longer: keep them out of the latency numbers
        if header.hops == 0:
            out.observe(peer, echo.observed)
            peer.paths[source].latency.add(rtt)
        else:
            peer.relay_latency.add(rtt)
        if not wait.user:
            return []
        if header.hops == 0:
            link = Link.DIRECT if source.transport is Transport.UDP else Link.TCP
            relay = None
        else:
            relay = out.root_at(source)
            link = Link.TCP if source.transport is Transport.TCP else Link.RELAY
        return [EchoReply(peer.address, echo.echo_id, rtt, source, link, relay)]

    def _on_ok_whois(self, reader: Reader, now: float) -> list[Effect]:
        out = self._out
        try:
            identity = Identity.from_public_key(reader.take(wire.PUBLIC_KEY_BYTES))
        except ValueError:
            out.drops["bad_identity"] += 1
            return []
        if identity.address not in out.whois:
            return []
        del out.whois[identity.address]
        peer = out.peer(identity, now)
        for verb, payload in out.whois_queue.pop(identity.address, []):
            peer.queue.append((verb, payload))
        return out.ensure_handshake(peer, now)

    def _on_error(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        out = self._out
        in_re, _in_re_id, code = reader.u8(), reader.u64(), reader.u8()
        if code == wire.ErrorCode.NEED_HELLO:
            return out.rehandshake(peer, now)
        if code in (
            wire.ErrorCode.ACCESS_DENIED,
            wire.ErrorCode.NETWORK_NOT_FOUND,
            wire.ErrorCode.NEED_CREDENTIALS,
        ):
            return self._memberships.on_error(peer, code, reader, now)
        if in_re != Verb.WHOIS or code != wire.ErrorCode.OBJ_NOT_FOUND:
            return []
        address = reader.address()
        out.whois.pop(address, None)
        dropped = len(out.whois_queue.pop(address, []))
        reason = f"no node {format_address(address)} is known to root " + format_address(
            peer.address
        )
        effects: list[Effect] = []
        for echo_id, wait in list(out.echoes.items()):
            if wait.peer == address and wait.user:
                del out.echoes[echo_id]
                effects.append(EchoFailed(address, echo_id, reason))
        if dropped or effects:  # a lookup we wanted, not one a stranger's packet caused
            effects.insert(0, Event("whois", f"{reason}; {dropped} queued packets dropped"))
        else:
            out.counters["whois_not_found"] += 1
        return effects

    def _on_whois(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        out = self._out
        address = reader.address()
        found = out.peers.get(address)
        if found is None:
            payload = wire.pack_error(
                Verb.WHOIS, header.packet_id, wire.ErrorCode.OBJ_NOT_FOUND, wire.addr_bytes(address)
            )
            return out.send(peer, Verb.ERROR, payload, now, source)
        ok = wire.pack_ok(Verb.WHOIS, header.packet_id, found.identity.public_key)
        effects = out.send(peer, Verb.OK, ok, now, source)
        return effects + self._relay.introduce_on_whois(peer, found, now)

    def _on_echo(
        self, peer: Peer, header: wire.Header, reader: Reader, source: Endpoint, now: float
    ) -> list[Effect]:
        out = self._out
        echo = wire.Echo.parse(reader)
        path = peer.paths.get(source) if header.hops == 0 else None
        if path is not None and not path.confirmed and not path.challenged(now):
            # Prove the address before answering anything there; the answer can wait for
            # the next probe. A side that already challenged answers, so two sides that
            # punch at once each confirm the other within one round trip.
            return out.probe(peer, source, now)
        reply = wire.Echo(echo.echo_id, echo.timestamp_us, source if header.hops == 0 else None)
        return out.send(peer, Verb.OK, wire.pack_ok(Verb.ECHO, 0, reply.pack()), now, source)

    def _on_user_data(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        return [Deliver(peer.address, reader.rest())]
