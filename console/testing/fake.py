"""FakeNode: an overlayd in memory, for the console's tests, screenshots and benchmarks.

It serves every route of the real control API through an `httpx.MockTransport`, routed
by the daemon's own table (overlay_core.api.schema.ROUTES), in the exact JSON shapes of
the schema, with the daemon's checks and error answers (400 "validation" naming the field,
404s, 405s; tests/daemon/test_api_parity.py replays the same requests against both), and
changes its state the way the daemon would: a join adds a network that is
REQUESTING_CONFIGURATION until the next `tick()`, approving a pending member gives it the
next free pool IP and is a `member` event, and so on. The handlers live in fakenode/
(routes.py, controller.py, roots.py), the starting data in fakenode/story.py, the JSON
builders and the story's names (NODE, LAPTOP, HOME_NWID, ...) in fake_data.py.

    node = FakeNode.sample()                    # the NAS story; FakeNode.large() for benches
    node = FakeNode.paths_sample()              # home with five members reporting paths
    node = FakeNode.mesh(members=200)           # a network of 200 reporting members
    async with node.client() as client:         # AsyncApiClient(transport=node.transport())
        peers = await client.peers()
        node.set_link(LAPTOP, Link.RELAY)       # a `link` event, and /peers says RELAY
        node.tick(5)                            # counters and latencies move, joins resolve
        node.go_down()                          # every call: ApiError "overlayd is not running"
        node.come_back()

Nothing reads a clock: the fake daemon's time starts at fake_data.EPOCH and moves only
with tick(), and randomness comes from `random.Random(seed)`, so snapshots are stable.
"""

from __future__ import annotations

import asyncio
import errno
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Unpack

import httpx

from overlay_core.api.schema import (
    EventAbout,
    EventJson,
    EventLog,
    Link,
    MemberJson,
    NetworkState,
    PeerJson,
    encode_sse,
)

from ..api import AsyncApiClient
from .fake_data import (
    EPOCH,
    SAMPLE_HOME,
    FakeState,
    configure,
    member,
    network_change,
    path,
    status,
    total_counters,
)
from .fakenode import paths, routes
from .fakenode.story import large_state, sample_state

__all__ = ["SAMPLE_HOME", "FakeNode", "FakeState"]

DEFAULT_REASON = "the daemon hit an internal error; see its log"


@dataclass
class _Failure:
    make: Callable[[], Exception] | None  # raised by the transport
    status: int  # else answered with this status and an ErrorJson
    body: dict[str, str | None]  # an ErrorJson
    path: str | None
    times: int | None


def _missing_socket() -> Exception:
    """What httpx raises when the control socket is gone: ENOENT under a ConnectError."""
    error = httpx.ConnectError("[Errno 2] No such file or directory")
    error.__cause__ = FileNotFoundError(errno.ENOENT, "No such file or directory")
    return error


class _EventStream(httpx.AsyncByteStream):
    """The body of one GET /events: replayed events, then whatever is pushed, forever."""

    def __init__(self, node: FakeNode, replay: list[EventJson]) -> None:
        self._node = node
        self._queue: asyncio.Queue[EventJson | Exception | None] = asyncio.Queue()
        for event in replay:
            self._queue.put_nowait(event)

    def put(self, item: EventJson | Exception | None) -> None:
        self._queue.put_nowait(item)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b": fake overlayd events\n\n"
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield encode_sse(item)

    async def aclose(self) -> None:
        self._node._streams.discard(self)


