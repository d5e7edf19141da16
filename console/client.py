"""The synchronous client for the overlayd control API, used by the `ztui` subcommands.

Its calls are console/calls.py's, shared with the async client the Textual app uses
(console/api.py); only the transport differs (httpx.Client, console/transport.py). Where
it connects and how failures read is console/connection.py: `home=DIR` (or nothing) is
the UNIX socket `DIR/control.sock`, `api="unix:PATH"` another socket,
`api="http://127.0.0.1:PORT"` TCP with a bearer token. Every failure surfaces as
`ApiError` whose message is one line a person can act on, so the CLI prints `str(error)`
and never a traceback.
"""

from __future__ import annotations

from .calls import ApiCalls
from .connection import DEFAULT_TIMEOUT_S, ApiError
from .transport import SyncTransport

__all__ = ["DEFAULT_TIMEOUT_S", "ApiClient", "ApiError"]


class ApiClient(ApiCalls, SyncTransport):
    """Talks to one overlayd. Use as a context manager, or call `close()`.

    ApiClient(home=None, api=None, token=None, timeout_s=DEFAULT_TIMEOUT_S, transport=None):
    `transport` replaces the socket or TCP transport (tests: a MockTransport); the UNIX
    socket is then not checked on disk."""
