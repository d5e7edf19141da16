"""The state a FakeNode starts from: the NAS story and the same kind of data in bulk.

`sample_state()` tells the story the console is built for; `large_state()` adds hundreds of
peers and members for benchmarks. Both are deterministic: fixed times, no clock reads,
randomness only from `random.Random(seed)`, so snapshots and timings are stable.
"""

from __future__ import annotations

import random
from collections import deque

from overlay_core.api.schema import EventAbout, Link, MemberJson, NetworkState, event_json

from ..fake_data import (
    DESKTOP,
    EPOCH,
    HOME_NWID,
    HOME_POOL,
    LAPTOP,
    NODE,
    OFFICE_NWID,
    OFFSITE,
    PHONE,
    ROOT_A,
    ROOT_B,
    FakeState,
    configure,
    direct_lost,
    hosted,
    member,
    network,
    network_change,
    path,
    peer,
    peer_names,
    relay_reason,
    status,
    total_counters,
)

# --------------------------------------------------------------------------- the NAS story


def sample_state(seed: int = 0) -> FakeState:
    """This node 8056c2e21c, a NAS behind a cone NAT: two roots, a laptop DIRECT on the LAN,
    a phone RELAY behind a symmetric NAT, an off-site box over TCP, a desktop that stopped
    answering; it hosts `home` (3 members, the phone pending; the laptop is named there)
    and waits for `office`."""
    del seed  # the story has no random parts; large_state() uses its seed
    now = EPOCH
    phone_ports = ("100.64.12.9:40123", "100.64.12.9:40877")
    peers = [
        peer(
            ROOT_A,
            Link.DIRECT,
            [path("203.0.113.10:9993", 18.4, preferred=True, packets=(5200, 5150))],
            role="ROOT",
        ),
        peer(
            ROOT_B,
            Link.DIRECT,
            [path("198.51.100.77:9993", 142.7, preferred=True, packets=(5100, 5020))],
            role="ROOT",
        ),
        peer(
            LAPTOP,
            Link.DIRECT,
            [
                path(
                    "192.168.1.23:9993", 0.9, preferred=True, packets=(182_000, 240_000), mtu=1472
                ),
                path("198.51.100.40:21004", 23.5, packets=(300, 290)),
            ],
        ),
        peer(
            PHONE,
            Link.RELAY,
            [path(p, None, alive=False, packets=(24, 0)) for p in phone_ports],
            relay_reason=relay_reason(
                f"48 direct attempts to {', '.join(phone_ports)} got 0 answers: "
                "a NAT or firewall between us drops them",
                {phone_ports[0]: f"root {ROOT_A}", phone_ports[1]: f"root {ROOT_B}"},
                48,
                0,
                verdict=(
                    f"the peer's NAT is symmetric: root {ROOT_A} and root {ROOT_B} saw it on "
                    "different ports, so our probes go to ports that are not open for us; it "
                    "stays RELAY unless its network forwards a UDP port to it"
                ),
                code="symmetric_peer",
            ),
            session_age_s=340.0,
        ),
        peer(
            OFFSITE,
            Link.TCP,
            [
                path("tcp://203.0.113.80:443", 61.2, preferred=True, packets=(8_400, 8_100)),
                path("203.0.113.80:9993", None, alive=False, packets=(12, 0)),
            ],
            relay_reason=relay_reason(
                "12 direct attempts to 203.0.113.80:9993 got 0 answers: "
                "a NAT or firewall between us drops them",
                {"203.0.113.80:9993": "the peer's own list"},
                12,
                0,
            ),
        ),
        peer(
            DESKTOP,
            Link.RELAY,
            [path("203.0.113.50:9993", 31.0, alive=False, packets=(9_000, 8_800))],
            relay_reason=relay_reason(
                direct_lost("203.0.113.50:9993", 120),
                {"203.0.113.50:9993": f"root {ROOT_A}"},
                60,
                41,
                code="direct_lost",
            ),
        ),
    ]
    state = FakeState(now, status())
    state.peers = {p["address"]: p for p in peers}
    state.rates = {
        ROOT_A: (60, 60),
        ROOT_B: (60, 60),
        LAPTOP: (40_000, 120_000),
        PHONE: (1_000, 3_000),
        OFFSITE: (5_000, 2_000),
        DESKTOP: (200, 150),
    }
    state.status["peer_count"] = len(peers)
    state.status["counters"] = total_counters(state.peers)

    created = now - 30 * 86_400
    record = hosted(HOME_NWID, "home", created, pools=[HOME_POOL], presets=["block-dhcp"])
    record["revision"], record["updated"] = 7, now - 7_200
    state.hosted[HOME_NWID] = record
    home = network(HOME_NWID, NODE)
    configure(home, record, ["10.147.17.1"], members=2)
    home["config_age_s"] = 14.0
    home["counters"] = {
        "tx_frames": 48_210,
        "tx_bytes": 31_400_000,
        "rx_frames": 52_877,
        "rx_bytes": 61_200_000,
        "drop_rule": 4,
    }
    home["rule_drops"] = [{"rule": "block-dhcp", "drops": 4}]
    home["port_counters"] = {
        "frames_read": 48_214,
        "bytes_read": 31_400_512,
        "frames_written": 52_877,
        "bytes_written": 61_200_000,
        "write_drops": 0,
    }
    office = network(OFFICE_NWID, NODE, state=NetworkState.ACCESS_DENIED)
    state.networks = {HOME_NWID: home, OFFICE_NWID: office}
    state.members[HOME_NWID] = {
        PHONE: member(HOME_NWID, PHONE, now - 340, physical=phone_ports[0]),
        NODE: member(
            HOME_NWID,
            NODE,
            created,
            state="authorized",
            name="nas",
            ips=["10.147.17.1"],
            physical="192.168.1.10:9993",
        ),
        LAPTOP: member(
            HOME_NWID,
            LAPTOP,
            created + 600,
            state="authorized",
            name="laptop",
            ips=["10.147.17.2"],
            physical="192.168.1.23:9993",
        ),
    }
    # As the daemon's /peers does: the laptop is named by home's config; the phone, still
    # pending, is not in it yet; roots and the other peers are known by address only.
    for address, item in state.peers.items():
        item["names"] = peer_names(state, address)

    requesting, ok, denied = (
        NetworkState.REQUESTING_CONFIGURATION,
        NetworkState.OK,
        NetworkState.ACCESS_DENIED,
    )
    history: list[tuple[int, str, str, EventAbout]] = [
        (86_390, "peer", f"{ROOT_A}: new, DIRECT", {"peer": ROOT_A}),
        (86_390, "peer", f"{ROOT_B}: new, DIRECT", {"peer": ROOT_B}),
        (86_388, "network", f"joining {HOME_NWID}", {"nwid": HOME_NWID}),
        (86_387, "network", network_change(HOME_NWID, requesting, ok, "home"), {"nwid": HOME_NWID}),
        (86_000, "peer", f"{LAPTOP}: new, DIRECT", {"peer": LAPTOP}),
        (85_000, "peer", f"{DESKTOP}: new, DIRECT", {"peer": DESKTOP}),
        (3_600, "network", f"joining {OFFICE_NWID}", {"nwid": OFFICE_NWID}),
        (3_598, "network", network_change(OFFICE_NWID, requesting, denied), {"nwid": OFFICE_NWID}),
        (340, "peer", f"{PHONE}: new, RELAY", {"peer": PHONE}),
        (
            339,
            "member_request",
            f"{PHONE} asks to join home ({HOME_NWID}) from {phone_ports[0]}; approve it?",
            {"nwid": HOME_NWID, "address": PHONE},
        ),
        (300, "peer", f"{OFFSITE}: new, TCP", {"peer": OFFSITE}),
        (120, "link", f"{DESKTOP}: DIRECT -> RELAY", {"peer": DESKTOP}),
    ]
    state.events = deque(
        event_json(i, now - ago, kind, message, **about)
        for i, (ago, kind, message, about) in enumerate(history, start=1)
    )
    return state


