"""The words for links and states, one StrEnum each, shared by the protocol, the API's
JSON (api/schema/) and the console.

StrEnum members are str: they compare equal to the JSON strings the console reads and
are written to JSON as those strings, so the wire and API stay as they were; the names
just stop being spelled by hand in every module.
"""

from __future__ import annotations

from enum import StrEnum


class Link(StrEnum):
    """How this node would send to a peer right now (GET /peers `link`)."""

    DIRECT = "DIRECT"  # UDP straight to the peer's endpoint
    RELAY = "RELAY"  # through a root over UDP
    TCP = "TCP"  # through a root over the TCP fallback
    NONE = "NONE"  # no way yet (a root not reached)


class PairLink(StrEnum):
    """A pair of members in the controller's paths view (api/pathview.py), best first:
    `Link` plus UNKNOWN for a pair neither side has reported on."""

    DIRECT = "DIRECT"
    UNKNOWN = "UNKNOWN"
    RELAY = "RELAY"
    TCP = "TCP"
    NONE = "NONE"


class RootLink(StrEnum):
    """How this node reaches a root (netcheck, GET /roots)."""

    UDP = "UDP"
    TCP = "TCP"
    NONE = "NONE"  # not reached
    SELF = "SELF"  # this node is that root


class NodeState(StrEnum):
    """The node as a whole (GET /status `state`)."""

    ONLINE = "ONLINE"  # a root answers over UDP
    OFFLINE = "OFFLINE"  # no root answers
    TUNNELED = "TUNNELED"  # roots answer over the TCP fallback only


class NetworkState(StrEnum):
    """A joined network (GET /networks `state`), ZeroTier's words."""

    REQUESTING_CONFIGURATION = "REQUESTING_CONFIGURATION"
    OK = "OK"
    ACCESS_DENIED = "ACCESS_DENIED"
    NOT_FOUND = "NOT_FOUND"
    PORT_ERROR = "PORT_ERROR"
