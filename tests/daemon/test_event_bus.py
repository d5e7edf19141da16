"""EventBus on its own: ids, the ring buffer, replay after `since`, bounded subscribers."""

from __future__ import annotations

import asyncio

import pytest

from overlay_core.api.events import EventBus, StreamClosed, encode_sse
from overlay_core.proto.effects import Event


def clock() -> float:
    return 1_700_000_000.0


async def test_ids_are_monotonic_and_events_carry_the_daemon_clock() -> None:
    """Each publish gets the next id from 1 and the bus's clock; optional fields default
    to None."""
    bus = EventBus(clock)
    first = bus.publish("tcp", "opening the TCP fallback")
    second = bus.publish("peer", "0a0b0c0d0e: new, DIRECT", peer="0a0b0c0d0e")
    assert (first["id"], second["id"]) == (1, 2)
    assert first == {
        "id": 1,
        "time": 1_700_000_000.0,
        "kind": "tcp",
        "message": "opening the TCP fallback",
        "peer": None,
        "nwid": None,
        "address": None,
    }
    assert bus.last_id == 2


async def test_ring_keeps_only_the_last_events() -> None:
    """The buffer holds the last `kept` events; recent(since) is what is left after since."""
    bus = EventBus(clock, kept=3)
    for n in range(5):
        bus.publish("tcp", f"event {n}")
    assert [e["id"] for e in bus.recent()] == [3, 4, 5]
    assert [e["id"] for e in bus.recent(4)] == [5]
    assert bus.recent(5) == []


async def test_since_from_an_earlier_run_replays_everything() -> None:
    """A since beyond the last id was handed out by a daemon that restarted (ids begin
    again at 1): the reconnecting console gets everything buffered, not nothing."""
    bus = EventBus(clock)
    bus.publish("tcp", "one")
    bus.publish("tcp", "two")
    subscription = bus.subscribe(since=900)
    replayed = [await subscription.next(0) for _ in range(2)]
    assert [e["id"] for e in replayed if e] == [1, 2]


async def test_subscriber_gets_replay_then_live_events() -> None:
    """subscribe(since) hands over buffered events after since, then what is published."""
    bus = EventBus(clock)
    bus.publish("tcp", "one")
    bus.publish("tcp", "two")
    subscription = bus.subscribe(since=1)
    bus.publish("tcp", "three")
    got = [await subscription.next(1) for _ in range(2)]
    assert [e["message"] for e in got if e] == ["two", "three"]
    assert await subscription.next(0.01) is None  # nothing more: time for a keepalive


async def test_without_since_only_live_events() -> None:
    """A plain subscription starts now; the past stays in the buffer."""
    bus = EventBus(clock)
    bus.publish("tcp", "old")
    subscription = bus.subscribe()
    assert subscription.last_id == 1
    bus.publish("tcp", "new")
    event = await subscription.next(1)
    assert event is not None and event["message"] == "new"


async def test_slow_subscriber_is_dropped_with_one_overflow_event() -> None:
    """A subscriber `subscriber_bound` events behind is dropped at once (memory stays
    bounded); it reads what was queued, then one overflow event naming the id to resume
    from, then the stream is closed. Other subscribers are unaffected."""
    bus = EventBus(clock, subscriber_bound=3)
    slow, fast = bus.subscribe(), bus.subscribe()
    for n in range(10):
        bus.publish("tcp", f"event {n}")
        assert await fast.next(0) is not None
    assert bus.subscribers == 1 and bus.dropped_subscribers == 1
    queued = [await slow.next(0) for _ in range(3)]
    assert [e["id"] for e in queued if e] == [1, 2, 3]
    overflow = await slow.next(0)
    assert overflow is not None and overflow["kind"] == "overflow" and overflow["id"] == 3
    assert "since=3" in overflow["message"]
    with pytest.raises(StreamClosed):
        await slow.next(0)


async def test_close_wakes_a_waiting_reader() -> None:
    """bus.close() ends a subscription someone is waiting on, promptly."""
    bus = EventBus(clock)
    subscription = bus.subscribe()
    reader = asyncio.create_task(subscription.next(30))
    await asyncio.sleep(0)
    bus.close()
    with pytest.raises(StreamClosed):
        await asyncio.wait_for(reader, 1)
    assert bus.subscribers == 0


async def test_node_network_events_get_their_nwid() -> None:
    """A node event's nwid becomes 16 hex digits, its peer's address 10."""
    bus = EventBus(clock)
    joined = bus.publish_effect(
        Event("network", "8056c2e21c000001: ACCESS_DENIED -> OK (home)", nwid=0x8056C2E21C000001)
    )
    assert joined["nwid"] == "8056c2e21c000001"
    link = bus.publish_effect(Event("link", "00000000ab: RELAY -> DIRECT", 0xAB))
    assert link["peer"] == "00000000ab" and link["nwid"] is None


def test_sse_encoding() -> None:
    """An event is id, event and one data line of JSON, then a blank line; the overflow
    marker has no id line, so Last-Event-ID stays at the last real event."""
    bus = EventBus(clock)
    event = bus.publish("tcp", "line one\nline two")
    text = encode_sse(event).decode()
    assert text.startswith("id: 1\nevent: tcp\ndata: {")
    assert text.endswith("}\n\n") and text.count("\n") == 4
    assert encode_sse(bus.overflow_event(1)).decode().startswith("event: overflow\ndata: ")
