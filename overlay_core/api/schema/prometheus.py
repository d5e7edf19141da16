"""GET /metrics: Prometheus text exposition (format 0.0.4) of the node's API JSON. Pure:
JSON in, text out, so the daemon (api/metrics.py, from its snapshot) and the console's fake
node (from its state) render the very same families.

Counter names coming from the node are open-ended (they grow with the protocol), so they
become label values of a few fixed metric families rather than metric names of their own:
a dashboard query never breaks because a counter was added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from overlay_core.proto.states import Link, NodeState

from .json_types import NetworkJson, PeerJson, PortCountersJson, StatusJson

LINK_STATES: tuple[Link, ...] = tuple(Link)
NODE_STATES: tuple[NodeState, ...] = tuple(NodeState)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        self.lines.append(f"{name}{_labels(labels or {})} {_number(value)}")

    def counters(self, name: str, help_text: str, counters: Mapping[str, int]) -> None:
        self.family(name, "counter", help_text)
        for key, value in sorted(counters.items()):
            self.sample(name, value, {"name": key})

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def metrics_text(
    status: StatusJson,
    peers: Sequence[PeerJson],
    networks: Sequence[NetworkJson],
    io_counters: Mapping[str, int] | None = None,
    ports: Mapping[str, PortCountersJson] | None = None,
) -> str:
    """`ports`: TAP counters by network id, for the networks whose device is open."""
    w = _Writer()
    w.family("ztui_node_info", "gauge", "Constant 1, labelled with this node's identity.")
    identity = {"address": status["address"], "version": status["version"], "role": status["role"]}
    w.sample("ztui_node_info", 1, identity)
    w.family("ztui_node_state", "gauge", "1 for the node's current state, 0 for the others.")
    for name in NODE_STATES:
        w.sample("ztui_node_state", int(name == status["state"]), {"state": name})
    w.family("ztui_uptime_seconds", "gauge", "Seconds since the node started.")
    w.sample("ztui_uptime_seconds", float(status["uptime_s"]))
    w.family("ztui_roots_reachable", "gauge", "Roots currently answering.")
    w.sample("ztui_roots_reachable", status["roots_reachable"])
    w.family("ztui_roots", "gauge", "Roots listed in the roots file.")
    w.sample("ztui_roots", status["roots_total"])
    w.family("ztui_peers", "gauge", "Peers known to the node.")
    w.sample("ztui_peers", len(peers))

    w.counters("ztui_node_counter_total", "Node protocol counters.", status["counters"])
    w.family("ztui_drops_total", "counter", "Packets dropped by the node, by reason.")
    for reason, value in sorted(status["drops"].items()):
        w.sample("ztui_drops_total", value, {"reason": reason})
    w.counters("ztui_io_counter_total", "Socket-level counters.", io_counters or {})
    _peers(w, peers)
    _networks(w, networks, ports or {})
    return w.text()


def _peers(w: _Writer, peers: Sequence[PeerJson]) -> None:
    w.family("ztui_peer_latency_seconds", "gauge", "Smoothed round trip to a peer.")
    for peer in peers:
        rtt_ms = peer["latency"]["smoothed_ms"]
        if rtt_ms is not None:
            seconds = round(rtt_ms / 1000, 6)  # microseconds are all the precision there is
            w.sample("ztui_peer_latency_seconds", seconds, {"peer": peer["address"]})
    w.family("ztui_peer_link", "gauge", "1 for the peer's current link kind, 0 for the others.")
    for peer in peers:
        for link in LINK_STATES:
            labels = {"peer": peer["address"], "link": link}
            w.sample("ztui_peer_link", int(peer["link"] == link), labels)
    for unit, help_text in (("bytes", "Bytes"), ("packets", "Packets")):
        name = f"ztui_path_{unit}_total"
        w.family(name, "counter", f"{help_text} sent and received on a peer's physical path.")
        for peer in peers:
            for path in peer["paths"]:
                sent = path["bytes_sent"] if unit == "bytes" else path["packets_sent"]
                received = path["bytes_received"] if unit == "bytes" else path["packets_received"]
                base = {"peer": peer["address"], "path": path["endpoint"]}
                w.sample(name, sent, {**base, "direction": "tx"})
                w.sample(name, received, {**base, "direction": "rx"})


def _networks(
    w: _Writer, networks: Sequence[NetworkJson], ports: Mapping[str, PortCountersJson]
) -> None:
    w.family("ztui_network_state", "gauge", "1 for a joined network's current state.")
    for network in networks:
        labels = {"nwid": network["nwid"], "name": network["name"] or ""}
        w.sample("ztui_network_state", 1, {**labels, "state": network["state"]})
    w.family("ztui_network_members", "gauge", "Members in a joined network's config.")
    for network in networks:
        w.sample("ztui_network_members", network["members"], {"nwid": network["nwid"]})
    w.family(
        "ztui_network_counter_total", "counter", "Frames and drops of a joined network, by name."
    )
    for network in networks:
        for key, value in sorted(network["counters"].items()):
            w.sample("ztui_network_counter_total", value, {"nwid": network["nwid"], "name": key})
    w.family(
        "ztui_network_rule_drops_total", "counter", "Frames dropped by each flow rule, in order."
    )
    for network in networks:
        for index, drops in enumerate(network["rule_drops"]):
            labels = {"nwid": network["nwid"], "rule": drops["rule"], "index": str(index)}
            w.sample("ztui_network_rule_drops_total", drops["drops"], labels)
    for unit in ("frames", "bytes"):
        name = f"ztui_tap_{unit}_total"
        w.family(name, "counter", f"{unit.capitalize()} read from and written to a TAP device.")
        for nwid, counters in sorted(ports.items()):
            read = counters["frames_read" if unit == "frames" else "bytes_read"]
            written = counters["frames_written" if unit == "frames" else "bytes_written"]
            w.sample(name, read, {"nwid": nwid, "direction": "from_host"})
            w.sample(name, written, {"nwid": nwid, "direction": "to_host"})
    w.family("ztui_tap_write_drops_total", "counter", "Frames the host's stack refused.")
    for nwid, counters in sorted(ports.items()):
        w.sample("ztui_tap_write_drops_total", counters["write_drops"], {"nwid": nwid})