class FakeNode:
    """An in-memory overlayd; see the module docstring. `state` is public: tests may read
    and adjust it directly, in the schema's shapes."""

    def __init__(self, state: FakeState | None = None, *, seed: int = 0) -> None:
        self.state = state if state is not None else FakeState(EPOCH, status())
        self.requests: list[str] = []  # "GET /peers", "PATCH /controller/...", in order
        self.rng = random.Random(seed)
        self._streams: set[_EventStream] = set()
        self._failures: list[_Failure] = []
        self._anchor_ms: dict[str, float] = {}  # each peer's latency that tick() wobbles around
        # The story's events and those pushed since, kept and numbered as the daemon does.
        self.log = EventLog(lambda: self.state.now, history=self.state.events)
        self.state.events = self.log.events
        # The members' last path reports per hosted network (fakenode/paths.py), and who
        # among them is still online and so reports again as time passes.
        self.path_reports: dict[str, dict[str, paths.FakeReport]] = {}
        self.path_online: dict[str, set[str]] = {}

    @classmethod
    def sample(cls, seed: int = 0) -> FakeNode:
        """The NAS story: see fakenode/story.py sample_state."""
        return cls(sample_state(seed), seed=seed)

    @classmethod
    def large(cls, peers: int = 500, members: int = 200, seed: int = 0) -> FakeNode:
        """The story with `peers` peers and a network of `members` members, for benchmarks."""
        return cls(large_state(peers, members, seed), seed=seed)

    @classmethod
    def paths_sample(cls, seed: int = 0) -> FakeNode:
        """The NAS story with `home` grown to five members that report their paths (the
        phone approved, behind a symmetric NAT; the off-site box on TCP only): see
        fakenode/paths.py grow_home."""
        node = cls.sample(seed)
        paths.grow_home(node)
        return node

    @classmethod
    def mesh(cls, members: int = 200, seed: int = 0) -> FakeNode:
        """The NAS story plus `mesh` (fakenode.paths.MESH_NWID), a hosted network of
        `members` authorized members that report their paths: members*(members-1)/2 pairs."""
        node = cls.sample(seed)
        paths.add_mesh(node, members, seed)
        return node

    @property
    def address(self) -> str:
        return self.state.status["address"]

    @property
    def now(self) -> float:
        """The fake daemon's clock (seconds since the epoch); moves only with tick()."""
        return self.state.now

    @property
    def down(self) -> bool:
        return any(f.make is not None and f.path is None for f in self._failures)

    # ------------------------------------------------------------------ the transport

    def transport(self) -> httpx.MockTransport:
        """Serves the API; works for httpx.Client (no events) and httpx.AsyncClient."""
        return httpx.MockTransport(self.handle)

    def client(self, **options: Any) -> AsyncApiClient:
        """An AsyncApiClient on this node, as if at /var/lib/ztui/control.sock."""
        options.setdefault("home", SAMPLE_HOME)
        return AsyncApiClient(transport=self.transport(), **options)

    def handle(self, request: httpx.Request) -> httpx.Response:
        target = request.url.path + (f"?{request.url.query.decode()}" if request.url.query else "")
        self.requests.append(f"{request.method} {target}")
        failure = self._failure_for(request.url.path)
        if failure is not None:
            if failure.make is not None:
                raise failure.make()
            return httpx.Response(failure.status, json=failure.body)
        return routes.dispatch(self, request)

    def event_stream(self, since: int | None) -> httpx.Response:
        """The GET /events answer (fakenode/routes.py calls this)."""
        replay = [] if since is None else self.log.after(since)
        stream = _EventStream(self, replay)
        self._streams.add(stream)
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        return httpx.Response(200, headers=headers, stream=stream)

    # ------------------------------------------------------------------ driving it

    def push_event(self, kind: str, message: str, **about: Unpack[EventAbout]) -> EventJson:
        """Publish an event: buffered (for since=) and sent to every open stream."""
        event = self.log.add(kind, message, **about)
        for stream in list(self._streams):
            stream.put(event)
        return event

    def end_streams(self) -> None:
        """End open event streams cleanly, as a daemon that stops does."""
        for stream in list(self._streams):
            stream.put(None)
        self._streams.clear()

    def set_link(self, address: str, link: Link) -> None:
        """Move a peer to DIRECT, RELAY, TCP or NONE, its paths and relay reason with it,
        and publish the `link` event the daemon would ("3a91c4e7f2: DIRECT -> RELAY")."""
        peer = self.state.peers[address]
        old = peer["link"]
        if old == link:
            return
        was_preferred = peer["preferred_path"]
        for item in peer["paths"]:
            item["preferred"] = False
            if link in (Link.RELAY, Link.NONE) or (link == Link.TCP and item["transport"] == "udp"):
                item["alive"] = False
        chosen = None
        if link in (Link.DIRECT, Link.TCP):
            transport = "udp" if link == Link.DIRECT else "tcp"
            chosen = next((p for p in peer["paths"] if p["transport"] == transport), None)
            if chosen is None:
                endpoint = "203.0.113.99:9993" if link == Link.DIRECT else "tcp://203.0.113.10:443"
                chosen = path(endpoint, 25.0)
                peer["paths"].append(chosen)
            chosen["alive"], chosen["preferred"] = True, True
            if chosen["latency"]["smoothed_ms"] is None:
                chosen["latency"] = {"last_ms": 25.0, "smoothed_ms": 25.0, "jitter_ms": 2.0}
        peer["link"] = link
        peer["preferred_path"] = chosen["endpoint"] if chosen else None
        peer["latency"] = (
            dict(chosen["latency"])  # type: ignore[typeddict-item]
            if chosen
            else {"last_ms": None, "smoothed_ms": None, "jitter_ms": None}
        )
        peer["relay_reason"] = routes.relay_reason_for(self, peer, old, was_preferred)
        self.push_event("link", f"{address}: {old} -> {link}", peer=address)

    def add_pending_member(
        self, nwid: str, address: str, *, physical: str | None = "198.51.100.61:9993"
    ) -> MemberJson:
        """An unknown member asks to join hosted network `nwid`: a pending member and the
        `member_request` event the daemon publishes for it."""
        record = member(nwid, address, self.state.now, physical=physical)
        self.state.members.setdefault(nwid, {})[address] = record
        name = self.state.hosted[nwid]["name"]
        where = f" from {physical}" if physical else ""
        message = f"{address} asks to join {name} ({nwid}){where}; approve it?"
        self.push_event("member_request", message, nwid=nwid, address=address)
        return record

    def tick(self, seconds: float = 1.0) -> None:
        """Advance the fake clock: counters grow with each peer's rate, latencies wobble
        around where they started, online members send their path report again, joins
        still REQUESTING_CONFIGURATION get their answer, config ages grow. Deterministic
        for a given seed and sequence of calls."""
        state = self.state
        state.now += seconds
        state.status["uptime_s"] = round(state.status["uptime_s"] + seconds, 3)
        for address, peer in state.peers.items():
            self._tick_peer(address, peer, seconds)
        state.status["counters"] = total_counters(state.peers)
        paths.heartbeat(self)
        for nwid, network in list(state.networks.items()):
            if network["state"] == NetworkState.REQUESTING_CONFIGURATION:
                routes.resolve_join(self, nwid)
            elif network["state"] == NetworkState.OK and network["config_age_s"] is not None:
                network["config_age_s"] = round(network["config_age_s"] + seconds, 3)

    def _tick_peer(self, address: str, peer: PeerJson, seconds: float) -> None:
        tx_rate, rx_rate = self.state.rates.get(address, (0, 0))
        tx, rx = int(tx_rate * seconds), int(rx_rate * seconds)
        counters = peer["counters"]
        for key, value in (("tx_bytes", tx), ("rx_bytes", rx)):
            counters[key] = counters.get(key, 0) + value
        counters["tx_packets"] = counters.get("tx_packets", 0) + (tx + 1199) // 1200
        counters["rx_packets"] = counters.get("rx_packets", 0) + (rx + 1199) // 1200
        if peer["session_age_s"] is not None:
            peer["session_age_s"] = round(peer["session_age_s"] + seconds, 3)
        for item in peer["paths"]:
            item["mtu_searching"] = False  # a probe_mtu search ends within a tick
            if not item["alive"]:
                if item["last_receive_ago_s"] is not None:
                    item["last_receive_ago_s"] = round(item["last_receive_ago_s"] + seconds, 3)
                continue
            item["last_receive_ago_s"] = round(self.rng.uniform(0.1, 2.0), 3)
            if not item["preferred"]:
                continue
            item["bytes_sent"] += tx
            item["bytes_received"] += rx
            item["packets_sent"] += (tx + 1199) // 1200
            item["packets_received"] += (rx + 1199) // 1200
            anchor = self._anchor_ms.setdefault(address, item["latency"]["smoothed_ms"] or 25.0)
            smoothed = round(anchor * self.rng.uniform(0.94, 1.06), 3)
            last = round(smoothed * self.rng.uniform(0.9, 1.1), 3)
            item["latency"] = {
                "last_ms": last,
                "smoothed_ms": smoothed,
                "jitter_ms": round(abs(last - smoothed), 3),
            }
            peer["latency"] = dict(item["latency"])  # type: ignore[typeddict-item]
        if peer["link"] == Link.NONE and peer["last_receive_ago_s"] is not None:
            peer["last_receive_ago_s"] = round(peer["last_receive_ago_s"] + seconds, 3)
        elif peer["link"] != Link.NONE:
            peer["last_receive_ago_s"] = round(self.rng.uniform(0.1, 2.0), 3)

    # ------------------------------------------------------------------ failures

    def fail_with(
        self,
        failure: Exception | int,
        *,
        error: str = "internal",
        reason: str = DEFAULT_REASON,
        field: str | None = None,
        path: str | None = None,
        times: int | None = None,
    ) -> None:
        """Make requests fail until come_back(), or for the next `times` requests; `path`
        limits it to paths starting with that text. An exception is raised by the
        transport as httpx raises a broken connection's (httpx.ConnectError,
        httpx.ReadTimeout, ...); an int is answered as that HTTP status with
        {"error", "reason", "field"}, the daemon's error shape."""
        body = {"error": error, "reason": reason, "field": field}
        if isinstance(failure, int):
            self._failures.append(_Failure(None, failure, body, path, times))
        else:
            self._failures.append(_Failure(lambda: failure, 0, body, path, times))

    def go_down(self) -> None:
        """The daemon stops without a word: open event streams break, and every request
        fails as a missing control socket does (ApiError "overlayd is not running")."""
        self._failures.append(_Failure(_missing_socket, 0, {}, None, None))
        for stream in list(self._streams):
            stream.put(httpx.RemoteProtocolError("peer closed connection without a response"))
        self._streams.clear()

    def come_back(self) -> None:
        """Requests succeed again (the state is as it was); streams may reconnect."""
        self._failures.clear()

    def _failure_for(self, request_path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.path is None or request_path.startswith(failure.path):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    # ------------------------------------------------------------------ for fakenode/

    def own_network_changed(self, nwid: str) -> None:
        """This node is a member of hosted `nwid`: follow what its controller now says."""
        network = self.state.networks.get(nwid)
        record = self.state.hosted.get(nwid)
        if network is None:
            return
        was = network["state"]
        if record is None:
            network["state"] = NetworkState.NOT_FOUND
        else:
            members = self.state.members.get(nwid, {})
            me = members.get(self.address)
            if me is not None and me["authorized"]:
                authorized = sum(1 for m in members.values() if m["authorized"])
                configure(network, record, me["ips"], authorized)
            else:
                network["state"] = NetworkState.ACCESS_DENIED
        now = network["state"]
        if now != was:
            message = network_change(nwid, was, now, network["name"])
            self.push_event("network", message, nwid=nwid)
