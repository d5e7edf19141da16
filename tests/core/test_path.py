"""Paths: liveness, expiry and preference, with an explicit clock."""

from __future__ import annotations

from overlay_core.proto.effects import tcp, udp
from overlay_core.proto.path import (
    MAX_CREDIT_BYTES,
    PATH_ALIVE_S,
    PATH_FORGET_S,
    PATH_PROBE_S,
    UNCONFIRMED_PROBE_S,
    Path,
    best_path,
    path_kind,
)


def confirmed(path: Path) -> Path:
    """A path whose peer answered a challenge there (what the node does, see path.py)."""
    path.confirm()
    return path


def test_a_path_is_alive_only_while_packets_arrive() -> None:
    path = confirmed(Path(udp("198.18.0.5", 9993), created=0.0))
    assert not path.alive(0.0)
    path.received(100, now=1.0)
    assert path.alive(1.0 + PATH_ALIVE_S)
    assert not path.alive(1.0 + PATH_ALIVE_S + 0.01)


def test_probes_are_due_after_a_quiet_interval() -> None:
    path = confirmed(Path(udp("198.18.0.5", 9993), created=0.0))
    path.received(100, now=0.0)
    assert not path.needs_probe(PATH_PROBE_S - 0.1)
    assert path.needs_probe(PATH_PROBE_S)
    path.last_probe = PATH_PROBE_S
    assert not path.needs_probe(PATH_PROBE_S + 0.5)


def test_dead_paths_become_forgettable() -> None:
    path = Path(udp("198.18.0.5", 9993), created=0.0)
    assert not path.forgettable(PATH_FORGET_S)
    assert path.forgettable(PATH_FORGET_S + 1)


def test_best_path_prefers_udp_then_lower_latency_and_ignores_dead_ones() -> None:
    slow = confirmed(Path(udp("198.18.0.5", 9993), created=0.0))
    fast = confirmed(Path(udp("10.0.0.5", 9993), created=0.0))
    tunnel = confirmed(Path(tcp("198.18.0.1", 9993), created=0.0))
    for path, rtt in ((slow, 0.050), (fast, 0.002), (tunnel, 0.001)):
        path.received(100, now=10.0)
        path.latency.add(rtt)
    paths = {p.endpoint: p for p in (slow, fast, tunnel)}
    assert best_path(paths, 10.0) is fast
    assert best_path(paths, 10.0 + PATH_ALIVE_S + 1) is None
    fast.last_receive = 0.0  # fast went quiet long ago
    assert best_path(paths, 10.0) is slow
    slow.last_receive = 0.0
    assert best_path(paths, 10.0) is tunnel


def test_latency_smoothing_follows_rfc6298() -> None:
    path = Path(udp("198.18.0.5", 9993), created=0.0)
    assert path.latency is not None
    path.latency.add(0.100)
    assert path.latency.smoothed_s == 0.100 and path.latency.jitter_s == 0.050
    path.latency.add(0.020)
    assert abs(path.latency.smoothed_s - 0.090) < 1e-9
    assert abs(path.latency.jitter_s - 0.0575) < 1e-9
    status = path.latency.status()
    assert status.last_ms == 20.0


def test_path_kinds() -> None:
    assert path_kind(udp("10.1.2.3", 1)) == "lan"
    assert path_kind(udp("198.18.0.1", 1)) == "ipv4"
    assert path_kind(udp("2001:db8::1", 1)) == "ipv6"
    assert path_kind(udp("fd12::1", 1)) == path_kind(udp("fe80::1%eth0", 1)) == "lan"
    assert path_kind(udp("::ffff:192.168.1.2", 1)) == "lan"
    assert path_kind(tcp("198.18.0.1", 1)) == "tcp"


def test_mtu_search_confirms_the_ceiling_when_the_path_carries_it() -> None:
    """First probe at the ceiling; when it returns, one probe settles the search."""
    from overlay_core.proto.path import PMTU_MIN, PMTU_REPROBE_S

    path = Path(udp("198.18.0.5", 9993), created=0.0)
    path.start_mtu_search(1432)
    assert path.mtu == PMTU_MIN
    assert path.next_mtu_probe(0.0) == 1432
    assert path.next_mtu_probe(0.5) is None  # one probe in flight at a time
    path.mtu_fits(1432)
    assert path.next_mtu_probe(0.6) is None and path.mtu == 1432
    assert path.next_mtu_probe(0.6 + PMTU_REPROBE_S + 1) == 1432  # routes change: search again


