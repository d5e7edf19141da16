"""One line of `ztui doctor`'s report, the checks' names in report order, and the
shorthands the checks build results with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail", "skipped"]

NAMES = (
    "/dev/net/tun",
    "CAP_NET_ADMIN",
    "daemon",
    "socket",
    "roots",
    "root links",
    "clock",
    "MTU",
    "routes",
    "addresses",
)
# Why every check that needs the daemon is skipped when it gave no usable answer: the
# daemon line reports the cause once.
DAEMON_DOWN = "needs overlayd, which gave no usable answer (see daemon)"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the report. detail: what was seen (for skipped: why it was not
    checked). fix: the one thing to do, for warn and fail."""

    check: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


def ok(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "ok", detail)


def warn(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, "warn", detail, fix)


def fail(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, "fail", detail, fix)


def skip(check: str, why: str) -> CheckResult:
    return CheckResult(check, "skipped", why)
