"""GET /metrics from the daemon's snapshot: the node's status, its peers and joined networks
as the API's JSON, rendered by the schema's Prometheus writer (schema/prometheus.py), the
same one the console's fake node serves, so the metric families cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from overlay_core.proto.effects import NodeStatus

from .schema import PortCountersJson, metrics_text, network_to_json, peer_to_json, status_to_json


def render_metrics(
    status: NodeStatus,
    io_counters: Mapping[str, int] | None = None,
    ports: Mapping[str, PortCountersJson] | None = None,
) -> str:
    """`ports`: TAP counters by network id, for the networks whose device is open."""
    return metrics_text(
        status_to_json(status),
        [peer_to_json(peer) for peer in status.peers],
        [network_to_json(network) for network in status.networks],
        io_counters,
        ports,
    )
