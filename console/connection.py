"""Where the console finds overlayd, and how every failure to talk to it reads.

Shared by the synchronous `ApiClient` (console/client.py, the `ztui` subcommands) and the
asynchronous `AsyncApiClient` (console/api.py, the Textual app) through their common
transport base (console/transport.py), so both connect the same way and fail with the
same words.

Where it connects:
- `home=DIR`                                 -> the UNIX socket `DIR/control.sock`;
- nothing                                    -> the system node's socket if there is one,
                                                else the user's own (console/discovery.py);
- `api="unix:PATH"`                          -> that UNIX socket;
- `api="http://127.0.0.1:PORT"`              -> TCP, with a bearer token from `token=` or,
                                                failing that, the home's authtoken.secret.

Every failure surfaces as `ApiError` whose message is one line a person can act on
("overlayd is not running ...", "permission denied ...", or the daemon's own reason); the
words for the first two are console/discovery.py's.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from overlay_core.api.schema import AUTHTOKEN_NAME, CONTROL_SOCKET_NAME

from . import discovery

DEFAULT_TIMEOUT_S = 5.0
UNIX_BASE_URL = "http://overlayd"


class ApiError(Exception):
    """A failed API call, phrased as one line for a human (`str(error)`).

    status: the HTTP status, or None when the daemon could not be reached at all.
    error:  the daemon's short code ("validation", "not_joined", ...), or a client-side
            one ("stream_ended", "bad_reply"); None when unreachable.
    reason: the daemon's own reason when it gave one, else the message.
    field:  with error "validation", the request field that broke a rule.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error: str | None = None,
        field: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.field = field
        self.reason = reason if reason is not None else message


@dataclass(slots=True)
class Connection:
    """A resolved target: the socket or URL, headers, and the wording of failures."""

    home: Path
    socket_path: Path | None  # None for a TCP API
    base_url: str
    where: str  # the socket path or the URL, for messages
    choice: discovery.Choice  # how `home` was chosen, and where the system node is
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        *,
        home: Path | str | None = None,
        api: str | None = None,
        token: str | None = None,
    ) -> Connection:
        """Raises ApiError for an `api` that is neither unix:PATH nor http(s)://.

        Without `home`, the home is found (discovery.discover): for the socket when there
        is no `api`, and for the token file of an http `api`."""
        if home is not None:
            choice = discovery.given(Path(home))
        else:
            choice = discovery.discover()
            if api is not None:  # the user named the socket or URL: advise for that
                choice = discovery.given(choice.home)
        home_path = choice.home
        if api is None or api.startswith("unix:"):
            socket_path = Path(api[5:]) if api else home_path / CONTROL_SOCKET_NAME
            return cls(home_path, socket_path, UNIX_BASE_URL, str(socket_path), choice)
        if api.startswith(("http://", "https://")):
            token = token or read_token(home_path)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return cls(home_path, None, api.rstrip("/"), api, choice, headers)
        raise ApiError(f"--api {api!r}: expected unix:PATH or http://HOST:PORT", error="usage")

    @property
    def endpoint(self) -> str:
        """ "unix:/var/lib/ztui/control.sock" or the URL."""
        return f"unix:{self.socket_path}" if self.socket_path is not None else self.where

    # -- turning failures into one line

    def check_socket(self) -> None:
        """Find the common UNIX-socket problems before httpx hides them in a ConnectError."""
        if self.socket_path is None:
            return
        try:
            os.stat(self.socket_path)
        except FileNotFoundError:
            raise self.not_running(f"no socket at {self.socket_path}") from None
        except PermissionError:
            raise permission_error(self.socket_path) from None
        except OSError as exc:
            raise ApiError(f"cannot open {self.socket_path}: {exc.strerror}") from None
        # effective_ids: a root daemon manager that dropped privileges is judged as it is now.
        effective = os.access in os.supports_effective_ids
        if not os.access(self.socket_path, os.R_OK | os.W_OK, effective_ids=effective):
            raise permission_error(self.socket_path)

    def not_running(self, detail: str) -> ApiError:
        home = self.home if self.socket_path == self.home / CONTROL_SOCKET_NAME else None
        return ApiError(discovery.not_running_message(detail, home, self.choice, os.geteuid()))

    def timeout_error(self) -> ApiError:
        return ApiError(f"overlayd at {self.where} did not answer in time")

    def not_json_error(self) -> ApiError:
        message = f"overlayd at {self.where} sent a reply that is not JSON"
        return ApiError(message, error="bad_reply")

    def transport_error(self, exc: httpx.TransportError) -> ApiError:
        """Any httpx failure below HTTP: a timeout, a refused or missing socket, a reset."""
        if isinstance(exc, httpx.TimeoutException):
            return self.timeout_error()
        cause: BaseException | None = exc.__cause__ or exc.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if self.socket_path is not None:
            if isinstance(cause, PermissionError):
                return permission_error(self.socket_path)
            if isinstance(cause, OSError) and cause.errno == errno.ENOENT:
                return self.not_running(f"no socket at {self.socket_path}")
            if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
                return self.not_running(f"stale socket at {self.socket_path}")
            if not isinstance(exc, httpx.ConnectError):
                return ApiError(f"lost the connection to overlayd at {self.socket_path}: {exc}")
            return ApiError(f"cannot talk to overlayd at {self.socket_path}: {exc}")
        if not isinstance(exc, httpx.ConnectError):
            return ApiError(f"lost the connection to overlayd at {self.where}: {exc}")
        return ApiError(f"overlayd is not answering at {self.where}: is it running with --api-tcp?")

    def http_error(self, response: httpx.Response) -> ApiError:
        """An HTTP error answer (its body already read) as one line: the daemon's reason."""
        try:
            body = response.json()
            error, reason = str(body["error"]), str(body["reason"])
            field = body.get("field")
        except (ValueError, KeyError, TypeError, AttributeError):
            return ApiError(f"overlayd answered HTTP {response.status_code}", response.status_code)
        message = reason
        if response.status_code == 401:
            message = (
                f"overlayd at {self.where} refused the API token: pass --token, or run "
                f"where {self.home / AUTHTOKEN_NAME} is readable"
            )
        return ApiError(
            message,
            response.status_code,
            error,
            field if isinstance(field, str) else None,
            reason=reason,
        )


def read_token(home: Path) -> str | None:
    try:
        return (home / AUTHTOKEN_NAME).read_text().strip() or None
    except OSError:
        return None


def permission_error(path: Path) -> ApiError:
    """EACCES or EPERM on the socket: which group to join, or to log in again for."""
    return ApiError(discovery.permission_message(path, discovery.access_facts(path)))
