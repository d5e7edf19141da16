"""The state a FakeNode starts from, in the exact JSON shapes of overlay_core.api.schema.

Builders (`latency`, `path`, `peer`, `network`, `hosted`, `member`, `status`) for the
stories in console/testing/fakenode/story.py, and for FakeNode when the console's actions
add things (a join, a new network, a member); the daemon's words for events and relay
reasons it repeats (`network_change`, `direct_lost`). Nothing here reads a clock: times
are passed in.
"""

from __future__ import annotations

import base64
import hashlib
from collections import deque
from dataclasses import dataclass, field

from overlay_core.api.schema import (
    API_VERSION,
    ControllerNetworkJson,
    EventJson,
    LatencyJson,
    Link,
    MemberJson,
    NetcheckJson,
    NetcheckRootJson,
    NetworkJson,
    NetworkState,
    NodeState,
    PathJson,
    PeerJson,
    PeerNameJson,
    RelayReasonJson,
    RootLink,
    StatusJson,
)

EPOCH = 1_750_000_000.0  # the fake daemon's clock at the start of every sample
SAMPLE_HOME = "/var/lib/ztui"  # where FakeNode.client() says it connects, for realistic errors
VERSION = "0.1.0"
NODE = "8056c2e21c"  # the NAS
ROOT_A, ROOT_B = "1e3d7c0a11", "4b9f02d6e3"
LAPTOP, PHONE, OFFSITE, DESKTOP = "3a91c4e7f2", "5c07de91ab", "b2e4f6a810", "d41c9e2b77"
HOME_NWID, OFFICE_NWID = f"{NODE}000001", "9f3e1b5c7a000042"
HOME_POOL = "10.147.17.0/24"
NAT_CONE = "endpoint-independent mapping (cone): hole punching works"
NAT_SYMMETRIC = "symmetric: the public port changes per destination, hole punching fails"


@dataclass
class FakeState:
    """Everything a FakeNode serves; FakeNode mutates it the way the daemon would."""

    now: float
    status: StatusJson
    peers: dict[str, PeerJson] = field(default_factory=dict)
    networks: dict[str, NetworkJson] = field(default_factory=dict)
    hosted: dict[str, ControllerNetworkJson] = field(default_factory=dict)
    members: dict[str, dict[str, MemberJson]] = field(default_factory=dict)
    events: deque[EventJson] = field(default_factory=deque)  # FakeNode.log's, once it runs
    # Bytes per second (tx, rx) each peer's preferred path carries as tick() advances time.
    rates: dict[str, tuple[int, int]] = field(default_factory=dict)
    roots_file: str | None = None  # GET /roots saved_in: set once PUT /roots saved one


# --------------------------------------------------------------------------- builders


def latency(ms: float | None, jitter_ms: float | None = None) -> LatencyJson:
    if ms is None:
        return {"last_ms": None, "smoothed_ms": None, "jitter_ms": None}
    jitter = round(ms * 0.08, 3) if jitter_ms is None else jitter_ms
    return {"last_ms": round(ms * 1.03, 3), "smoothed_ms": ms, "jitter_ms": jitter}


def path_kind(endpoint: str) -> str:
    if endpoint.startswith("tcp://"):
        return "tcp"
    if endpoint.startswith("["):
        return "ipv6"
    private = ("10.", "192.168.", "172.16.", "172.17.", "172.18.", "172.31.", "127.")
    return "lan" if endpoint.startswith(private) else "ipv4"


def path(
    endpoint: str,
    ms: float | None,
    *,
    alive: bool = True,
    preferred: bool = False,
    packets: tuple[int, int] = (0, 0),
    mtu: int = 1432,
) -> PathJson:
    sent, received = packets
    return {
        "endpoint": endpoint,
        "transport": "tcp" if endpoint.startswith("tcp://") else "udp",
        "kind": path_kind(endpoint),
        "alive": alive,
        "preferred": preferred,
        "latency": latency(ms),
        "last_send_ago_s": 1.2 if alive else 4.0,
        "last_receive_ago_s": (1.3 if alive else None) if received or alive else None,
        "packets_sent": sent,
        "packets_received": received,
        "bytes_sent": sent * 420,
        "bytes_received": received * 610,
        "mtu": mtu,
        "mtu_searching": False,
    }


