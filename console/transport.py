"""How one API call travels to overlayd and back, sync or async.

A call is first described (`Request`: method, path, query, body, how long it may take,
whether the answer is JSON or text) and then sent by one of two thin transports over
httpx: `SyncTransport` (httpx.Client, for the `ztui` subcommands) or `AsyncTransport`
(httpx.AsyncClient, for the Textual app). Everything else is shared, so the two cannot
drift apart:

1. where to connect and with which token (console/connection.py, `Connection.resolve`);
2. before each exchange, the UNIX socket is checked on disk, so "not running" and
   "permission denied" read as one line instead of a bare ConnectError (`reaching`);
3. any httpx failure below HTTP becomes the same one-line ApiError (`reaching`);
4. an HTTP error answer becomes ApiError with the daemon's status, code, reason and
   field; a 2xx answer becomes the JSON (or text) the call expects (`Request.answer`).

The calls themselves are written once, in console/calls.py.

`transport=` (httpx's word: what carries the bytes) replaces the socket or TCP transport,
e.g. an httpx.MockTransport or `FakeNode().transport()` in tests; the UNIX socket is then
not looked for on disk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, Self, TypeVar, cast

import httpx

from .connection import DEFAULT_TIMEOUT_S, Connection

__all__ = ["AsyncTransport", "Request", "SyncTransport"]

T = TypeVar("T")
C = TypeVar("C", httpx.BaseTransport, httpx.AsyncBaseTransport)


@dataclass(frozen=True, slots=True)
class Request(Generic[T]):
    """One API call, described and not yet sent; T is the JSON shape of its answer."""

    method: str
    path: str
    body: Any = None  # the JSON body; None sends none
    params: Mapping[str, str] | None = None  # the query string
    wait_s: float | None = None  # this call's HTTP timeout, when the client's is too short
    text: bool = False  # the answer is text (GET /metrics), not JSON

    def http_args(self) -> dict[str, Any]:
        """The keyword arguments of httpx's `request()` for this call."""
        timeout = httpx.USE_CLIENT_DEFAULT if self.wait_s is None else self.wait_s
        return {
            "method": self.method,
            "url": self.path,
            "params": self.params,
            "json": self.body,
            "timeout": timeout,
        }

    def answer(self, response: httpx.Response, conn: Connection) -> T:
        """The answer as T, or ApiError: the daemon's own for 4xx/5xx, bad_reply for a
        2xx that is not JSON."""
        if response.status_code >= 400:
            raise conn.http_error(response)
        if self.text:
            return cast(T, response.text)
        try:
            return cast(T, response.json())
        except ValueError:
            raise conn.not_json_error() from None


class TransportBase(Generic[C]):
    """Where the client talks to, and the failure wording around every exchange; C is
    what httpx may be given to carry the bytes (sync or async)."""

    def __init__(
        self,
        *,
        home: Path | str | None = None,
        api: str | None = None,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: C | None = None,
    ) -> None:
        """Raises ApiError for an `api` that is neither unix:PATH nor http(s)://."""
        self._conn = Connection.resolve(home=home, api=api, token=token)
        self._carrier: C | None = transport
        self._check = transport is None  # a given transport has no socket on disk
        self.timeout_s = timeout_s

    @property
    def home(self) -> Path:
        return self._conn.home

    @property
    def socket_path(self) -> Path | None:
        """The UNIX socket, or None for a TCP API."""
        return self._conn.socket_path

    @property
    def where(self) -> str:
        """The socket path or the URL, as failures name it."""
        return self._conn.where

    @property
    def endpoint(self) -> str:
        """ "unix:/var/lib/ztui/control.sock" or the URL."""
        return self._conn.endpoint

    def _options(self) -> dict[str, Any]:
        """httpx.Client's and httpx.AsyncClient's common settings."""
        return {
            "base_url": self._conn.base_url,
            "headers": self._conn.headers,
            "timeout": self.timeout_s,
        }

    def _uds(self) -> str | None:
        sock = self._conn.socket_path
        return None if sock is None else str(sock)

    @contextmanager
    def reaching(self) -> Iterator[None]:
        """Around one exchange: the socket checked first, httpx's failures as ApiError.

        A plain (not async) context manager, so both transports and the event stream
        share it."""
        if self._check:
            self._conn.check_socket()
        try:
            yield
        except httpx.TransportError as exc:
            raise self._conn.transport_error(exc) from None


class SyncTransport(TransportBase[httpx.BaseTransport]):
    """Sends Requests with httpx.Client. Use as a context manager, or call `close()`."""

    @cached_property
    def _http(self) -> httpx.Client:
        carrier = self._carrier or httpx.HTTPTransport(uds=self._uds())
        return httpx.Client(transport=carrier, **self._options())

    def send(self, request: Request[T]) -> T:
        with self.reaching():
            response = self._http.request(**request.http_args())
        return request.answer(response, self._conn)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTransport(TransportBase[httpx.AsyncBaseTransport]):
    """Sends Requests with httpx.AsyncClient. `async with`, or `await aclose()` when done."""

    @cached_property
    def _http(self) -> httpx.AsyncClient:
        carrier = self._carrier or httpx.AsyncHTTPTransport(uds=self._uds())
        return httpx.AsyncClient(transport=carrier, **self._options())

    async def send(self, request: Request[T]) -> T:
        with self.reaching():
            response = await self._http.request(**request.http_args())
        return request.answer(response, self._conn)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
