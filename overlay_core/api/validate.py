"""Request bodies to typed values, with errors that name the field and the rule it broke.

Every check raises `ValidationError(field, rule)` (from proto.netconf, the same class the
controller raises), which the API answers as
`400 {"error": "validation", "reason": "mtu: must be 1280-9000", "field": "mtu"}`.
The daemon uses `settings_from_json` for networks.json too, so a hand-edited file and an
API call are held to the same rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from overlay_core.proto.netfields import (
    MAX_FIXED_MSS,
    MIN_MSS,
    ValidationError,
    ascii_int,
    check_mtu,
)
from overlay_core.proto.vnet import NetworkSettings

SETTING_FLAGS = ("allow_managed", "allow_global", "allow_default", "report")
SETTING_KEYS = (*SETTING_FLAGS, "mtu", "mss")
MAX_MSS = MAX_FIXED_MSS  # the controller's bound too: an MSS beyond MTU 9000's is moot
MSS_RULE = f'must be "off", "auto" or a number {MIN_MSS}-{MAX_MSS}'


def check_object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ValidationError("body", "must be a JSON object")
    return body


def check_known_keys(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            raise ValidationError(str(key), f"unknown field; expected {', '.join(allowed)}")


def check_flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, "must be true or false")
    return value


def check_mss(value: object, field: str = "mss") -> str:
    """ "off", "auto", a number (the clamp) or "fixed:N"; returns the policy string."""
    if value in ("off", "auto"):
        return str(value)
    number: object = value
    if isinstance(value, str):
        number = ascii_int(value.removeprefix("fixed:"))
    if isinstance(number, bool) or not isinstance(number, int):
        raise ValidationError(field, MSS_RULE)
    if not MIN_MSS <= number <= MAX_MSS:
        raise ValidationError(field, MSS_RULE)
    return f"fixed:{number}"


def settings_from_json(body: object, base: NetworkSettings | None = None) -> NetworkSettings:
    """Apply a (partial) settings object to `base` (defaults if None), checking each field.

    mtu and mss may be null: the local override is dropped and the network's value used.
    """
    data = check_object(body)
    check_known_keys(data, SETTING_KEYS)
    changes: dict[str, Any] = {}
    for key in SETTING_FLAGS:
        if key in data:
            changes[key] = check_flag(data[key], key)
    if "mtu" in data:
        changes["mtu"] = None if data["mtu"] is None else check_mtu(data["mtu"])
    if "mss" in data:
        changes["mss"] = None if data["mss"] is None else check_mss(data["mss"])
    return dataclasses.replace(base or NetworkSettings(), **changes)
