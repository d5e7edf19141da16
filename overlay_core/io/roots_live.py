"""The roots of a running daemon (GET and PUT /roots), and where they are kept for the next
start.

Roots given to a node, at start (`overlayd --roots FILE`) or while it runs (`PUT /roots`,
which `ztui roots set FILE` and `overlayd --roots FILE` against a running node send), are
copied into the home as `HOME/roots.txt`, and settings.json's `roots` names that copy. The
node's own copy is what it starts with next time, as ZeroTier keeps its planet and moons
in its home: the file the admin handed over may be deleted or edited afterwards (or live
where a systemd unit with ProtectHome= cannot read it) without changing what the node
uses. To change the roots, hand over a file again.

The copy is written in the roots-file format with the entries the node parsed (comments
dropped), so it always reads back as exactly the roots in use. It holds public identities
and endpoints only, nothing secret (parse_roots refuses secret identities).

The order of a change is: parse (the caller did), save the copy and settings.json, then
apply to the node. A change that cannot be saved is refused whole, rather than running
with roots that a restart would silently take away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from overlay_core.api.routes_node import RootsChange, RootsNotApplied, RootsNotSaved, RootState
from overlay_core.proto.identity import format_address
from overlay_core.proto.netcheck import netcheck
from overlay_core.proto.node import Node
from overlay_core.proto.roots import RootEntry, roots_text
from overlay_core.proto.states import RootLink

from .home import Home, HomeError, write_file_atomic
from .networks import Drive

if TYPE_CHECKING:  # the daemon imports this module
    from .startup import DaemonConfig

ROOTS_NAME = "roots.txt"
ROOTS_FILE_MODE = 0o644  # public identities and endpoints, like identity.public
ROOTS_HEADER = (
    "The roots this node starts with, written by overlayd.\n"
    "To change them: `ztui roots set FILE`, or `overlayd --roots FILE` (the node may be\n"
    "running); `overlayd options --reset roots` starts without roots."
)


def roots_file_path(home: Home) -> Path:
    return home.path / ROOTS_NAME


def save_roots(home: Home, entries: Sequence[RootEntry]) -> Path:
    """Write HOME/roots.txt atomically and make settings.json's `roots` name it; returns
    the path. Raises HomeError (one line) when either cannot be written."""
    home.ensure()
    path = roots_file_path(home).resolve()
    try:
        write_file_atomic(path, roots_text(entries, ROOTS_HEADER).encode(), ROOTS_FILE_MODE)
    except OSError as exc:
        raise HomeError(f"cannot write {path}: {exc.strerror or exc}") from None
    settings = home.load_settings()
    if settings.get("roots") != str(path):
        home.save_settings({**settings, "roots": str(path)})
    return path


class LiveRoots:
    """The daemon's side of /roots. It holds no state of its own: the roots in use are the
    node's (and `config.roots`, kept equal, so the daemon's start line and a restart of
    the same Daemon object agree with the node)."""

    def __init__(
        self,
        home: Home,
        config: DaemonConfig,
        node: Callable[[], Node],
        drive: Drive,
        clock: Callable[[], float],
    ) -> None:
        self._home = home
        self._config = config
        self._node = node  # the running node; RuntimeError before start
        self._drive = drive  # calls into the node and executes the effects (daemon.py)
        self._clock = clock

    def status(self) -> list[RootState]:
        """The roots in use, in roots-file order, with the link to each (read from the
        node's state, as GET /netcheck does: nothing is sent)."""
        node = self._node()
        checks = {c.address: c for c in netcheck(node, self._clock()).roots}
        out: list[RootState] = []
        for entry in self._config.roots:
            check = checks.get(entry.identity.address_text)
            if check is None:  # this node's own line: a root shares everyone's file
                first = str(entry.endpoints[0]) if entry.endpoints else None
                out.append(RootState(entry, RootLink.SELF, first, None))
            else:
                out.append(RootState(entry, check.link, check.endpoint, check.latency_ms))
        return out

    def saved_in(self) -> str | None:
        """The roots file the next start uses (settings.json's `roots`), if any."""
        try:
            value = self._home.load_settings().get("roots")
        except HomeError:
            return None
        return value if isinstance(value, str) else None

    def replace(self, entries: Sequence[RootEntry]) -> RootsChange:
        """Save `entries` as the node's roots, then hand them to the running node.
        Raises RootsNotSaved when they cannot be saved; then nothing has changed.
        Raises RootsNotApplied when saved but the running node did not take them."""
        node = self._node()
        before = set(node.roots)
        try:
            save_roots(self._home, entries)
        except HomeError as exc:
            raise RootsNotSaved(str(exc)) from None
        self._config.roots = list(entries)
        self._drive(lambda running, now: running.set_roots(list(entries), now))
        after = set(node.roots)
        # _drive logs and swallows an exception (one bad call must not stop the daemon),
        # so the outcome is checked rather than a quiet return trusted.
        if after != {e.identity.address for e in entries} - {node.address}:
            raise RootsNotApplied("saved for the next start, but the running node kept others")
        return RootsChange(
            added=[format_address(a) for a in sorted(after - before)],
            removed=[format_address(a) for a in sorted(before - after)],
        )
