"""Typed messages the app's workers post back to it (posting's pattern: a worker never
touches widgets; it posts one of these and a handler on the app updates the store)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from overlay_core.api.schema import (
    ControllerNetworkJson,
    EventJson,
    MemberJson,
    NetworkJson,
    PathsJson,
    PeerJson,
    StatusJson,
)


@dataclass
class NodePolled(Message):
    """A status and peer list read together, `at` on the app's monotonic clock."""

    status: StatusJson
    peers: list[PeerJson]
    at: float


@dataclass
class NetworksPolled(Message):
    networks: list[NetworkJson]
    at: float


@dataclass
class HostedPolled(Message):
    """The networks this node's controller hosts and all their members, from the hosted
    poll numbered `poll` (counted as they start: JoinRequests tells a poll that started
    before an approval was answered from one after). While the Paths screen is open, the
    same poll reads its network's paths: `paths`, or the controller's `paths_error`."""

    hosted: list[ControllerNetworkJson]
    members: list[MemberJson]
    poll: int = 0
    paths: PathsJson | None = None
    paths_error: str | None = None


@dataclass
class EventArrived(Message):
    event: EventJson


@dataclass
class Disconnected(Message):
    """The daemon cannot be reached; `reason` is the ApiError's one line (what to do)."""

    reason: str
    attempt: int


@dataclass
class RetryCountdown(Message):
    seconds_left: float
    attempt: int


@dataclass
class Reconnected(Message):
    pass


@dataclass
class PollFailed(Message):
    """The daemon answered a poll with an error (not unreachable): say it once."""

    what: str
    reason: str
