"""The node's virtual networks: the verbs that carry configs, credentials and frames.

`Memberships` is owned by the Node and sends through a `Sender` (sender.py), never the
node itself; vnet.py holds the per-network state and explains the flow. Everything that
can go wrong with a frame is counted on its network, by reason, so the console can say
why traffic doesn't pass.
"""

from __future__ import annotations

from . import offload, wire
from .datapath import RxBatch, complete_checksum, deliver_one
from .effects import (
    ClosePort,
    ConfigRequest,
    ConfigurePort,
    Effect,
    Event,
    NetworkStatus,
    OpenPort,
    PeerName,
)
from .ethernet import format_mac
from .identity import Identity, format_address
from .netconf import (
    COM_MAX_DELTA_S,
    CertificateOfMembership,
    NetworkConfig,
    controller_of,
    format_nwid,
)
from .path import PMTU_MIN
from .peer import Peer
from .sender import Sender
from .states import NetworkState
from .vnet import CREDENTIALS_RESEND_S, NEED_CREDENTIALS_EVERY_S, Network, NetworkSettings
from .wire import ErrorCode, Reader, Verb

DENIED_CODES: dict[str, ErrorCode] = {
    NetworkState.ACCESS_DENIED: ErrorCode.ACCESS_DENIED,
    NetworkState.NOT_FOUND: ErrorCode.NETWORK_NOT_FOUND,
}


_IP_ETHERTYPES = (b"\x08\x00", b"\x86\xdd")


def _nwid_bytes(nwid: int) -> bytes:
    return nwid.to_bytes(8, "big")


