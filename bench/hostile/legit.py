"""The generator's legitimate node: the real sans-IO `Node` driven over one UDP socket.

It handshakes with the root, reaches leaf B DIRECT, rekeys every few packets (so it also
sends HELLOs straight to B) and records every datagram it sends, for the replay phase.
It also seals the huge-packet-id ECHO of the last phase under its session with the root.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from overlay_core.proto import wire
from overlay_core.proto.effects import EchoFailed, EchoReply, Effect, Endpoint, Send, udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.node import TICK_S, Node, NodeConfig
from overlay_core.proto.roots import RootEntry
from overlay_core.proto.wire import Cipher, Verb

from .daemons import HOST

RECORD_MAX = 2000  # recorded legitimate packets kept per destination


# --------------------------------------------------------------------------- the generator


class _LegitProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: LegitNode) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner.received(data, udp(str(addr[0]), int(addr[1])))


class LegitNode:
    """The generator's own identity: a real sans-IO Node over one real UDP socket."""

    def __init__(self, identity: Identity, root: RootEntry, rekey_after: int) -> None:
        self.identity = identity
        self.root = root
        self.rekey_after = rekey_after
        self.node: Node | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.recorded: dict[Endpoint, list[bytes]] = {}
        self.sent_bytes = 0
        self.received_bytes = 0
        self._waiters: dict[int, asyncio.Future[EchoReply | None]] = {}
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _LegitProtocol(self), local_addr=(HOST, 0)
        )
        self.transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        # Rekeying after a few packets makes the node send HELLOs on its direct paths too
        # (to B, not only through the root), which phase 3 then replays.
        config = NodeConfig(
            roots=[self.root],
            local_endpoints=[udp(HOST, self.port)],
            tcp_fallback=False,
            rekey_after_packets=self.rekey_after,
        )
        self.node = Node(self.identity, config)
        self.execute(self.node.start(time.time()))
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self.node is not None:
                self.execute(self.node.tick(time.time()))

    def received(self, data: bytes, source: Endpoint) -> None:
        self.received_bytes += len(data)
        if self.node is not None:
            self.execute(self.node.receive_datagram(data, source, time.time()))

    def execute(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send) and self.transport is not None:
                self.send_raw(effect.data, (effect.endpoint.host, effect.endpoint.port))
                kept = self.recorded.setdefault(effect.endpoint, [])
                if len(kept) < RECORD_MAX:
                    kept.append(effect.data)
            elif isinstance(effect, EchoReply | EchoFailed):
                waiter = self._waiters.pop(effect.echo_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(effect if isinstance(effect, EchoReply) else None)

    def send_raw(self, data: bytes, dest: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, dest)
            self.sent_bytes += len(data)

    async def echo(self, address: int, timeout_s: float = 1.0) -> EchoReply | None:
        assert self.node is not None
        future: asyncio.Future[EchoReply | None] = asyncio.get_running_loop().create_future()
        echo_id, effects = self.node.echo(address, time.time())
        self._waiters[echo_id] = future
        self.execute(effects)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._waiters.pop(echo_id, None)

    def hellos(self, endpoint: tuple[str, int]) -> list[bytes]:
        """The HELLOs this node sent straight to `endpoint`."""
        return [
            data
            for data in self.recorded.get(udp(*endpoint), [])
            if not wire.is_fragment(data)
            and len(data) > wire.HEADER_BYTES
            and (data[18] & wire.CIPHER_MASK) >> wire.CIPHER_SHIFT == Cipher.HELLO
        ]

    def seal_echo(self, dest: int, packet_id: int) -> bytes | None:
        """An ECHO to `dest` sealed under our current session with it, with the packet id
        we choose (what outbound.py's `Outbound.seal` builds)."""
        assert self.node is not None
        peer = self.node.peers.get(dest)
        session = peer.tx_session if peer is not None else None
        if session is None:
            return None
        header = wire.Header(packet_id, dest, self.identity.address, 0, False, Cipher.SESSION,
                             session.key_id)  # fmt: skip
        head = header.pack()
        payload = bytes([Verb.ECHO]) + wire.Echo(0x0BADF00D, int(time.time() * 1e6)).pack()
        return head + session.seal(head, wire.associated_data(head), payload)

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self.transport is not None:
            self.transport.close()
