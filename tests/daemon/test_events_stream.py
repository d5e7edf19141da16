"""GET /events on a real Daemon: the wire format, replay, member requests, keepalives,
overflow, and a stop() that does not wait for consoles to hang up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from overlay_core.io.daemon import Daemon
from overlay_core.lab.loopback import LoopbackOverlay

from .netstory import story, unix_client, wait_state


@dataclass
class Frame:
    """One server-sent event as it came over the wire, or a comment line."""

    id: str | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)


class Stream:
    """Reads an open /events response frame by frame."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()

    async def frame(self, timeout_s: float = 5.0) -> Frame | None:
        """The next frame (event or comment block); None when the stream ended."""
        frame = Frame()
        while True:
            try:
                line = await asyncio.wait_for(anext(self.lines), timeout_s)
            except StopAsyncIteration:
                return None
            if line == "":
                if frame.event or frame.comments:
                    return frame
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                frame.comments.append(value)
            elif name == "id":
                frame.id = value
            elif name == "event":
                frame.event = value
            elif name == "data":
                frame.data = json.loads(value)

    async def event(self, timeout_s: float = 5.0) -> Frame:
        """The next real event, skipping comments."""
        while True:
            frame = await self.frame(timeout_s)
            assert frame is not None, "the stream ended"
            if frame.event is not None:
                return frame

    async def until(self, kind: str, text: str = "", timeout_s: float = 10.0) -> Frame:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            frame = await self.event(max(0.01, deadline - loop.time()))
            assert frame.data is not None
            if frame.event == kind and text in frame.data["message"]:
                return frame


