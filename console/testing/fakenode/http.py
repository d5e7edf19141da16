"""Request parsing and error answers for the fake daemon, in the daemon's words
(overlay_core/api/http.py, validate.py): a bad body is 400 "validation" naming the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from overlay_core.api.schema import MemberJson, check_address_text, check_nwid_text


class Problem(Exception):
    def __init__(self, status: int, error: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason, self.field = status, error, reason, field


def invalid(field: str, rule: str) -> Problem:
    return Problem(400, "validation", f"{field}: {rule}", field)


def reply(body: object, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


# --------------------------------------------------------------------------- request parts


def body_of(request: httpx.Request) -> Mapping[str, Any]:
    raw = request.content
    data: object = {}
    if raw.strip():
        try:
            data = json.loads(raw)
        except ValueError:
            raise Problem(400, "bad_request", "the body must be JSON") from None
    if not isinstance(data, Mapping):
        raise invalid("body", "must be a JSON object")
    return data


def known_keys(data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise invalid(str(key), f"unknown field; expected {', '.join(allowed)}")


def flag(data: Mapping[str, Any], key: str) -> bool:
    if not isinstance(data[key], bool):
        raise invalid(key, "must be true or false")
    return bool(data[key])


def whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def address_arg(args: dict[str, str]) -> str:
    try:
        text = check_address_text(args["address"])
    except ValueError as exc:
        raise Problem(400, "bad_address", str(exc), "address") from None
    if text == "0000000000" or text.startswith("ff"):
        raise Problem(400, "bad_address", f"address {text} is reserved", "address")
    return text


def nwid_arg(args: dict[str, str]) -> str:
    try:
        return check_nwid_text(args["nwid"])
    except ValueError as exc:
        raise Problem(400, "bad_network_id", str(exc), "nwid") from None


def sorted_members(members: Mapping[str, MemberJson]) -> list[MemberJson]:
    """Pending first, then authorized, then deauthorized; oldest first within each."""
    order = {"pending": 0, "authorized": 1, "deauthorized": 2}
    return sorted(members.values(), key=lambda m: (order[m["state"]], m["created"], m["address"]))
