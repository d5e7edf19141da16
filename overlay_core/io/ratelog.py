"""Logging at a bounded rate, for lines that a remote party can make the daemon write.

A hostile peer that opens and drops TCP connections, or sends junk, must not be able to
fill the disk or drown the lines an admin needs: each such line belongs to a *kind*, and at
most one line of a kind is written per `interval_s`. The lines in between are counted, not
lost without trace: the next line of that kind that is written says how many were left out.

    tcp_log = RateLimitedLog(logging.getLogger(__name__), 10.0)
    tcp_log.info("framing", "closing TCP link %s: %s", endpoint, error)
    # -> "closing TCP link tcp://192.0.2.7:4321: bad record length 0"
    # 500 more within 10 s are only counted; the first one after that reads
    # -> "closing TCP link tcp://192.0.2.9:999: bad record length 7 (+500 more like this
    #     in 12 s, not logged)"

Kinds are a small fixed vocabulary chosen by the caller ("framing", "refused", ...), never
something the remote side picks such as an address: a kind is one slot of memory, and
per-address kinds would let a peer defeat the limit by changing address. The count is
of lines left out by this helper only; lines below the logger's level cost nothing and
are not counted. Everything runs on the caller's thread; there are no locks because the
daemon logs from its one event loop thread.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

# Kinds are fixed by the code, so this is never reached in practice; it bounds the memory
# if a caller gets that wrong, by forgetting the kinds that have been quiet longest.
MAX_KINDS = 256


class RateLimitedLog:
    """At most one line per kind per `interval_s` to `logger`; see the module docstring.

    Each method returns True if the line was written, False if it was left out (rate
    limited, or below the logger's level). `suppressed[kind]` is how many lines of that
    kind were left out since the last one written.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self.suppressed: Counter[str] = Counter()

    def debug(self, kind: str, msg: str, *args: object) -> bool:
        return self._log(logging.DEBUG, kind, msg, args)

    def info(self, kind: str, msg: str, *args: object) -> bool:
        return self._log(logging.INFO, kind, msg, args)

    def warning(self, kind: str, msg: str, *args: object) -> bool:
        return self._log(logging.WARNING, kind, msg, args)

    def log(self, level: int, kind: str, msg: str, *args: object) -> bool:
        return self._log(level, kind, msg, args)

    def _log(self, level: int, kind: str, msg: str, args: tuple[object, ...]) -> bool:
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval_s:
            self.suppressed[kind] += 1
            return False
        left_out = self.suppressed.pop(kind, 0)
        if left_out and last is not None:
            msg = f"{msg} (+%d more like this in %.0f s, not logged)"
            args = (*args, left_out, now - last)
        if last is None and len(self._last) >= MAX_KINDS:
            self._forget_oldest()
        self._last[kind] = now
        # stacklevel 3: the record names the caller of info()/debug()/..., not this module.
        self.logger.log(level, msg, *args, stacklevel=3)
        return True

    def _forget_oldest(self) -> None:
        oldest = sorted(self._last, key=self._last.__getitem__)[: MAX_KINDS // 2]
        for kind in oldest:
            del self._last[kind]
            self.suppressed.pop(kind, None)
