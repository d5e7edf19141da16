"""A small synchronous client for the overlayd control API, used by the `ztui` subcommands.

Where it connects:
- `home=DIR` (or nothing: the default home) -> the UNIX socket `DIR/control.sock`;
- `api="unix:PATH"`                          -> that UNIX socket;
- `api="http://127.0.0.1:PORT"`              -> TCP, with a bearer token from `token=` or,
                                                failing that, the home's authtoken.secret.

Every failure surfaces as `ApiError` whose message is one line a person can act on
("overlayd is not running ...", "permission denied ...", or the daemon's own reason), so
the CLI prints `str(error)` and never a traceback.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, cast

import httpx

from overlay_core.api.schema import (
    AUTHTOKEN_NAME,
    CONTROL_SOCKET_NAME,
    ControllerNetworkJson,
    DeletedJson,
    EchoJson,
    LeftJson,
    MemberJson,
    NetworkJson,
    PeerJson,
    StatusJson,
    default_home,
)

DEFAULT_TIMEOUT_S = 5.0


class ApiError(Exception):
    """A failed API call, phrased as one line for a human."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error: str | None = None,
        field: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.error = error
        self.field = field  # with error "validation": the field that broke a rule


class ApiClient:
    """Talks to one overlayd. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        *,
        home: Path | str | None = None,
        api: str | None = None,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.socket_path: Path | None = None
        headers: dict[str, str] = {}
        if api is None or api.startswith("unix:"):
            self.socket_path = Path(api[5:]) if api else self.home / CONTROL_SOCKET_NAME
            self.where = str(self.socket_path)
            transport = httpx.HTTPTransport(uds=str(self.socket_path))
            base_url = "http://overlayd"
        elif api.startswith(("http://", "https://")):
            self.where = api
            transport = httpx.HTTPTransport()
            base_url = api.rstrip("/")
            token = token or self._read_token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
        else:
            raise ApiError(f"--api {api!r}: expected unix:PATH or http://HOST:PORT")
        self._http = httpx.Client(
            transport=transport, base_url=base_url, headers=headers, timeout=timeout_s
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _read_token(self) -> str | None:
        try:
            return (self.home / AUTHTOKEN_NAME).read_text().strip() or None
        except OSError:
            return None

    # -- calls

    def status(self) -> StatusJson:
        return cast(StatusJson, self._request("GET", "/status"))

    def peers(self) -> list[PeerJson]:
        return cast(list[PeerJson], self._request("GET", "/peers"))

    def peer(self, address: str) -> PeerJson:
        return cast(PeerJson, self._request("GET", f"/peers/{address}"))

    def echo(self, address: str, timeout_s: float = 2.0) -> EchoJson:
        body = {"timeout_s": timeout_s}
        # The daemon waits up to timeout_s for the reply; give HTTP a little longer than that.
        return cast(
            EchoJson,
            self._request("POST", f"/peers/{address}/echo", json=body, wait_s=timeout_s + 2),
        )

    def metrics(self) -> str:
        return cast(str, self._request("GET", "/metrics", text=True))

    # -- networks this node has joined

    def networks(self) -> list[NetworkJson]:
        return cast(list[NetworkJson], self._request("GET", "/networks"))

    def network(self, nwid: str) -> NetworkJson:
        return cast(NetworkJson, self._request("GET", f"/networks/{nwid}"))

    def join(self, nwid: str, settings: dict[str, Any] | None = None) -> NetworkJson:
        return cast(NetworkJson, self._request("POST", f"/networks/{nwid}", json=settings))

    def leave(self, nwid: str) -> LeftJson:
        return cast(LeftJson, self._request("DELETE", f"/networks/{nwid}"))

    def set_network(self, nwid: str, settings: dict[str, Any]) -> NetworkJson:
        return cast(NetworkJson, self._request("PATCH", f"/networks/{nwid}", json=settings))

    # -- networks this node's controller hosts

    def controller_networks(self) -> list[ControllerNetworkJson]:
        return cast(list[ControllerNetworkJson], self._request("GET", "/controller/networks"))

    def controller_network(self, nwid: str) -> ControllerNetworkJson:
        path = f"/controller/networks/{nwid}"
        return cast(ControllerNetworkJson, self._request("GET", path))

    def create_network(self, body: dict[str, Any]) -> ControllerNetworkJson:
        path = "/controller/networks"
        return cast(ControllerNetworkJson, self._request("POST", path, json=body))

    def update_network(self, nwid: str, body: dict[str, Any]) -> ControllerNetworkJson:
        path = f"/controller/networks/{nwid}"
        return cast(ControllerNetworkJson, self._request("PATCH", path, json=body))

    def delete_network(self, nwid: str) -> DeletedJson:
        return cast(DeletedJson, self._request("DELETE", f"/controller/networks/{nwid}"))

    def members(self, nwid: str) -> list[MemberJson]:
        path = f"/controller/networks/{nwid}/members"
        return cast(list[MemberJson], self._request("GET", path))

    def member(self, nwid: str, address: str) -> MemberJson:
        path = f"/controller/networks/{nwid}/members/{address}"
        return cast(MemberJson, self._request("GET", path))

    def update_member(self, nwid: str, address: str, body: dict[str, Any]) -> MemberJson:
        path = f"/controller/networks/{nwid}/members/{address}"
        return cast(MemberJson, self._request("PATCH", path, json=body))

    def delete_member(self, nwid: str, address: str) -> DeletedJson:
        path = f"/controller/networks/{nwid}/members/{address}"
        return cast(DeletedJson, self._request("DELETE", path))

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        wait_s: float | None = None,
        text: bool = False,
    ) -> Any:
        self._check_socket()
        timeout = httpx.USE_CLIENT_DEFAULT if wait_s is None else wait_s
        try:
            response = self._http.request(method, path, json=json, timeout=timeout)
        except httpx.TimeoutException:
            raise ApiError(f"overlayd at {self.where} did not answer in time") from None
        except httpx.TransportError as exc:
            raise self._connect_error(exc) from None
        if response.status_code >= 400:
            raise self._http_error(response)
        if text:
            return response.text
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"overlayd at {self.where} sent a reply that is not JSON") from None

    # -- turning failures into one line

    def _not_running(self, detail: str) -> ApiError:
        home = self.home if self.socket_path == self.home / CONTROL_SOCKET_NAME else None
        start = f"overlayd --home {home}" if home is not None else "overlayd --home DIR"
        return ApiError(
            f"overlayd is not running ({detail}): start it with `{start}` "
            "or `systemctl start overlayd`"
        )

    def _check_socket(self) -> None:
        """Find the common UNIX-socket problems before httpx hides them in a ConnectError."""
        if self.socket_path is None:
            return
        try:
            os.stat(self.socket_path)
        except FileNotFoundError:
            raise self._not_running(f"no socket at {self.socket_path}") from None
        except PermissionError:
            raise _permission_error(self.socket_path) from None
        except OSError as exc:
            raise ApiError(f"cannot open {self.socket_path}: {exc.strerror}") from None
        # effective_ids: a root daemon manager that dropped privileges is judged as it is now.
        effective = os.access in os.supports_effective_ids
        if not os.access(self.socket_path, os.R_OK | os.W_OK, effective_ids=effective):
            raise _permission_error(self.socket_path)

    def _connect_error(self, exc: httpx.TransportError) -> ApiError:
        cause = exc.__cause__ or exc.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if self.socket_path is not None:
            if isinstance(cause, PermissionError):
                return _permission_error(self.socket_path)
            if isinstance(cause, OSError) and cause.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return self._not_running(f"stale socket at {self.socket_path}")
            return ApiError(f"cannot talk to overlayd at {self.socket_path}: {exc}")
        return ApiError(f"overlayd is not answering at {self.where}: is it running with --api-tcp?")

    def _http_error(self, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
            error, reason = str(body["error"]), str(body["reason"])
            field = body.get("field")
        except (ValueError, KeyError, TypeError, AttributeError):
            return ApiError(f"overlayd answered HTTP {response.status_code}", response.status_code)
        if response.status_code == 401:
            reason = (
                f"overlayd at {self.where} refused the API token: pass --token, or run "
                f"where {self.home / AUTHTOKEN_NAME} is readable"
            )
        return ApiError(
            reason, response.status_code, error, field if isinstance(field, str) else None
        )


def _permission_error(path: Path) -> ApiError:
    return ApiError(
        f"cannot open {path}: permission denied — run as root or join the group that owns it"
    )
