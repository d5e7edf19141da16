"""How many events of one kind reach the event feed and the log: a budget per kind.

Most events are news a human wants (a peer came up, a member asks to join), but some can
be caused by anyone who can reach the port (lookups a stranger's packets trigger, paths
that come and go). A burst of EVENT_BURST events of one kind passes untouched (a root
restarting brings every peer's "link" event at once); beyond that a kind gets
EVENT_RATE_PER_S. Events over budget are counted, not published or logged, and the next
one of that kind that is published says how many were left out, so nothing is lost
without trace. Kinds are chosen by our code (a small fixed vocabulary), never by the
sender, so the table of budgets stays small.
"""

from __future__ import annotations

from collections import Counter

from overlay_core.proto.effects import Event
from overlay_core.proto.ratelimit import TokenBucket

EVENT_RATE_PER_S = 2.0
EVENT_BURST = 60.0
MAX_KINDS = 256


class EventLimiter:
    """Decides, per event, whether it is published; see the module docstring."""

    def __init__(self, rate_per_s: float = EVENT_RATE_PER_S, burst: float = EVENT_BURST) -> None:
        self._rate, self._burst = rate_per_s, burst
        self._budgets: dict[str, TokenBucket] = {}
        self.suppressed: Counter[str] = Counter()  # left out since the last one published
        self.suppressed_total = 0

    def admit(self, event: Event, now: float) -> Event | None:
        """The event to publish (its message noting what was left out before it), or None
        when this kind is over its budget."""
        budget = self._budgets.get(event.kind)
        if budget is None:
            if len(self._budgets) >= MAX_KINDS:
                self._budgets.clear()  # never in practice: kinds are a fixed vocabulary
            budget = self._budgets[event.kind] = TokenBucket.full(self._rate, self._burst, now)
        if not budget.take(now):
            self.suppressed[event.kind] += 1
            self.suppressed_total += 1
            return None
        skipped = self.suppressed.pop(event.kind, 0)
        if not skipped:
            return event
        note = f" (+{skipped} more {event.kind} events left out)"
        return Event(event.kind, event.message + note, event.peer, event.nwid)