# --------------------------------------------------------------------------- in bulk


def _addresses(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        value = rng.getrandbits(40)
        text = f"{value:010x}"
        if value == 0 or text.startswith("ff") or text in taken:
            continue
        taken.add(text)
        found.append(text)
    return found


def large_state(peers: int = 500, members: int = 200, seed: int = 0) -> FakeState:
    """The sample story plus `peers` peers in all (a mix of DIRECT, RELAY, TCP, NONE) and a
    hosted network `lab` with `members` members (one in eight pending), for benchmarks."""
    state = sample_state()
    rng = random.Random(seed)
    taken = set(state.peers) | {NODE}
    for address in _addresses(rng, max(0, peers - len(state.peers)), taken):
        roll = rng.random()
        ms = round(rng.uniform(0.5, 180.0), 3)
        host = (
            f"203.0.{rng.randrange(113, 120)}.{rng.randrange(1, 255)}:{rng.randrange(1024, 65535)}"
        )
        counts = (rng.randrange(10, 50_000), rng.randrange(10, 50_000))
        if roll < 0.7:
            item = peer(address, Link.DIRECT, [path(host, ms, preferred=True, packets=counts)])
        elif roll < 0.9:
            reason = relay_reason(
                f"6 direct attempts to {host} got 0 answers: "
                "a NAT or firewall between us drops them",
                {host: f"root {ROOT_A}"},
                6,
                0,
            )
            item = peer(
                address,
                Link.RELAY,
                [path(host, None, alive=False, packets=(6, 0))],
                relay_reason=reason,
            )
        elif roll < 0.95:
            tcp = f"tcp://{host.rsplit(':', 1)[0]}:443"
            item = peer(address, Link.TCP, [path(tcp, ms, preferred=True, packets=counts)])
        else:
            item = peer(address, Link.NONE, [], session_age_s=None)
        state.peers[address] = item
        state.rates[address] = (rng.randrange(0, 20_000), rng.randrange(0, 20_000))
    state.status["peer_count"] = len(state.peers)
    state.status["counters"] = total_counters(state.peers)

    lab = f"{NODE}000002"
    state.hosted[lab] = hosted(lab, "lab", EPOCH - 86_400, pools=["10.20.0.0/16"])
    roster: dict[str, MemberJson] = {}
    for n, address in enumerate(_addresses(rng, members, {NODE})):
        if n % 8 == 7:
            roster[address] = member(
                lab, address, EPOCH - 60 * n, physical=f"198.51.100.{n % 250 + 1}:9993"
            )
        else:
            ip = f"10.20.{(n + 1) // 250}.{(n + 1) % 250 + 1}"
            roster[address] = member(
                lab, address, EPOCH - 60 * n, state="authorized", name=f"host-{n:03d}", ips=[ip]
            )
    state.members[lab] = roster
    return state
