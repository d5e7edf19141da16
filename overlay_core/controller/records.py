"""What the controller hands out: network and member records, denials, and errors.

Records are plain frozen snapshots of rows; `to_json()` is the API's shape (nwid as 16 hex
digits, addresses as 10, times as seconds on the controller's clock or null).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from overlay_core.proto.identity import format_address
from overlay_core.proto.netconf import MssPolicy, Route, Rule, format_nwid, parse_nwid
from overlay_core.proto.netrules import preset_rules, rules_from_json
from overlay_core.proto.states import NetworkState

MemberState = Literal["pending", "authorized", "deauthorized"]
# A denied member's network goes to that state (proto/states.py); the word is the reply.
DenialCode = Literal[NetworkState.NOT_FOUND, NetworkState.ACCESS_DENIED]


class NotFoundError(LookupError):
    """No such network on this controller, or no such member in it."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else "not found"


class NotAskedError(Exception):
    """An approval of a node that has never asked to join: most likely a mistyped address,
    which would otherwise sit authorized for whoever owns it. Pass force to pre-authorize."""

    def __init__(self, nwid: int, address: int) -> None:
        self.nwid, self.address = nwid, address
        nwid_text, text = format_nwid(nwid), format_address(address)
        super().__init__(
            f"{text} has not asked to join {nwid_text} yet: run `ztui join {nwid_text}` on "
            "it first, or authorize with force to pre-authorize it"
        )


@dataclass(frozen=True, slots=True)
class Denied:
    """The answer to a config request that gets no config.

    NOT_FOUND: this controller has no such network. ACCESS_DENIED: the network is private
    and the member is not (or no longer) authorized.
    """

    code: DenialCode


# A config request's answer: the signed config bytes (NetworkConfig.to_signed_bytes), or not.
ConfigReply = bytes | Denied


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    nwid: int
    number: int
    name: str
    private: bool
    mtu: int
    mss: MssPolicy
    broadcast: bool
    multicast_limit: int
    pools: tuple[str, ...]
    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]  # the network's own
    presets: tuple[str, ...]  # applied before `rules`
    revision: int
    created: float
    updated: float

    @property
    def effective_rules(self) -> tuple[Rule, ...]:
        """What members get: preset rules first, so an own accept cannot reopen them."""
        return preset_rules(self.presets) + self.rules

    def to_json(self) -> dict[str, Any]:
        return {
            "nwid": format_nwid(self.nwid),
            "number": self.number,
            "name": self.name,
            "private": self.private,
            "mtu": self.mtu,
            "mss": str(self.mss),
            "broadcast": self.broadcast,
            "multicast_limit": self.multicast_limit,
            "pools": list(self.pools),
            "routes": [{"target": r.target, "via": r.via} for r in self.routes],
            "rules": [r.to_json() for r in self.rules],
            "presets": list(self.presets),
            "revision": self.revision,
            "created": self.created,
            "updated": self.updated,
        }

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> NetworkRecord:
        return cls(
            nwid=parse_nwid(row["nwid"]),
            number=row["number"],
            name=row["name"],
            private=bool(row["private"]),
            mtu=row["mtu"],
            mss=MssPolicy.parse(row["mss"]),
            broadcast=bool(row["broadcast"]),
            multicast_limit=row["multicast_limit"],
            pools=tuple(json.loads(row["pools"])),
            routes=tuple(Route(t, v) for t, v in json.loads(row["routes"])),
            rules=rules_from_json(json.loads(row["rules"])),
            presets=tuple(json.loads(row["presets"])),
            revision=row["revision"],
            created=row["created"],
            updated=row["updated"],
        )


@dataclass(frozen=True, slots=True)
class MemberRecord:
    nwid: int
    address: int
    authorized: bool
    name: str
    active_bridge: bool
    ips: tuple[str, ...]  # plain addresses; configs add the prefix length
    created: float
    last_seen: float | None  # last config request
    last_authorized: float | None
    last_deauthorized: float | None
    version: str | None  # as the member reported it
    physical_address: str | None  # where its last request came from

    @property
    def has_asked(self) -> bool:
        """It sent a config request at least once (rows also come from pre-approval and
        from naming a node in advance)."""
        return self.last_seen is not None

    @property
    def state(self) -> MemberState:
        """pending: waiting for an admin; deauthorized: was let in or refused, now out."""
        if self.authorized:
            return "authorized"
        return "pending" if self.last_deauthorized is None else "deauthorized"

    def to_json(self) -> dict[str, Any]:
        return {
            "nwid": format_nwid(self.nwid),
            "address": format_address(self.address),
            "state": self.state,
            "authorized": self.authorized,
            "name": self.name,
            "active_bridge": self.active_bridge,
            "ips": list(self.ips),
            "created": self.created,
            "last_seen": self.last_seen,
            "last_authorized": self.last_authorized,
            "last_deauthorized": self.last_deauthorized,
            "version": self.version,
            "physical_address": self.physical_address,
        }

    @classmethod
    def from_row(cls, row: sqlite3.Row, ips: tuple[str, ...]) -> MemberRecord:
        return cls(
            nwid=parse_nwid(row["nwid"]),
            address=int(row["address"], 16),
            authorized=bool(row["authorized"]),
            name=row["name"],
            active_bridge=bool(row["active_bridge"]),
            ips=ips,
            created=row["created"],
            last_seen=row["last_seen"],
            last_authorized=row["last_authorized"],
            last_deauthorized=row["last_deauthorized"],
            version=row["version"],
            physical_address=row["physical_address"],
        )


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What a config request did, beyond the answer (Controller.answer_request).

    announce: a pending member asked for the first time (or again after a long silence,
    REQUEST_SILENCE_S), so an admin should hear of it once, not at every retry.
    admitted: this request authorized the member (a public network, or the controller's
    own node joining its own network).
    """

    reply: ConfigReply
    network: NetworkRecord | None = None
    member: MemberRecord | None = None  # after the request
    announce: bool = False
    admitted: bool = False
