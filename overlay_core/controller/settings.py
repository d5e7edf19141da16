"""Checking a network's settings as an admin gives them (create and update).

Every check raises `ValidationError(field, rule)` for the first problem, its str reading
like "mtu: must be 1280-9000"; the API hands that to the console as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from overlay_core.proto.netfields import (
    MssPolicy,
    Route,
    ValidationError,
    check_bool,
    check_mtu,
    check_multicast_limit,
    check_name,
    check_route,
)
from overlay_core.proto.netrules import Rule, check_presets, check_rules

from .pools import Pool, check_pools

NETWORK_SETTINGS = (
    "name",
    "private",
    "pools",
    "routes",
    "mtu",
    "mss",
    "broadcast",
    "multicast_limit",
    "rules",
    "presets",
)
IPV4_TCP_HEADERS_BYTES = 40  # what an MSS leaves out of the MTU (no options)


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    name: str
    private: bool
    pools: tuple[Pool, ...]
    routes: tuple[Route, ...]
    mtu: int
    mss: MssPolicy
    broadcast: bool
    multicast_limit: int
    rules: tuple[Rule, ...]
    presets: tuple[str, ...]


def check_settings(values: Mapping[str, object]) -> NetworkSettings:
    """All of NETWORK_SETTINGS, checked one by one and then against each other."""
    unknown = sorted(set(values) - set(NETWORK_SETTINGS))
    if unknown:
        raise ValidationError(unknown[0], "not a network setting")
    mss = values["mss"]
    settings = NetworkSettings(
        name=check_name(values["name"]),
        private=check_bool(values["private"], "private"),
        pools=check_pools(values["pools"]),
        routes=_check_routes(values["routes"]),
        mtu=check_mtu(values["mtu"]),
        mss=mss if isinstance(mss, MssPolicy) else MssPolicy.parse(mss),
        broadcast=check_bool(values["broadcast"], "broadcast"),
        multicast_limit=check_multicast_limit(values["multicast_limit"]),
        rules=check_rules(values["rules"]),
        presets=check_presets(values["presets"]),
    )
    if settings.mss.mode == "fixed":
        ceiling = settings.mtu - IPV4_TCP_HEADERS_BYTES
        if settings.mss.value > ceiling:
            raise ValidationError(
                "mss", f"fixed:{settings.mss.value} is more than the MTU allows ({ceiling})"
            )
    return settings


def _check_routes(values: object) -> tuple[Route, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValidationError("routes", "must be a list of routes")
    routes = []
    for i, value in enumerate(values):
        if isinstance(value, Mapping):  # the API's {"target": ..., "via": ...}
            value = (value.get("target"), value.get("via"))
        routes.append(check_route(value, f"routes[{i}]"))
    if len({r.target for r in routes}) != len(routes):
        raise ValidationError("routes", "a target is listed twice")
    return tuple(routes)
