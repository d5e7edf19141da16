"""Lab objects that must be torn down however the program ends.

A Rig owns network namespaces and the processes in them, an OverlayWorld owns daemons and
a directory; namespaces are tied to no process, so whatever is not closed outlives the
test run or the demo. `Closing` gives both the `with` form, and `EVERY.close_all`
(registered with atexit) closes whatever is still open at interpreter exit, newest first:
a world built on a rig stops its daemons before that rig is torn down under them.
"""

from __future__ import annotations

import atexit
import itertools
import weakref
from abc import ABC, abstractmethod
from types import TracebackType
from typing import ClassVar, Self


class Lifetimes:
    """The Closing objects still open, in the order they were opened."""

    def __init__(self) -> None:
        self._open: weakref.WeakValueDictionary[int, Closing] = weakref.WeakValueDictionary()
        self._opened = itertools.count()

    def opened(self, item: Closing) -> int:
        key = next(self._opened)
        self._open[key] = item
        return key

    def closed(self, key: int) -> None:
        self._open.pop(key, None)

    def close_all(self) -> None:
        """Close every one still open, the newest first."""
        for key in sorted(self._open, reverse=True):
            item = self._open.get(key)
            if item is not None:
                item.close()


EVERY = Lifetimes()  # closed at interpreter exit
atexit.register(EVERY.close_all)


class Closing(ABC):
    """A context manager that closes on exit, and at interpreter exit if still open.

    Subclasses call `_opened_now()` once they hold something to clean up and implement
    `_release()`, which `close()` calls once however often it is called; it must not
    raise (a teardown error must not hide the error of the test that failed)."""

    lifetimes: ClassVar[Lifetimes] = EVERY  # where open ones are kept; tests use their own
    _lifetime_key: int | None = None
    _released = False

    def _opened_now(self) -> None:
        self._lifetime_key = self.lifetimes.opened(self)

    def close(self) -> None:
        """Release everything, once; later calls do nothing."""
        if self._released:
            return
        self._released = True
        if self._lifetime_key is not None:
            self.lifetimes.closed(self._lifetime_key)
        self._release()

    @property
    def closed(self) -> bool:
        return self._released

    @abstractmethod
    def _release(self) -> None:
        """What close() does, the first time."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
