"""GET and PUT /roots for the fake daemon: its roots are the peers with role ROOT.

A roots file is checked for its shape only (one root a line: IDENTITY HOST:PORT ...), not
for its keys: the fake cannot verify an identity's proof of work, so a well-formed line
with a made-up key passes here where overlayd (overlay_core/proto/roots.py) refuses it.
The refusals it does make are the daemon's: 400 "validation" with field "roots".
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import TYPE_CHECKING

import httpx

from overlay_core.api.schema import (
    API_VERSION,
    ROOTS_FIELD,
    FieldError,
    Link,
    RootJson,
    RootLink,
    RootsJson,
    check_known_keys,
)

from ..fake_data import SAMPLE_HOME, path, peer, root_link
from .http import body_of, handles, reply

if TYPE_CHECKING:
    from ..fake import FakeNode

MAX_ROOTS = 64  # proto/roots.py: a file listing more is a mistake
_IDENTITY = re.compile(r"[0-9a-f]{10}:0:[0-9a-f]{64}")
_ENDPOINT = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[0-9.]+):(?P<port>[0-9]{1,5})")


def identity_text(address: str) -> str:
    """A public identity's shape for `address` (its key made up, deterministic)."""
    return f"{address}:0:{hashlib.sha256(address.encode()).hexdigest()}"


def roots_json(node: FakeNode, added: list[str], removed: list[str]) -> RootsJson:
    listed: list[RootJson] = []
    for item in node.state.peers.values():
        if item["role"] != "ROOT":
            continue
        endpoints = [p["endpoint"] for p in item["paths"] if p["transport"] == "udp"]
        link = root_link(item)
        listed.append(
            {
                "address": item["address"],
                "identity": identity_text(item["address"]),
                "endpoints": endpoints,
                "link": link,
                "endpoint": item["preferred_path"] or (endpoints[0] if endpoints else None),
                "latency_ms": item["latency"]["smoothed_ms"] if link != RootLink.NONE else None,
            }
        )
    return {
        "api_version": API_VERSION,
        "roots": listed,
        "saved_in": node.state.roots_file,
        "added": added,
        "removed": removed,
    }


def parse_roots(text: str) -> dict[str, list[str]]:
    """Endpoints by root address, in the file's order; FieldError names the first bad line."""
    found: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"roots file line {number}"
        words = line.split()
        if len(found) == MAX_ROOTS:
            raise FieldError(ROOTS_FIELD, f"{where}: more than {MAX_ROOTS} roots")
        if _IDENTITY.fullmatch(words[0]) is None:
            raise FieldError(ROOTS_FIELD, f"{where}: {words[0][:40]!r} is not a public identity")
        if len(words) == 1:
            raise FieldError(ROOTS_FIELD, f"{where}: a root needs at least one endpoint")
        for word in words[1:]:
            if not _is_endpoint(word):
                raise FieldError(ROOTS_FIELD, f"{where}: endpoint {word!r}: expected HOST:PORT")
        address = words[0][:10]
        if address in found:
            raise FieldError(ROOTS_FIELD, f"{where}: root {address} is listed twice")
        found[address] = words[1:]
    return found


def _is_endpoint(word: str) -> bool:
    match = _ENDPOINT.fullmatch(word)
    if match is None or not 0 < int(match["port"]) < 65536:
        return False
    try:
        ipaddress.ip_address(match["host"].strip("[]"))
    except ValueError:
        return False
    return True


@handles("roots")
def get_roots(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    return reply(roots_json(node, [], []))


@handles("set_roots")
def put_roots(node: FakeNode, request: httpx.Request, args: dict[str, str]) -> httpx.Response:
    """New roots: those no longer listed are forgotten, new ones are peers not reached yet
    (NONE), and a `roots` event says what changed, as the daemon's live change does."""
    body = body_of(request)
    check_known_keys(body, (ROOTS_FIELD,))
    text = body.get(ROOTS_FIELD)
    if not isinstance(text, str):
        raise FieldError(ROOTS_FIELD, 'send the text of a roots file as a string, {"roots": "..."}')
    wanted = parse_roots(text)
    if not wanted:
        raise FieldError(
            ROOTS_FIELD,
            "the roots file lists no roots (one line each: IDENTITY HOST:PORT ...); "
            "to run without roots: overlayd options --reset roots, then restart",
        )
    peers = node.state.peers
    had = [a for a, p in peers.items() if p["role"] == "ROOT"]
    removed = [a for a in had if a not in wanted]
    added = [a for a in wanted if a not in had]
    for address in removed:
        del peers[address]
    for address in added:
        paths = [path(endpoint, None, alive=False) for endpoint in wanted[address]]
        peers[address] = peer(address, Link.NONE, paths, role="ROOT", session_age_s=None)
    node.state.roots_file = f"{SAMPLE_HOME}/roots.txt"
    parts = [f"{len(wanted)} root{'' if len(wanted) == 1 else 's'} in use"]
    parts += [
        f"{verb} {', '.join(who)}" for verb, who in (("added", added), ("removed", removed)) if who
    ]
    if added or removed:
        node.push_event("roots", "; ".join(parts))
    return reply(roots_json(node, added, removed))
