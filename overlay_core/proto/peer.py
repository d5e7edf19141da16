"""What a node knows about one other node: identity, sessions, paths, and why it is relayed."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from enum import Enum

from .admission import HELLO_ANSWER_BURST, HELLO_ANSWER_RATE
from .crypto import EphemeralKey, Session
from .effects import Endpoint
from .identity import Identity, format_address
from .path import PMTU_MIN, Latency, Path, best_path
from .ratelimit import TokenBucket
from .wire import Verb

MAX_SESSIONS = 3  # current, the one before (packets in flight), one being confirmed
MAX_QUEUED = 64  # packets waiting for a handshake or a WHOIS answer
MAX_PATHS = 16  # per peer: LAN, public v4 and v6, TCP, and room for NAT rebinding
BEST_PATH_CACHE_S = 0.1


@dataclass(slots=True)
class Handshake:
    """Our side of a HELLO we sent and whose OK we are waiting for."""

    ephemeral: EphemeralKey
    # One entry per HELLO sent (the newest 16): its random packet id, which the OK must
    # echo, and where it went, which an OK from there confirms.
    sent_to: dict[int, Endpoint]
    started: float
    last_sent: float
    attempts: int = 1
    # The suite bits (wire.FEATURE_SUITES) our HELLOs offer; the OK may name no other.
    offered: int = 0


class LearnedFrom(Enum):
    """Who told us of one of a peer's endpoints (the value: words for the console)."""

    ROOT = "root"  # a root's RENDEZVOUS
    PEER_LIST = "the peer's own list"  # its PUSH_DIRECT_PATHS
    PEER_PUNCH = "the peer's punch"  # its PUNCH
    RETRY = "retry"  # nobody: Node.retry_direct on a path the peer sent from


@dataclass(frozen=True, slots=True)
class Learned:
    """How we learned an endpoint of a peer (punch.py), for the relay reason
    (diagnose.py): who told us, and which root when one did."""

    source: LearnedFrom
    root: int | None = None  # the introducing root's address, for LearnedFrom.ROOT

    @classmethod
    def from_root(cls, address: int) -> Learned:
        return cls(LearnedFrom.ROOT, address)

    def __str__(self) -> str:
        if self.root is not None:
            return f"root {format_address(self.root)}"
        return self.source.value


@dataclass(slots=True)
class Punch:
    """Direct-path attempts, kept so the console can say why a peer is relayed."""

    learned: dict[Endpoint, Learned] = field(default_factory=dict)  # endpoint -> how
    attempts: int = 0
    replies: int = 0
    first_attempt: float | None = None
    last_direct_lost: float | None = None
    last_direct_endpoint: Endpoint | None = None
    pending: dict[Endpoint, int] = field(default_factory=dict)  # endpoint -> probes left
    # The ordered punch (punch.py): when our low-TTL opener went to each endpoint, the
    # endpoints opened whose probes wait for the peer's PUNCH, when that last came, and
    # whether rounds wait for a session to send PUNCH on.
    opened: dict[Endpoint, float] = field(default_factory=dict)
    awaiting: dict[Endpoint, float] = field(default_factory=dict)
    peer_opened: float | None = None
    want_session: bool = False
    # ICMP errors our direct attempts drew (unauthenticated: for the relay reason only):
    # endpoint -> (kind, who sent it, how many).
    icmp: dict[Endpoint, tuple[str, str | None, int]] = field(default_factory=dict)


@dataclass(slots=True)
class Peer:
    identity: Identity
    is_root: bool = False
    version: str | None = None
    # wire.FEATURE_* bits of its last HELLO or OK(HELLO) (suite bits: what its HELLO
    # offered, or the one its OK chose); e.g. FEATURE_PARTIAL_CSUM.
    features: int = 0
    created: float = 0.0
    last_receive: float | None = None
    last_send: float | None = None
    last_hello_timestamp_ms: int = -1
    paths: dict[Endpoint, Path] = field(default_factory=dict)
    sessions: dict[int, Session] = field(default_factory=dict)
    tx_session: Session | None = None
    handshake: Handshake | None = None
    rekeys: int = 0
    queue: deque[tuple[Verb, bytes]] = field(default_factory=lambda: deque(maxlen=MAX_QUEUED))
    punch: Punch = field(default_factory=Punch)
    relay_via: int | None = None  # root that last relayed for this peer
    counters: Counter[str] = field(default_factory=Counter)
    pushed_paths_at: float | None = None
    mtu_limit: int = PMTU_MIN  # the node's phys_mtu: where path MTU searches start
    _best: tuple[float | None, Path | None] = (None, None)
    # Round trips of probes that went through a root: the latency of a relayed peer.
    relay_latency: Latency = field(default_factory=Latency)
    last_relay_probe: float | None = None
    # A cookie the peer (a root under load) gave us for our HELLOs to `endpoint`.
    cookie: tuple[bytes, Endpoint, float] | None = None
    # HELLOs of this peer we answer (each costs two X25519): see admission.py.
    hello_answers: TokenBucket = field(
        default_factory=lambda: TokenBucket.full(HELLO_ANSWER_RATE, HELLO_ANSWER_BURST)
    )

    @property
    def address(self) -> int:
        return self.identity.address

    def best_path(self, now: float) -> Path | None:
        # Asked several times per frame; liveness moves in seconds, so a choice younger
        # than BEST_PATH_CACHE_S is still right. Path changes that matter sooner (a path
        # added, removed, or coming alive) call forget_best_path().
        cached_at, cached = self._best
        if cached_at is not None and 0.0 <= now - cached_at < BEST_PATH_CACHE_S:
            return cached
        best = best_path(self.paths, now)
        self._best = (now, best)
        return best

    def forget_best_path(self) -> None:
        self._best = (None, None)

    def path(self, endpoint: Endpoint, now: float) -> Path:
        path = self.paths.get(endpoint)
        if path is None:
            self.forget_best_path()
            if len(self.paths) >= MAX_PATHS:
                del self.paths[_least_useful(self.paths).endpoint]
            path = self.paths[endpoint] = Path(endpoint, now)
            path.start_mtu_search(self.mtu_limit)
            if not path.is_direct:
                # A TCP stream carries any record (nothing to search), and its handshake
                # already proved the address.
                path.mtu = path.mtu_ceiling
                path.mtu_searched = now
                path.confirm()
        return path

    def add_session(self, session: Session) -> None:
        self.sessions[session.key_id] = session
        while len(self.sessions) > MAX_SESSIONS:
            oldest = min(self.sessions.values(), key=lambda s: s.created)
            del self.sessions[oldest.key_id]
            if self.tx_session is oldest:
                self.tx_session = None
        if session.confirmed or self.tx_session is None:
            if self.tx_session is not None:
                self.rekeys += 1
            self.tx_session = session

    def confirm(self, session: Session) -> None:
        """The initiator used a session we answered: now we may send on it too."""
        if not session.confirmed:
            session.confirmed = True
            if self.tx_session is None or self.tx_session.created < session.created:
                if self.tx_session is not None:
                    self.rekeys += 1
                self.tx_session = session

    def drop_expired_sessions(self, now: float) -> None:
        for key_id, session in list(self.sessions.items()):
            if session.expired(now):
                del self.sessions[key_id]
                if self.tx_session is session:
                    self.tx_session = None


def _least_useful(paths: dict[Endpoint, Path]) -> Path:
    """The path to give up for a new one: unconfirmed before confirmed, then the one
    that has been silent longest."""
    return min(paths.values(), key=lambda p: (p.confirmed, p.last_receive or p.created, p.created))