def test_mtu_search_bisects_down_to_what_a_small_link_carries() -> None:
    """A 1280-byte IPv4 link carries 1252-byte UDP payloads; lost probes count as too big."""
    from overlay_core.proto.path import PMTU_PROBE_TIMEOUT_S, PMTU_STEP

    path = Path(udp("198.18.0.5", 9993), created=0.0)
    path.start_mtu_search(1432)
    now, probes = 0.0, 0
    while (size := path.next_mtu_probe(now)) is not None or path.mtu_searched is None:
        if size is not None:
            probes += 1
            if size <= 1252:
                path.mtu_fits(size)
        now += PMTU_PROBE_TIMEOUT_S + 0.01
    assert 1252 - PMTU_STEP < path.mtu <= 1252
    assert probes <= 6


def test_silent_paths_are_probed_slowly_so_stale_nat_state_can_expire() -> None:
    """Alive or recently alive: every PATH_PROBE_S. Never answered, or silent for
    DEAD_AFTER_S: every DEAD_PROBE_S, longer than a NAT's 30 s for unanswered UDP."""
    from overlay_core.proto.path import DEAD_AFTER_S, DEAD_PROBE_S

    never = Path(udp("198.18.0.5", 9993), created=0.0)
    never.last_probe = 0.0
    assert not never.needs_probe(PATH_PROBE_S)
    assert never.needs_probe(DEAD_PROBE_S)
    dead = confirmed(Path(udp("198.18.0.6", 9993), created=0.0))
    dead.received(100, now=0.0)
    dead.last_probe = DEAD_AFTER_S - 1
    assert dead.needs_probe(DEAD_AFTER_S - 1 + PATH_PROBE_S) is False  # now past DEAD_AFTER_S
    assert dead.needs_probe(DEAD_AFTER_S - 1 + DEAD_PROBE_S)
    assert DEAD_PROBE_S > 30.0


def test_a_busy_path_still_measures_its_latency() -> None:
    """Traffic keeps a path alive without keepalives, but latency is re-measured anyway."""
    from overlay_core.proto.path import LATENCY_PROBE_S

    path = confirmed(Path(udp("198.18.0.5", 9993), created=0.0))
    path.last_probe = 0.0
    for t in range(1, int(LATENCY_PROBE_S)):
        path.received(100, now=float(t))
        assert not path.needs_probe(float(t))
    path.received(100, now=LATENCY_PROBE_S)
    assert path.needs_probe(LATENCY_PROBE_S)


def test_an_unconfirmed_path_is_never_alive_and_sends_no_more_than_it_received() -> None:
    """Authenticated packets from a new address make it a candidate, not a path: until the
    peer answers a challenge there, it carries no traffic and we send it at most the bytes
    it sent us (the anti-amplification rule)."""
    path = Path(udp("198.18.0.5", 9993), created=0.0)
    path.received(77, now=1.0)
    assert not path.alive(1.0)
    assert best_path({path.endpoint: path}, 1.0) is None
    assert path.may_send(77)
    assert not path.may_send(1)
    path.received(100_000, now=2.0)
    assert path.credit == MAX_CREDIT_BYTES  # bytes received can't be banked for a burst
    path.confirm()
    assert path.alive(2.0) and path.may_send(1400) and path.may_send(1400)


def test_an_unconfirmed_path_that_keeps_sending_is_challenged_every_second() -> None:
    path = Path(udp("198.18.0.5", 9993), created=0.0)
    path.received(77, now=1.0)
    path.last_probe = 1.0
    assert not path.needs_probe(1.5)
    assert path.needs_probe(1.0 + UNCONFIRMED_PROBE_S)


def test_punch_allowance_covers_small_probes_only() -> None:
    """An introducer's word allows a few small probes to an address that never sent us
    anything, never a padded MTU probe."""
    path = Path(udp("198.18.0.5", 9993), created=0.0)
    path.punch_allowance = 2
    assert not path.may_send(1200)
    assert path.may_send(77) and path.may_send(77)
    assert not path.may_send(77)