class Memberships:
    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.networks: dict[int, Network] = {}
        # Open while the node handles one batch of datagrams (Node.receive_datagrams):
        # the frames it delivers and the admissions decided in it (frames_in).
        self.batch: RxBatch | None = None

    # ------------------------------------------------------------------ member API

    def join(self, nwid: int, settings: NetworkSettings, now: float) -> list[Effect]:
        network = self.networks.get(nwid)
        if network is not None:
            network.settings = settings
            return self._configure(network)
        network = self.networks[nwid] = Network(nwid, self.sender.address, settings)
        out: list[Effect] = [
            OpenPort(nwid, network.mac, network.mtu),
            Event("network", f"joining {format_nwid(nwid)}", nwid=nwid),
        ]
        return out + self._request(network, now)

    def leave(self, nwid: int, now: float) -> list[Effect]:
        if self.networks.pop(nwid, None) is None:
            return []
        return [ClosePort(nwid), Event("network", f"left {format_nwid(nwid)}", nwid=nwid)]

    def set_settings(self, nwid: int, settings: NetworkSettings) -> list[Effect]:
        network = self.networks[nwid]
        network.settings = settings
        return self._configure(network)

    def port_failed(self, nwid: int, reason: str) -> list[Effect]:
        network = self.networks.get(nwid)
        if network is None:
            return []
        network.state = NetworkState.PORT_ERROR
        network.port_error = reason
        return [Event("network", f"{format_nwid(nwid)}: PORT_ERROR: {reason}", nwid=nwid)]

    def tick(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        for network in self.networks.values():
            if network.switch is not None:
                network.switch.expire(now)
            if network.request_due(now):
                out += self._request(network, now)
        return out

    # ------------------------------------------------------------------ frames from the TAP

    def port_opened(self, nwid: int, offload: bool) -> None:
        """The I/O layer opened the TAP of `nwid`, with offloads (virtio_net_hdr) or not."""
        network = self.networks.get(nwid)
        if network is not None:
            network.offload = offload

    def receive_frames(self, nwid: int, raws: list[bytes], now: float) -> list[Effect]:
        """A batch read from the TAP of `nwid`. With offloads each read starts with its
        virtio_net_hdr and may be a TCP super-frame, which goes out as MSS segments."""
        network = self.networks.get(nwid)
        out: list[Effect] = []
        if network is None or not network.offload:
            for frame in raws:
                out += self.receive_frame(nwid, frame, now)
            return out
        for raw in raws:
            try:
                header, frame = offload.split_vnet(raw)
                if header.gso_type == offload.GSO_NONE:
                    # A partial checksum is completed before MSS clamping patches it
                    # (segment() validates the header, as _send_segments' call does).
                    if header.flags:
                        frame = offload.segment(header, frame)[0]
                    else:
                        offload.validate(header, frame)
                    out += self.receive_frame(nwid, frame, now)
                else:
                    out += self._send_segments(network, header, frame, now)
            except offload.OffloadError as exc:
                network.counters[f"drop_{exc.reason}"] += 1
        return out

    def _send_segments(
        self, network: Network, header: offload.VnetHeader, frame: bytes, now: float
    ) -> list[Effect]:
        """A TCP super-frame: its segments share every header the rules and the switch
        read, so those run once; peers that take partial checksums get them unfinished."""
        if network.state is not NetworkState.OK or network.switch is None:
            network.counters["drop_not_ready"] += 1
            return []
        # Each payload is the network id, then the segment (segment() writes both at once).
        # A VLAN-tagged one comes back with finished checksums (see offload.segment), so
        # it goes out as plain FRAMEs to everyone.
        prefix = _nwid_bytes(network.nwid)
        tagged = frame[12:14] in offload.VLAN_TPIDS
        partial = offload.segment(header, frame, full_checksum=False, prefix=prefix)
        count = len(partial)
        first = partial[0][8:]
        if len(first) > network.mtu + 18:  # 18: header + one VLAN tag
            network.counters["drop_bad_frame"] += count
            return []
        dropped_by = network.rules.evaluate(first)
        if dropped_by is not None:  # every segment is a frame dropped, in both counts
            network.rules.counters[dropped_by] += count - 1
            network.counters["drop_rule"] += count
            return []
        targets = self._targets(network, first, now)
        if not targets:
            network.counters["drop_no_destination"] += count
            return []
        full: list[bytes] | None = None
        out: list[Effect] = []
        for target in targets:
            peer = self.sender.peers.get(target)
            out += self._credentials_for(network, target, now)
            if tagged:
                verb, payloads = Verb.FRAME, partial
            elif peer is not None and peer.features & wire.FEATURE_PARTIAL_CSUM:
                verb, payloads = Verb.FRAME_PARTIAL, partial
            else:
                if full is None:
                    full = offload.segment(header, frame, prefix=prefix)
                verb, payloads = Verb.FRAME, full
            out += self.sender.send_many_to_address(target, verb, payloads, now)
        network.counters["tx_frames"] += count
        network.counters["tx_bytes"] += sum(map(len, partial)) - 8 * count
        return out

    def _targets(self, network: Network, frame: bytes, now: float) -> list[int]:
        """The members `frame` goes to (the switch: learned MACs, multicast limits)."""
        config = network.config
        assert config is not None and network.switch is not None
        return network.switch.route(
            frame,
            now,
            network.members(),
            network.bridges(),
            self.sender.address,
            config.multicast_limit if config.broadcast else 0,
        )

    def receive_frame(self, nwid: int, frame: bytes, now: float) -> list[Effect]:
        network = self.networks.get(nwid)
        if network is None or network.state is not NetworkState.OK or network.switch is None:
            if network is not None:
                network.counters["drop_not_ready"] += 1
            return []
        if len(frame) < 14 or len(frame) > network.mtu + 18:  # 18: header + one VLAN tag
            network.counters["drop_bad_frame"] += 1
            return []
        if network.rules.evaluate(frame) is not None:
            network.counters["drop_rule"] += 1
            return []
        targets = self._targets(network, frame, now)
        if not targets:
            network.counters["drop_no_destination"] += 1
            return []
        out: list[Effect] = []
        for target in targets:
            peer = self.sender.peers.get(target)
            path = peer.best_path(now) if peer is not None else None
            # No direct path (relayed, or not known yet): the relayed leg's MTU is the
            # root's to know, so segments must fit the smallest, or every one of them is
            # fragmented (and loses the batched receive path) for the connection's life.
            data = network.clamp(frame, path.mtu if path is not None else PMTU_MIN)
            out += self._credentials_for(network, target, now)
            out += self.sender.send_to_address(target, Verb.FRAME, _nwid_bytes(nwid) + data, now)
        network.counters["tx_frames"] += 1
        network.counters["tx_bytes"] += len(frame)
        return out

    # ------------------------------------------------------------------ verbs

    def on_frame(
        self, peer: Peer, reader: Reader, now: float, partial: bool = False
    ) -> list[Effect]:
        """FRAME (or FRAME_PARTIAL, `partial`: a TCP segment whose checksum the receiving
        end finishes) from `peer`."""
        nwid = reader.u64()
        return self.frames_in(peer, nwid, [reader.rest()], now, partial)

    def on_frame_partial(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        """FRAME_PARTIAL: a FRAME whose TCP checksum this end finishes (on_frame)."""
        return self.on_frame(peer, reader, now, partial=True)

    def frames_in(
        self, peer: Peer, nwid: int, frames: list[bytes], now: float, partial: bool = False
    ) -> list[Effect]:
        """Frames `peer` sent on `nwid`, in order: each admitted, then delivered, into the
        node's batch when one is open (datapath.py). Within a batch the admission of a
        (sender, network, source MAC) is decided once, until a config, denial or
        certificate arrives in it (_forget_admissions). `partial`: FRAME_PARTIALs, TCP
        segments whose checksum we finish."""
        network = self.networks.get(nwid)
        if network is None or network.state is not NetworkState.OK or network.switch is None:
            self.sender.drops["frame_not_joined"] += len(frames)
            return []
        batch = self.batch
        admitted = batch.admitted if batch is not None else set()
        delivered = batch.frames_of(network) if batch is not None else []
        finish = partial and not network.offload
        sender = peer.address
        rules = network.rules.evaluate if len(network.rules) else None
        out: list[Effect] = []
        last_mac = None  # the source MAC of the frame before, when admitted in this call
        for frame in frames:
            # Only an untagged IP frame's admission depends on nothing but the key: others
            # (a runt, a VLAN tag cut short) may fail to parse where the first one didn't.
            mac = frame[6:12]
            untagged_ip = len(frame) >= 34 and frame[12:14] in _IP_ETHERTYPES
            if mac != last_mac or not untagged_ip:
                key = (sender, nwid, mac)
                if key not in admitted or not untagged_ip:
                    refused = self._admit(network, peer, frame, now)
                    if refused is not None:
                        out += refused
                        last_mac = None
                        continue
                    admitted.add(key)
                last_mac = mac
            if rules is not None and rules(frame) is not None:
                network.counters["drop_rule"] += 1
                continue
            if finish:
                # With offloads the kernel finishes a partial checksum; without, we do.
                try:
                    frame = complete_checksum(frame)
                except offload.OffloadError:
                    network.counters["drop_bad_frame"] += 1
                    continue
            elif not partial:  # a segment of a super-frame is never a SYN: no clamping
                path = peer.best_path(now)
                frame = network.clamp(frame, path.mtu if path is not None else PMTU_MIN)
            delivered.append(frame)
        if batch is None:
            network.counters["rx_frames"] += len(delivered)
            network.counters["rx_bytes"] += sum(map(len, delivered))
            out += [deliver_one(nwid, frame, network.offload) for frame in delivered]
        return out

    def _admit(self, network: Network, peer: Peer, frame: bytes, now: float) -> list[Effect] | None:
        """None when `peer` may send `frame` on `network`; else what to do (counted)."""
        sender = peer.address
        com = network.coms.get(sender)
        config = network.config
        assert config is not None and network.switch is not None
        # The member list answers for almost every frame; only a sender newer than our
        # config needs its certificate checked against the controller's key.
        if sender not in network.member_set and not self._admits_newcomer(
            config, sender, com, network.nwid
        ):
            network.counters["drop_not_member"] += 1
            return []
        # Listed members must still prove it: the certificate is what the issue of a new
        # config can't forge, and it must be of the same era as ours.
        if com is None or not com.agrees_with(config.com, COM_MAX_DELTA_S):
            network.counters["drop_no_credentials"] += 1
            return self._need_credentials(network, peer, now)
        if not network.switch.accept(sender, frame, network.members(), network.bridges(), now):
            network.counters["drop_bad_source"] += 1
            return []
        return None

    def on_credentials(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        nwid = reader.u64()
        network = self.networks.get(nwid)
        if network is None:
            return []
        try:
            com = CertificateOfMembership.from_bytes(reader.rest())
        except ValueError:
            network.counters["drop_bad_credentials"] += 1
            return []
        controller = self._controller_identity(nwid)
        if (
            controller is None
            or com.nwid != nwid
            or com.address != peer.address
            or not com.verify(controller)
        ):
            network.counters["drop_bad_credentials"] += 1
            return []
        network.coms[peer.address] = com
        self._forget_admissions()
        return []

    def on_config_request(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        nwid = reader.u64()
        version = reader.text() if reader.pos < len(reader.data) else None
        if controller_of(nwid) != self.sender.address:
            self.sender.drops["config_request_not_ours"] += 1
            return []
        path = peer.best_path(now)
        endpoint = path.endpoint if path is not None else None
        return [ConfigRequest(nwid, peer.identity, version, endpoint)]

    def on_config(self, peer: Peer, reader: Reader, now: float) -> list[Effect]:
        nwid = reader.u64()
        if controller_of(nwid) != peer.address:
            self.sender.drops["config_not_from_controller"] += 1
            return []
        return self._apply(nwid, reader.rest(), peer.identity, now)

    def on_error(self, peer: Peer, code: int, reader: Reader, now: float) -> list[Effect]:
        nwid = reader.u64()
        network = self.networks.get(nwid)
        if network is None:
            return []
        if code == ErrorCode.NEED_CREDENTIALS:
            network.com_sent.pop(peer.address, None)
            return self._credentials_for(network, peer.address, now)
        if controller_of(nwid) != peer.address:
            return []
        state = (
            NetworkState.ACCESS_DENIED
            if code == ErrorCode.ACCESS_DENIED
            else NetworkState.NOT_FOUND
        )
        return self._denied(network, state)

    # ------------------------------------------------------------------ controller side

    def answer_config_request(
        self, nwid: int, member: int, reply: bytes | str, now: float
    ) -> list[Effect]:
        """Send what the controller answered: signed config bytes or a denial code."""
        if member == self.sender.address:  # our own controller answering our own request
            network = self.networks.get(nwid)
            if network is None:
                return []
            if isinstance(reply, str):
                return self._denied(network, NetworkState(reply))
            return self._apply(nwid, reply, self.sender.identity, now)
        if isinstance(reply, str):
            code = DENIED_CODES.get(reply, ErrorCode.ACCESS_DENIED)
            payload = wire.pack_error(Verb.NETWORK_CONFIG_REQUEST, 0, code, _nwid_bytes(nwid))
            return self.sender.send_to_address(member, Verb.ERROR, payload, now)
        payload = _nwid_bytes(nwid) + reply
        return self.sender.send_to_address(member, Verb.NETWORK_CONFIG, payload, now)

    # ------------------------------------------------------------------ internals

    def _request(self, network: Network, now: float) -> list[Effect]:
        network.last_request = now
        nwid = network.nwid
        controller = controller_of(nwid)
        if controller == self.sender.address:
            return [ConfigRequest(nwid, self.sender.identity.public(), self.sender.version, None)]
        payload = _nwid_bytes(nwid) + wire.pack_text(self.sender.version)
        return self.sender.send_to_address(controller, Verb.NETWORK_CONFIG_REQUEST, payload, now)

    def _apply(self, nwid: int, signed: bytes, controller: Identity, now: float) -> list[Effect]:
        network = self.networks.get(nwid)
        if network is None:
            return []
        try:
            config = NetworkConfig.from_signed_bytes(signed, controller.public())
        except ValueError as exc:
            network.counters["drop_bad_config"] += 1
            return [Event("network", f"{format_nwid(nwid)}: refused a config: {exc}", nwid=nwid)]
        if config.issued_to != self.sender.address:
            network.counters["drop_bad_config"] += 1
            return []
        if network.config is not None and config.revision < network.config.revision:
            return []
        was = network.state
        network.apply_config(config, now)
        self._forget_admissions()
        return self._state_changed(network, was, f" ({config.name})")

    def _forget_admissions(self) -> None:
        """A config, denial or certificate arrived inside a batch: what the batch admitted
        so far (frames_in) may no longer hold for the rest of it."""
        batch = self.batch
        if batch is not None:
            batch.admitted.clear()

    def _denied(self, network: Network, state: NetworkState) -> list[Effect]:
        was = network.state
        network.deny(state)
        return self._state_changed(network, was)

    def _state_changed(self, network: Network, was: NetworkState, why: str = "") -> list[Effect]:
        """An event if `network` left state `was` (`why`: words to add), then whatever
        its port must change."""
        out: list[Effect] = []
        if was is not network.state:
            text = f"{format_nwid(network.nwid)}: {was} -> {network.state}{why}"
            out.append(Event("network", text, nwid=network.nwid))
        return out + self._configure(network)

    def _configure(self, network: Network) -> list[Effect]:
        wanted = network.port_config()
        if wanted == network.applied or network.state is NetworkState.PORT_ERROR:
            return []
        network.applied = wanted
        return [ConfigurePort(network.nwid, wanted.mtu, wanted.addresses, wanted.routes)]

    def _credentials_for(self, network: Network, target: int, now: float) -> list[Effect]:
        sent = network.com_sent.get(target)
        if network.config is None or (sent is not None and now - sent < CREDENTIALS_RESEND_S):
            return []
        network.com_sent[target] = now
        payload = _nwid_bytes(network.nwid) + network.config.com.to_bytes()
        return self.sender.send_to_address(target, Verb.CREDENTIALS, payload, now)

    def _need_credentials(self, network: Network, peer: Peer, now: float) -> list[Effect]:
        last = network.need_credentials_sent.get(peer.address)
        if last is not None and now - last < NEED_CREDENTIALS_EVERY_S:
            return []
        network.need_credentials_sent[peer.address] = now
        payload = wire.pack_error(
            Verb.FRAME, 0, ErrorCode.NEED_CREDENTIALS, _nwid_bytes(network.nwid)
        )
        return self.sender.send(peer, Verb.ERROR, payload, now)

    def _admits_newcomer(
        self,
        config: NetworkConfig,
        sender: int,
        com: CertificateOfMembership | None,
        nwid: int,
    ) -> bool:
        controller = self._controller_identity(nwid)
        return controller is not None and config.admits(sender, com, controller)

    def _controller_identity(self, nwid: int) -> Identity | None:
        address = controller_of(nwid)
        if address == self.sender.address:
            return self.sender.identity.public()
        peer = self.sender.peers.get(address)
        return peer.identity if peer is not None else None

    def names(self) -> dict[int, list[PeerName]]:
        """Every member's name and IPs in each network whose config gave them, by address."""
        out: dict[int, list[PeerName]] = {}
        for nwid in sorted(self.networks):
            config = self.networks[nwid].config
            if config is None:
                continue
            nwid_text = format_nwid(nwid)
            for info in config.member_info:
                out.setdefault(info.address, []).append(
                    PeerName(nwid_text, config.name, info.name, list(info.ips))
                )
        return out

    def status(self, now: float) -> list[NetworkStatus]:
        out = []
        for nwid in sorted(self.networks):
            network = self.networks[nwid]
            config = network.config
            port = network.port_config()
            rules = config.rules if config is not None else []
            out.append(
                NetworkStatus(
                    nwid=format_nwid(nwid),
                    name=config.name if config is not None else None,
                    state=network.state,
                    port_error=network.port_error,
                    private=config.private if config is not None else None,
                    mac=format_mac(network.mac),
                    mtu=network.mtu,
                    mss=network.mss_policy,
                    addresses=list(port.addresses),
                    routes=list(port.routes),
                    members=len(network.members()),
                    bridge=self.sender.address in network.bridges(),
                    revision=config.revision if config is not None else None,
                    config_age_s=(
                        round(now - network.last_config, 3)
                        if network.last_config is not None
                        else None
                    ),
                    settings=network.settings.to_json(),
                    counters=dict(network.counters),
                    roster=[
                        (format_address(m.address), m.name, list(m.ips))
                        for m in (config.member_info if config is not None else ())
                    ],
                    rule_drops=[
                        (getattr(rule, "name", f"rule {i}"), count)
                        for i, (rule, count) in enumerate(
                            zip(rules, network.rules.counters, strict=False)
                        )
                    ],
                )
            )
        return out
