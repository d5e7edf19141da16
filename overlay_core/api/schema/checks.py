"""The API's request checks: pure functions over decoded JSON and query text, shared by the
daemon's handlers (overlay_core/api) and the console's fake node (console/testing/fakenode),
so both refuse the same requests with the same status, error code and field.

Two exceptions carry a refusal:

- `FieldError(field, rule)`: a value breaks its rule; answered
  `400 {"error": "validation", "reason": "mtu: must be 1280-9000", "field": "mtu"}`.
- `ApiProblem(status, error, reason, field)`: any other refusal, answered as given.

These check shapes and the limits in limits.py only; what needs the node's state (is the
network joined, is the pool free) stays with whoever holds that state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeGuard

from .json_types import ErrorJson
from .limits import (
    ECHO_FIELDS,
    ECHO_TIMEOUT_DEFAULT_S,
    ECHO_TIMEOUT_MAX_S,
    FLAG_RULE,
    MAX_BODY_BYTES,
    MAX_EVENT_ID_DIGITS,
    MAX_MSS,
    MAX_MTU,
    MAX_NETWORK_NUMBER,
    MAX_PATHS_LIMIT,
    MIN_MSS,
    MIN_MTU,
    MSS_RULE,
    MTU_RULE,
    NETWORK_FIELDS,
    NETWORK_LIST_FIELDS,
    NUMBER_RULE,
    PATHS_LIMIT_RULE,
    SETTING_FLAGS,
    SETTING_KEYS,
    check_nwid_text,
    check_path_address,
)


class FieldError(ValueError):
    """A request field with a value outside its rule; str() reads "mtu: must be 1280-9000"."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class ApiProblem(Exception):
    """A refusal other than a field's rule, always answered with all three keys
    `{"error", "reason", "field"}`: field None when no single part of the request is at
    fault (a body that is not JSON, an unknown route, a state conflict)."""

    def __init__(self, status: int, error: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.field = field

    def to_json(self) -> ErrorJson:
        return error_json(self.error, self.reason, self.field)


def error_json(error: str, reason: str, field: str | None = None) -> ErrorJson:
    return {"error": error, "reason": reason, "field": field}


# --------------------------------------------------------------------------- raw bodies


def decode_body(raw: bytes) -> object:
    """A request's JSON body; {} when there is none (or only blanks). 400 if not JSON.

    RecursionError is the json module's answer to deep nesting ("[" * 100_000 fits in far
    fewer bytes than MAX_BODY_BYTES), so it is a bad body like any other, not an internal
    error; ValueError covers bad syntax, bad UTF-8 and integers past Python's 4300-digit
    limit."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except RecursionError:
        raise ApiProblem(400, "bad_request", "the body is JSON nested too deeply") from None
    except ValueError:
        raise ApiProblem(400, "bad_request", "the body must be JSON") from None


def nwid_param(text: str) -> str:
    """A network id in a request path, normalised; a 400 bad_network_id otherwise."""
    try:
        return check_nwid_text(text)
    except ValueError as exc:
        raise ApiProblem(400, "bad_network_id", str(exc), "nwid") from None


def address_param(text: str) -> str:
    """A member or peer address in a request path, normalised; a 400 bad_address otherwise."""
    try:
        return check_path_address(text)
    except ValueError as exc:
        raise ApiProblem(400, "bad_address", str(exc), "address") from None


def check_path_params(params: Mapping[str, str]) -> None:
    """A route's {nwid} and {address}, checked before anything else about the request, so
    a bad id is what a request wrong in several ways is told about first (as the daemon
    always did for DELETE)."""
    if "nwid" in params:
        nwid_param(params["nwid"])
    if "address" in params:
        address_param(params["address"])


def refuse_body(method: str, path: str, raw: bytes) -> None:
    """For a route that takes no body (routes.py says why); an empty body or `{}` is none."""
    if raw.strip() not in (b"", b"{}"):
        raise ApiProblem(400, "bad_request", f"{method} {path} takes no body")


def body_too_large(size: int) -> ApiProblem:
    """What aiohttp answers past MAX_BODY_BYTES (the daemon's middleware words it so)."""
    reason = f"Maximum request body size {MAX_BODY_BYTES} exceeded, actual body size {size}"
    return ApiProblem(413, "request_entity_too_large", reason)


# --------------------------------------------------------------------------- small values


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer: bool is an int subclass in Python, but `true` is not a port number."""
    return isinstance(value, int) and not isinstance(value, bool)


def ascii_int(text: str, max_digits: int = 9) -> int | None:
    """`text` as a whole number if it is 1 to `max_digits` ASCII digits, else None.

    str.isdigit() alone says yes to "²" (which int() refuses) and to "١٤٠٠" (which int()
    reads as 1400), and int() refuses more than 4300 digits: text from a request is held
    to plain, short digits first."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def check_object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise FieldError("body", "must be a JSON object")
    return body


def check_known_keys(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """A field a route does not know is refused, not ignored: a typo must not pass."""
    for key in body:
        if key not in allowed:
            raise FieldError(str(key), f"unknown field; expected {', '.join(allowed)}")


def check_flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise FieldError(field, FLAG_RULE)
    return value


def in_range(value: object, low: int, high: int) -> TypeGuard[int]:
    """A JSON integer (not a bool) from `low` to `high`."""
    return is_int(value) and low <= value <= high


def check_mtu(value: object, field: str = "mtu") -> int:
    if in_range(value, MIN_MTU, MAX_MTU):
        return value
    raise FieldError(field, MTU_RULE)


def check_mss(value: object, field: str = "mss") -> str:
    """A member's MSS setting: "off", "auto", a number (the clamp) or "fixed:N"; the
    policy string."""
    if value in ("off", "auto"):
        return str(value)
    number = ascii_int(value.removeprefix("fixed:")) if isinstance(value, str) else value
    if in_range(number, MIN_MSS, MAX_MSS):
        return f"fixed:{number}"
    raise FieldError(field, MSS_RULE)


# --------------------------------------------------------------------------- bodies


def settings_changes(body: object) -> dict[str, Any]:
    """A joined network's (partial) settings body, checked field by field: the changes it
    asks for. mtu and mss may be null: the local override is dropped, the network's used."""
    data = check_object(body)
    check_known_keys(data, SETTING_KEYS)
    changes: dict[str, Any] = {
        key: check_flag(data[key], key) for key in SETTING_FLAGS if key in data
    }
    if "mtu" in data:
        changes["mtu"] = None if data["mtu"] is None else check_mtu(data["mtu"])
    if "mss" in data:
        changes["mss"] = None if data["mss"] is None else check_mss(data["mss"])
    return changes


def network_changes(body: object, *, creating: bool) -> dict[str, Any]:
    """A hosted network's settings body with the shapes fixed that the controller cannot
    (a number MSS becomes "fixed:N", a string where a list belongs is refused); the
    controller checks the values. Creating also takes an explicit "number"."""
    data = check_object(body)
    check_known_keys(data, (*NETWORK_FIELDS, "number") if creating else NETWORK_FIELDS)
    changes = dict(data)
    for key in NETWORK_LIST_FIELDS:
        if key in changes and not isinstance(changes[key], list):
            raise FieldError(key, "must be a list")
    if is_int(changes.get("mss")):
        changes["mss"] = f"fixed:{changes['mss']}"
    number = changes.get("number")
    if number is not None and not is_int(number):
        raise FieldError("number", "must be a whole number")
    if number is not None and not in_range(number, 0, MAX_NETWORK_NUMBER):
        raise FieldError("number", NUMBER_RULE)
    return changes


def echo_timeout(body: object) -> float:
    """POST /peers/{address}/echo's optional {"timeout_s": S}: seconds in (0, 30]."""
    if not isinstance(body, Mapping):
        raise ApiProblem(400, "bad_request", "the body must be a JSON object")
    check_known_keys(body, ECHO_FIELDS)
    value = body.get("timeout_s", ECHO_TIMEOUT_DEFAULT_S)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiProblem(400, "bad_request", "timeout_s must be a number of seconds", "timeout_s")
    if not 0 < value <= ECHO_TIMEOUT_MAX_S:  # NaN and infinity fail too
        reason = f"timeout_s must be in (0, {ECHO_TIMEOUT_MAX_S:g}]"
        raise ApiProblem(400, "bad_request", reason, "timeout_s")
    return float(value)


# --------------------------------------------------------------------------- query text


def paths_limit(text: str | None) -> int | None:
    """GET .../paths?limit=N: the N worst pairs (None: all of them)."""
    if text is None:
        return None
    limit = ascii_int(text)
    if limit is None or not 0 <= limit <= MAX_PATHS_LIMIT:
        raise FieldError("limit", PATHS_LIMIT_RULE)
    return limit


def event_since(text: str | None) -> int | None:
    """GET /events?since=N (or Last-Event-ID: N): the last event id the reader saw."""
    if text is None or text == "":
        return None
    if text.isascii() and text.isdigit() and len(text) > MAX_EVENT_ID_DIGITS:
        # Larger than any id this run will give, so it is one from an earlier run, which
        # the bus answers with every event it kept; held here as a short number, because
        # int() refuses past 4,300 digits.
        return int(10**MAX_EVENT_ID_DIGITS)
    since = ascii_int(text, MAX_EVENT_ID_DIGITS)
    if since is None:
        reason = "since must be an event id (a whole number >= 0)"
        raise ApiProblem(400, "bad_request", reason, "since")
    return since


# --------------------------------------------------------------------------- refusals
# These need the node's state to decide (is the network joined?); the words are shared.


def unknown_peer(address: str) -> ApiProblem:
    return ApiProblem(404, "unknown_peer", f"no peer {address} is known to this node")


def not_joined(nwid: str) -> ApiProblem:
    return ApiProblem(404, "not_joined", f"this node has not joined network {nwid}")


def unknown_network(nwid: str) -> ApiProblem:
    return ApiProblem(404, "unknown_network", f"this node's controller has no network {nwid}")


def unknown_member(address: str, nwid: str) -> ApiProblem:
    return ApiProblem(404, "unknown_member", f"no member {address} in network {nwid}")


def not_asked(address: str, nwid: str) -> ApiProblem:
    """Approving a node that never asked to join: a mistyped address would otherwise sit
    authorized, so it takes "force" (api/routes_networks.py's docstring)."""
    reason = (
        f"{address} has not asked to join {nwid} yet: run `ztui join {nwid}` on it first, or "
        'pre-authorize it with `ztui approve --force` (API: "force": true)'
    )
    return ApiProblem(409, "not_asked", reason, "authorized")