def test_configured_root_endpoints_may_be_sent_to_before_confirmation() -> None:
    path = Path(udp("198.18.0.1", 9993), created=0.0)
    path.configured = True
    assert path.may_send(1400) and not path.alive(0.0)


def settled(mtu: int, now: float = 0.0) -> Path:
    """A path whose search found `mtu` (probed from a 1432-byte limit)."""
    path = Path(udp("198.18.0.5", 9993), created=now)
    path.start_mtu_search(1432)
    size = path.next_mtu_probe(now)
    assert size == 1432
    if mtu < 1432:
        path.mtu_too_big(1432)
        path.mtu_probe_size = None
    path.mtu_fits(mtu)
    path.mtu_ceiling = mtu
    assert path.next_mtu_probe(now) is None and path.mtu_searched == now and path.mtu == mtu
    return path


def test_an_icmp_lowers_a_settled_path_mtu_at_once() -> None:
    """A router says 1252 fit (a 1280-byte link): the path uses that now, and searches
    upward again only a full interval later."""
    from overlay_core.proto.path import PMTU_REPROBE_S

    path = settled(1432)
    assert path.mtu_lowered_to(1252, now=30.0)
    assert path.mtu == 1252 and path.mtu_ceiling == 1252 and path.mtu_limit == 1432
    assert path.next_mtu_probe(30.0 + PMTU_REPROBE_S - 1) is None
    assert path.next_mtu_probe(30.0 + PMTU_REPROBE_S) == 1432  # the route may heal
    assert not path.mtu_lowered_to(1252, now=31.0)  # nothing new


def test_an_icmp_never_raises_the_path_mtu_nor_lowers_it_below_the_minimum() -> None:
    from overlay_core.proto.path import PMTU_MIN

    path = settled(1300)
    assert not path.mtu_lowered_to(1400, now=1.0)
    assert not path.mtu_lowered_to(1300, now=1.0)
    assert path.mtu == 1300 and path.mtu_ceiling == 1300
    assert path.mtu_lowered_to(68, now=2.0)  # forged, or a silly link: the floor holds
    assert path.mtu == PMTU_MIN == path.mtu_ceiling
    assert not path.mtu_lowered_to(0, now=3.0)
    assert path.mtu == PMTU_MIN


def test_an_icmp_during_a_search_caps_it_and_skips_the_lost_probe() -> None:
    """The ceiling probe (1432) draws an ICMP saying 1252: no need to wait out its timeout,
    the next probe bisects below 1252 at once."""
    from overlay_core.proto.path import PMTU_MIN

    path = Path(udp("198.18.0.5", 9993), created=0.0)
    path.start_mtu_search(1432)
    assert path.next_mtu_probe(0.0) == 1432
    assert not path.mtu_lowered_to(1252, now=0.01)  # the confirmed size was PMTU_MIN
    assert path.mtu == PMTU_MIN and path.mtu_ceiling == 1252
    assert path.next_mtu_probe(0.02) == (PMTU_MIN + 1252 + 1) // 2


def test_a_jumbo_ceiling_that_fails_tries_the_common_internet_size_next() -> None:
    """A node on a 9000-byte LAN searches up to 8932; an internet path that carries 1472
    settles at 1432 on the second probe instead of after a dozen bisections."""
    from overlay_core.proto.path import PMTU_COMMON, PMTU_PROBE_TIMEOUT_S

    path = Path(udp("198.18.0.5", 9993), created=0.0)
    path.start_mtu_search(8932)
    assert path.next_mtu_probe(0.0) == 8932  # lost: the internet carries 1500
    now = PMTU_PROBE_TIMEOUT_S + 0.01
    assert path.next_mtu_probe(now) == PMTU_COMMON
    path.mtu_fits(PMTU_COMMON)
    assert path.mtu == PMTU_COMMON


def test_a_path_that_carries_jumbo_frames_settles_on_the_first_probe() -> None:
    path = Path(udp("10.0.0.5", 9993), created=0.0)
    path.start_mtu_search(8932)
    size = path.next_mtu_probe(0.0)
    assert size == 8932
    path.mtu_fits(size)
    assert path.mtu == 8932 and path.next_mtu_probe(0.5) is None