@asynccontextmanager
async def events(
    daemon: Daemon, query: str = "", headers: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    timeout = httpx.Timeout(10, read=None)
    async with unix_client(daemon) as client:
        async with client.stream("GET", f"/events{query}", headers=headers, timeout=timeout) as r:
            assert r.status_code == 200, await r.aread()
            assert r.headers["content-type"].startswith("text/event-stream")
            yield Stream(r)


async def test_stream_reports_a_link_going_direct(overlay: LoopbackOverlay) -> None:
    """A console watching leaf a sees b appear as a peer and its link go DIRECT once the
    two punch through, with the peer's address on both events and ids increasing. The
    root introduces the two as soon as a asks for b, so on loopback the punch may finish
    before the first link check: b then appears DIRECT at once ("new, DIRECT")."""
    await overlay.add_root()
    a = await overlay.add_leaf("a")
    b = await overlay.add_leaf("b")
    await overlay.wait_online()
    b_text = b.identity.address_text
    async with events(a) as stream:
        assert await a.echo(b.address, timeout_s=3) is not None
        new = await stream.until("peer", f"{b_text}: new")
        assert new.data is not None
        if new.data["message"].endswith("DIRECT"):
            direct = new
        else:
            direct = await stream.until("link", f"{b_text}: RELAY -> DIRECT")
            assert direct.data is not None and direct.data["kind"] == "link"
            assert new.id is not None and direct.id is not None
            assert int(direct.id) > int(new.id)
    assert direct.data is not None and direct.id is not None
    assert new.data["peer"] == direct.data["peer"] == b_text
    assert direct.data["id"] == int(direct.id)
    assert set(direct.data) == {"id", "time", "kind", "message", "peer", "nwid", "address"}


async def test_since_replays_buffered_events(overlay: LoopbackOverlay) -> None:
    """?since=N replays the buffered events after N, in order, before live ones; the
    Last-Event-ID header does the same, so a reconnecting console misses nothing."""
    a = await overlay.add_root()
    one, two, three = (a.events.publish("tcp", text) for text in ("one", "two", "three"))
    async with events(a, f"?since={one['id']}") as stream:
        replayed = [await stream.event() for _ in range(2)]
        a.events.publish("tcp", "live")
        live = await stream.until("tcp", "live")
    assert [f.data for f in replayed] == [two, three]
    assert [f.id for f in replayed] == [str(two["id"]), str(three["id"])]
    assert live.data is not None and live.data["id"] > three["id"]
    for query, headers in ((f"?since={two['id']}", None), ("", {"Last-Event-ID": str(two["id"])})):
        async with events(a, query, headers) as stream:
            frame = await stream.event()
        assert frame.data == three


async def test_an_id_of_any_length_is_one_from_an_earlier_run(overlay: LoopbackOverlay) -> None:
    """An id longer than this run will ever give (even past the 4,300 digits int() reads)
    is one from an earlier run: every kept event is replayed, as for any id above the
    last, never a 400 or a 500."""
    a = await overlay.add_root()
    kept = [a.events.publish("tcp", text) for text in ("one", "two")]
    for digits in (19, 40, 5000):
        async with events(a, f"?since={'9' * digits}") as stream:
            replayed = [await stream.event() for _ in kept]
        assert [f.data for f in replayed][-2:] == kept, digits


async def test_bad_since_is_a_400(overlay: LoopbackOverlay) -> None:
    """since must be an event id; anything else is a JSON 400, not an empty stream."""
    await overlay.add_root()
    async with unix_client(overlay.daemons["root"]) as client:
        response = await client.get("/events?since=yesterday")
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


async def test_pending_member_asking_is_a_member_request(tap_overlay: LoopbackOverlay) -> None:
    """When an unknown member asks to join a private network, the controller's stream
    gets member_request with the network and the member; approving it is a member event
    saying so, with the IP it got; the member's own network event names the network."""
    async with story(tap_overlay) as s:
        a_text = s.a.identity.address_text
        async with events(s.ctl, "?since=0") as stream:
            request = await stream.until("member_request", a_text)
            assert request.data is not None
            assert request.data["nwid"] == s.nwid and request.data["address"] == a_text
            assert f"asks to join home ({s.nwid})" in request.data["message"]
            await wait_state(s.api["a"], s.nwid, "ACCESS_DENIED", 5)
            await s.approve(s.a)
            approved = await stream.until("member", a_text)
        assert approved.data is not None and approved.data["nwid"] == s.nwid
        assert "approved: 10.147.17." in approved.data["message"]
        async with events(s.a, "?since=0") as member_stream:
            ok = await member_stream.until("network", f"{s.nwid}: ACCESS_DENIED -> OK")
        assert ok.data is not None and ok.data["nwid"] == s.nwid


async def test_controller_changes_are_events(tap_overlay: LoopbackOverlay) -> None:
    """Creating, changing and deleting a hosted network are controller events naming it."""
    await tap_overlay.add_root()
    ctl = await tap_overlay.add_leaf("ctl")
    async with unix_client(ctl) as api:
        nwid = (await api.post("/controller/networks", json={"name": "lab"})).json()["nwid"]
        await api.patch(f"/controller/networks/{nwid}", json={"mtu": 1500})
        await api.delete(f"/controller/networks/{nwid}")
    messages = [(e["message"], e["nwid"]) for e in ctl.recent_events() if e["kind"] == "controller"]
    assert messages == [
        (f"created network lab ({nwid})", nwid),
        (f"changed mtu of lab ({nwid})", nwid),
        (f"deleted network lab ({nwid})", nwid),
    ]


async def test_keepalive_comments_fill_silence(overlay: LoopbackOverlay) -> None:
    """With nothing to say, the stream sends a `: keepalive` comment every keepalive_s."""
    root = await overlay.add_root()
    root.events.keepalive_s = 0.05
    async with events(root) as stream:
        hello = await stream.frame()
        assert hello is not None and hello.comments[0].startswith("overlayd events after id")
        for _ in range(2):
            frame = await stream.frame(timeout_s=1)
            assert frame is not None and frame.comments == ["keepalive"]


async def test_slow_reader_gets_overflow_and_the_stream_ends(overlay: LoopbackOverlay) -> None:
    """A stream more than subscriber_bound events behind is cut off: it delivers what it
    had queued, then `event: overflow` (no id line) naming the id to resume from, then
    ends; the daemon drops it and keeps going."""
    root = await overlay.add_root()
    root.events.subscriber_bound = 4
    async with events(root) as stream:
        await stream.frame()  # subscribed
        for n in range(20):  # no await between: the stream cannot drain
            root.events.publish("tcp", f"burst {n}")
        frames = []
        while (frame := await stream.frame()) is not None:
            frames.append(frame)
    *delivered, last = frames
    assert [f.data["message"] for f in delivered if f.data] == [f"burst {n}" for n in range(4)]
    assert last.event == "overflow" and last.id is None
    assert last.data is not None and last.data["id"] == int(delivered[-1].id or 0)
    assert root.events.subscribers == 0


async def test_stop_ends_open_streams_promptly(overlay: LoopbackOverlay) -> None:
    """A console holding /events open does not make stop() wait: the stream ends and
    stop() returns within a second."""
    root = await overlay.add_root()
    async with events(root) as stream:
        await stream.frame()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(overlay.stop("root"), 5)
        assert loop.time() - started < 1.0
        assert await stream.frame(timeout_s=2) is None
