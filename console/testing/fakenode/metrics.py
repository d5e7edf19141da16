"""GET /metrics for the fake daemon: the main families of overlay_core/api/metrics.py (node,
roots, peers, latency, links, paths, networks) in Prometheus text format, from FakeState."""

from __future__ import annotations

from ..fake_data import FakeState

LINKS = ("DIRECT", "RELAY", "TCP", "NONE")
STATES = ("ONLINE", "OFFLINE", "TUNNELED")


def render(state: FakeState) -> str:
    s = state.status
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))

    def sample(metric: str, value: float, **labels: str) -> None:
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"{metric}{{{inner}}} {value}" if inner else f"{metric} {value}")

    family("ztui_node_info", "gauge", "Constant 1, labelled with this node's identity.")
    sample("ztui_node_info", 1, address=s["address"], version=s["version"], role=s["role"])
    family("ztui_node_state", "gauge", "1 for the node's current state, 0 for the others.")
    for name in STATES:
        sample("ztui_node_state", int(name == s["state"]), state=name)
    family("ztui_uptime_seconds", "gauge", "Seconds since the node started.")
    sample("ztui_uptime_seconds", float(s["uptime_s"]))
    family("ztui_roots_reachable", "gauge", "Roots currently answering.")
    sample("ztui_roots_reachable", s["roots_reachable"])
    family("ztui_roots", "gauge", "Roots listed in the roots file.")
    sample("ztui_roots", s["roots_total"])
    family("ztui_peers", "gauge", "Peers known to the node.")
    sample("ztui_peers", len(state.peers))
    family("ztui_node_counter_total", "counter", "Node protocol counters.")
    for key, value in sorted(s["counters"].items()):
        sample("ztui_node_counter_total", value, name=key)
    family("ztui_drops_total", "counter", "Packets dropped by the node, by reason.")
    for key, value in sorted(s["drops"].items()):
        sample("ztui_drops_total", value, reason=key)
    family("ztui_peer_latency_seconds", "gauge", "Smoothed round trip to a peer.")
    for peer in state.peers.values():
        if peer["latency"]["smoothed_ms"] is not None:
            seconds = round(peer["latency"]["smoothed_ms"] / 1000, 6)
            sample("ztui_peer_latency_seconds", seconds, peer=peer["address"])
    family("ztui_peer_link", "gauge", "1 for the peer's current link kind, 0 for the others.")
    for peer in state.peers.values():
        for link in LINKS:
            sample("ztui_peer_link", int(peer["link"] == link), peer=peer["address"], link=link)
    family("ztui_path_bytes_total", "counter", "Bytes sent and received on a peer's path.")
    for peer in state.peers.values():
        for path in peer["paths"]:
            where = {"peer": peer["address"], "path": path["endpoint"]}
            sample("ztui_path_bytes_total", path["bytes_sent"], **where, direction="tx")
            sample("ztui_path_bytes_total", path["bytes_received"], **where, direction="rx")
    family("ztui_network_state", "gauge", "1 for a joined network's current state.")
    for network in state.networks.values():
        labels = {"nwid": network["nwid"], "name": network["name"] or ""}
        sample("ztui_network_state", 1, **labels, state=network["state"])
    return "\n".join(lines) + "\n"