def peer(
    address: str,
    link: Link,
    paths: list[PathJson],
    *,
    role: str = "LEAF",
    relay_reason: RelayReasonJson | None = None,
    session_age_s: float | None = 3600.0,
    names: list[PeerNameJson] | None = None,
) -> PeerJson:
    best = next((p for p in paths if p["preferred"]), None)
    sent = sum(p["packets_sent"] for p in paths)
    received = sum(p["packets_received"] for p in paths)
    return {
        "address": address,
        "role": role,
        "version": VERSION,
        "link": link,
        "preferred_path": best["endpoint"] if best else None,
        "latency": best["latency"] if best else latency(None),
        "last_send_ago_s": 1.2,
        "last_receive_ago_s": 1.3 if link != Link.NONE else 95.0,
        "session_age_s": session_age_s,
        "rekeys": int((session_age_s or 0) // 3600),
        "paths": sorted(paths, key=lambda p: p["endpoint"]),
        "relay_reason": relay_reason,
        "names": names or [],
        "counters": {
            "tx_packets": sent,
            "tx_bytes": sent * 420,
            "rx_packets": received,
            "rx_bytes": received * 610,
        },
    }


def peer_names(state: FakeState, address: str) -> list[PeerNameJson]:
    """What the daemon's /peers says `address` is called: its name and IPs in each network
    this node has joined (and has a config for) that lists it as an authorized member. The
    fake knows rosters only of the networks it hosts, so only those name peers."""
    names: list[PeerNameJson] = []
    for nwid in sorted(state.networks):
        joined = state.networks[nwid]
        found = state.members.get(nwid, {}).get(address)
        if joined["state"] == NetworkState.OK and found is not None and found["authorized"]:
            names.append(
                {
                    "nwid": nwid,
                    "network": joined["name"] or "",
                    "name": found["name"],
                    "ips": list(found["ips"]),
                }
            )
    return names


def relay_reason(
    summary: str,
    learned: dict[str, str],
    attempts: int,
    replies: int,
    *,
    nat: str = NAT_CONE,
    verdict: str | None = None,
    code: str = "filtered",
) -> RelayReasonJson:
    """Like the daemon's diagnosis; `verdict` is a first detail line (a NAT verdict)."""
    details = [] if verdict is None else [verdict]
    details.append(f"first direct attempt {attempts * 7} s ago")
    details += [f"learned {endpoint} from {how}" for endpoint, how in learned.items()]
    return {
        "summary": summary,
        "code": code,
        "endpoints_learned": list(learned),
        "punch_attempts": attempts,
        "punch_replies": replies,
        "local_nat": nat,
        "details": details,
    }


def tap_name(nwid: str) -> str:
    """The daemon's TAP name: "zt" + the network id in lowercase base32 (tap_contract.py)."""
    return "zt" + base64.b32encode(bytes.fromhex(nwid)).decode().rstrip("=").lower()


def mac_for(nwid: str, address: str) -> str:
    """The derived MAC of `address` on `nwid`, as overlay_core.proto.ethernet makes it."""
    digest = hashlib.blake2b(b"ztui-mac" + bytes.fromhex(nwid), digest_size=8).digest()
    first = (digest[0] & 0xFE) | 0x02
    first = 0x32 if first == 0x52 else first
    rest = (int(address, 16) ^ int.from_bytes(digest[1:6], "big")).to_bytes(5, "big")
    return ":".join(f"{b:02x}" for b in bytes([first]) + rest)


def network(
    nwid: str, address: str, *, state: NetworkState = NetworkState.REQUESTING_CONFIGURATION
) -> NetworkJson:
    """A joined network before its first config: no name, no addresses."""
    return {
        "nwid": nwid,
        "name": None,
        "state": state,
        "port_error": None,
        "private": None,
        "device": tap_name(nwid),
        "mac": mac_for(nwid, address),
        "mtu": 2800,
        "mss": "off",
        "addresses": [],
        "routes": [],
        "members": 0,
        "bridge": False,
        "revision": None,
        "config_age_s": None,
        "settings": {
            "allow_managed": True,
            "allow_global": False,
            "allow_default": False,
            "mtu": None,
            "mss": None,
            "report": True,
        },
        "counters": {},
        "rule_drops": [],
        "roster": [],
        "port_counters": {
            "frames_read": 0,
            "bytes_read": 0,
            "frames_written": 0,
            "bytes_written": 0,
            "write_drops": 0,
        },
    }


def hosted(
    nwid: str,
    name: str,
    now: float,
    *,
    pools: list[str] | None = None,
    presets: list[str] | None = None,
) -> ControllerNetworkJson:
    """A network this node's controller hosts; `members` counts are filled in on reads."""
    pools = list(pools or [])
    return {
        "nwid": nwid,
        "number": int(nwid[10:], 16),
        "name": name,
        "private": True,
        "mtu": 2800,
        "mss": "auto",
        "broadcast": True,
        "multicast_limit": 32,
        "pools": pools,
        "routes": [],
        "rules": [],
        "presets": list(presets or []),
        "revision": 1,
        "created": now,
        "updated": now,
        "members": {"authorized": 0, "pending": 0, "deauthorized": 0},
        "warnings": [],  # filled in on reads, like the counts
    }


def configure(
    net: NetworkJson, record: ControllerNetworkJson, ips: list[str], members: int
) -> None:
    """What a config from the controller does to a joined network: name, MTU, addresses
    (with the prefix length of their pool), routes, revision."""
    prefixes = [p.split("/")[1] for p in record["pools"] if "/" in p]
    prefix = prefixes[0] if prefixes else "24"
    net["state"] = NetworkState.OK
    net["name"] = record["name"]
    net["private"] = record["private"]
    net["mtu"] = net["settings"]["mtu"] or record["mtu"]
    net["mss"] = net["settings"]["mss"] or record["mss"]
    managed = net["settings"]["allow_managed"]
    net["addresses"] = [f"{ip}/{prefix}" for ip in ips] if managed else []
    net["routes"] = list(record["routes"]) if managed else []
    net["members"] = members
    net["revision"] = record["revision"]
    net["config_age_s"] = 0.0


def member(
    nwid: str,
    address: str,
    now: float,
    *,
    state: str = "pending",
    name: str = "",
    ips: list[str] | None = None,
    physical: str | None = None,
) -> MemberJson:
    authorized = state == "authorized"
    return {
        "nwid": nwid,
        "address": address,
        "state": state,
        "authorized": authorized,
        "name": name,
        "active_bridge": False,
        "ips": list(ips or []),
        "created": now,
        "last_seen": now,
        "last_authorized": now if authorized else None,
        "last_deauthorized": now if state == "deauthorized" else None,
        "version": VERSION,
        "physical_address": physical,
    }


def status(address: str = NODE, *, nat: str = NAT_CONE) -> StatusJson:
    return {
        "api_version": API_VERSION,
        "address": address,
        "version": VERSION,
        "state": NodeState.ONLINE,
        "online": True,
        "tunneled": False,
        "role": "LEAF",
        "roots_reachable": 2,
        "roots_total": 2,
        "external_endpoints": ["198.51.100.23:9993"],
        "nat": nat,
        "uptime_s": 86_400.0,
        "peer_count": 0,
        "counters": {"tx_packets": 0, "tx_bytes": 0, "rx_packets": 0, "rx_bytes": 0},
        "drops": {"unknown_session": 3, "replay": 1},
    }


# Events and diagnoses in the daemon's words (overlay_core/proto/membership.py, diagnose.py).


def network_change(nwid: str, was: str, now: str, name: str | None = None) -> str:
    """A joined network's `network` event: "<nwid>: REQUESTING_CONFIGURATION -> OK (home)"."""
    suffix = f" ({name})" if now == NetworkState.OK else ""
    return f"{nwid}: {was} -> {now}{suffix}"


def direct_lost(endpoint: str, ago_s: int) -> str:
    """A relay reason's summary for a direct path that stopped answering, probed as the
    daemon does (proto/path.py probe_interval_s): every 2 s for the first 30 s of
    silence, then every 35 s."""
    every = 2 if ago_s < 30 else 35
    return (
        f"the direct path to {endpoint} stopped answering {ago_s} s ago; "
        f"probing it again every {every} s"
    )


def total_counters(peers: dict[str, PeerJson]) -> dict[str, int]:
    keys = ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes")
    return {key: sum(p["counters"].get(key, 0) for p in peers.values()) for key in keys}


# --------------------------------------------------------------------------- netcheck

# What the NAS's hop trace found: one home router. The verdicts are the daemon's words
# (overlay_core/proto/netcheck.py) for the NATs the story uses.
NAS_NAT_HOPS = ["192.168.1.1"]
NETCHECK_VERDICTS = {
    "endpoint-independent": (
        "ok",
        "Direct connections should work (endpoint-independent NAT)",
        "nothing to do",
    ),
    "endpoint-dependent (symmetric)": (
        "warn",
        "Symmetric NAT: peers behind another symmetric NAT will be relayed",
        "forward UDP port 9993 to this device on the router",
    ),
}
TUNNELED_VERDICT = (
    "bad",
    "UDP blocked: everything goes through the roots over TCP",
    "allow outbound UDP to port 9993 in the firewall",
)

OFFLINE_VERDICT = (
    "bad",
    "Offline: no root answers, over UDP or TCP",
    "check the internet connection and the roots file",
)


def root_link(item: PeerJson) -> RootLink:
    """How the node reaches a root peer, in netcheck's and GET /roots' words."""
    if item["link"] == Link.DIRECT:
        return RootLink.UDP
    return RootLink.TCP if item["link"] == Link.TCP else RootLink.NONE


def netcheck(state: FakeState) -> NetcheckJson:
    """GET /netcheck for the fake: the roots among the peers, the status's NAT and
    external endpoint, and the daemon's verdict for them."""
    mapping = (
        "endpoint-dependent (symmetric)"
        if state.status["nat"] == NAT_SYMMETRIC
        else "endpoint-independent"
    )
    external = list(state.status["external_endpoints"])
    roots: list[NetcheckRootJson] = []
    for item in state.peers.values():
        if item["role"] != "ROOT":
            continue
        link = root_link(item)
        roots.append(
            {
                "address": item["address"],
                "link": link,
                "endpoint": item["preferred_path"]
                or (item["paths"][0]["endpoint"] if item["paths"] else None),
                "latency_ms": item["latency"]["smoothed_ms"] if link != RootLink.NONE else None,
                "external_v4": external[0] if external and link == RootLink.UDP else None,
                "external_v6": None,
            }
        )
    udp = any(r["link"] == RootLink.UDP for r in roots)
    tunneled = not udp and any(r["link"] == RootLink.TCP for r in roots)
    if not udp:  # only UDP answers report our endpoint: nothing to name the NAT by
        external, mapping = [], "unknown"
    if udp:
        level, verdict, advice = NETCHECK_VERDICTS[mapping]
    else:
        level, verdict, advice = TUNNELED_VERDICT if tunneled else OFFLINE_VERDICT
    measured = [r for r in roots if r["latency_ms"] is not None]
    nearest = min(measured, key=lambda r: r["latency_ms"] or 0.0, default=None)
    return {
        "api_version": API_VERSION,
        "role": state.status["role"],
        "udp": udp,
        "tunneled": tunneled,
        "ipv4": udp,
        "ipv6": False,
        "last_udp_ago_s": 1.3 if udp else None,
        "local_port": 9993,
        "external_v4": external,
        "external_v6": [],
        "mapping": mapping,
        "port_preserved": all(e.endswith(":9993") for e in external) if external else None,
        "hops_traced": True,
        "nat_hops": list(NAS_NAT_HOPS),
        "opener_ttl": len(NAS_NAT_HOPS) + 1,
        "hops": f"behind 1 NAT ({NAS_NAT_HOPS[0]})",
        "nearest_root": nearest["address"] if nearest is not None else None,
        "roots": roots,
        "level": level,
        "verdict": verdict,
        "advice": advice,
    }
