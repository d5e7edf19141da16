"""What the parts of a node that speak verbs of their own need of it: the `Sender`.

Memberships (virtual networks) and the Reporter (path reports) send packets to other
nodes and read who those are, but they do not route, seal or handshake: the node's core
(outbound.Outbound) does that. They depend on this protocol instead of on the core, as
aioice's transactions depend on a `TransactionSender` rather than on the connection, so
neither imports the node and either can be driven by a stand-in.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from .effects import Effect
from .identity import Identity
from .peer import Peer
from .wire import Verb


class Sender(Protocol):
    """Who we are, the peers we know, our counters, and three ways to send a verb."""

    identity: Identity
    address: int
    peers: dict[int, Peer]
    counters: Counter[str]
    drops: Counter[str]  # packets dropped, by reason (GET /status shows them)

    @property
    def version(self) -> str:
        """Our software version, as HELLOs and config requests carry it."""
        ...

    def send(self, peer: Peer, verb: Verb, payload: bytes, now: float) -> list[Effect]:
        """One packet to a known peer, on its session (queued behind a handshake)."""
        ...

    def send_to_address(self, dest: int, verb: Verb, payload: bytes, now: float) -> list[Effect]:
        """One packet to any node, looked up through the roots first if unknown."""
        ...

    def send_many_to_address(
        self, dest: int, verb: Verb, payloads: list[bytes], now: float
    ) -> list[Effect]:
        """Many packets of one verb to any node, sealed as one batch when it is known."""
        ...
