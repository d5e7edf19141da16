"""The MTU/MSS calculator behind the Networks screen's `e`: pure arithmetic, sentences out.

A frame on the overlay costs FRAME_OVERHEAD_BYTES beyond itself (packet header 20, verb 1,
network id 8, AEAD tag 16). A datagram carries at most the path's MTU (the probed UDP
payload size); a bigger packet leaves as a head plus fragments, each fragment spending
FRAGMENT_HEADER_BYTES of its own. The numbers mirror overlay_core.proto (vnet, wire, mss),
which the console may not import; tests/console/test_mtu.py pins them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overlay_core.api import schema
from overlay_core.api.schema import MAX_MSS, MAX_MTU, MIN_MSS, MIN_MTU, PeerJson

PACKET_HEADER_BYTES = 20
VERB_BYTES = 1
NWID_BYTES = 8
AEAD_TAG_BYTES = 16
FRAME_OVERHEAD_BYTES = PACKET_HEADER_BYTES + VERB_BYTES + NWID_BYTES + AEAD_TAG_BYTES  # 45
FRAGMENT_HEADER_BYTES = 21
MAX_DATAGRAMS = 15  # a head and 14 fragments
ETHERNET_HEADER_BYTES = 14
IPV4_HEADER_BYTES = 20
IPV6_HEADER_BYTES = 40
TCP_HEADER_BYTES = 20

# The API's bounds and its words for them (the schema's limits), as a form checks them.
MTU_RULE = f"mtu: {schema.MTU_RULE}"
MSS_RULE = f"mss: {schema.MSS_RULE}"


def check_mtu(text: str) -> int | None:
    """A typed MTU: a number in range, or None for "the network's" (empty or `default`).
    Raises ValueError with the daemon's words for the rule."""
    text = text.strip().lower()
    if text in ("", "default"):
        return None
    if not text.isdigit() or not MIN_MTU <= int(text) <= MAX_MTU:
        raise ValueError(MTU_RULE)
    return int(text)


def check_mss(text: str) -> str | None:
    """A typed MSS policy: "off", "auto", "fixed:N", or None for the network's."""
    text = text.strip().lower()
    if text in ("", "default"):
        return None
    if text in ("off", "auto"):
        return text
    digits = text.removeprefix("fixed:")
    if not digits.isdigit() or not MIN_MSS <= int(digits) <= MAX_MSS:
        raise ValueError(MSS_RULE)
    return f"fixed:{int(digits)}"


@dataclass(frozen=True, slots=True)
class TightestPath:
    """The smallest path MTU among the peers' preferred paths: the one that decides."""

    mtu: int
    peer: str
    endpoint: str


def tightest_path(peers: Sequence[PeerJson]) -> TightestPath | None:
    best: TightestPath | None = None
    for peer in peers:
        for path in peer["paths"]:
            if path["preferred"] and path["mtu"] > 0 and (best is None or path["mtu"] < best.mtu):
                best = TightestPath(path["mtu"], peer["address"], path["endpoint"])
    return best


def largest_frame(path_mtu: int) -> int:
    """The largest Ethernet frame (header included) one datagram on this path carries."""
    return path_mtu - FRAME_OVERHEAD_BYTES


def auto_mss(path_mtu: int, network_mtu: int, ipv6: bool) -> int:
    """What "auto" clamps TCP to: a full segment's frame fits one datagram (vnet.clamp)."""
    ip_mtu = min(network_mtu, largest_frame(path_mtu) - ETHERNET_HEADER_BYTES)
    return ip_mtu - (IPV6_HEADER_BYTES if ipv6 else IPV4_HEADER_BYTES) - TCP_HEADER_BYTES


def datagrams_for(frame_bytes: int, path_mtu: int) -> int:
    """How many datagrams a frame of this size takes on the path (wire.fragment_packet)."""
    packet = frame_bytes + FRAME_OVERHEAD_BYTES
    if packet <= path_mtu:
        return 1
    piece = path_mtu - FRAGMENT_HEADER_BYTES
    return 1 + -(-(packet - path_mtu) // piece)


def arithmetic_lines(path: TightestPath | None, network_mtu: int) -> list[str]:
    """The calculator's working, one step a line, for a monospace panel."""
    if path is None:
        return [
            "No peer has a measured path MTU yet, so there is nothing to size against:",
            "auto MSS follows the network MTU until a path is probed.",
        ]
    frame = largest_frame(path.mtu)
    ip_mtu = frame - ETHERNET_HEADER_BYTES
    v4 = auto_mss(path.mtu, network_mtu, ipv6=False)
    v6 = auto_mss(path.mtu, network_mtu, ipv6=True)
    return [
        f"path MTU {path.mtu}  (tightest preferred path: {path.peer} via {path.endpoint})",
        f"- overhead {FRAME_OVERHEAD_BYTES}  (header {PACKET_HEADER_BYTES} + verb {VERB_BYTES}"
        f" + network id {NWID_BYTES} + AEAD tag {AEAD_TAG_BYTES})",
        f"= {frame}  largest frame one datagram carries",
        f"- Ethernet {ETHERNET_HEADER_BYTES} = {ip_mtu}  largest IP packet in one datagram",
        f"- IPv4 {IPV4_HEADER_BYTES} + TCP {TCP_HEADER_BYTES} = MSS {v4};"
        f"  IPv6 {IPV6_HEADER_BYTES} + TCP {TCP_HEADER_BYTES} = MSS {v6}  (auto)",
    ]


def mtu_sentence(mtu: int, path: TightestPath | None) -> str:
    """What an MTU will do, e.g. "2800: frames up to 2800 bytes; each crosses this
    1432-byte path as 3 datagrams"."""
    if path is None:
        return f"{mtu}: frames up to {mtu} bytes; fragmented to each path's MTU as needed"
    # A full frame is the IP packet (the MTU) plus its Ethernet header.
    count = datagrams_for(mtu + ETHERNET_HEADER_BYTES, path.mtu)
    if count == 1:
        return (
            f"{mtu}: frames up to {mtu} bytes; each fits one datagram on this {path.mtu}-byte path"
        )
    if count > MAX_DATAGRAMS:
        return (
            f"{mtu}: frames up to {mtu} bytes need {count} datagrams on this {path.mtu}-byte "
            f"path, more than the {MAX_DATAGRAMS} allowed: the biggest frames are dropped"
        )
    return (
        f"{mtu}: frames up to {mtu} bytes; each crosses this {path.mtu}-byte path "
        f"as {count} datagrams"
    )


def mss_sentence(policy: str, mtu: int, path: TightestPath | None) -> str:
    """What an MSS policy will do to TCP on this network."""
    if policy == "off":
        return "off: TCP is not clamped; full-size segments are fragmented like any frame"
    if policy.startswith("fixed:"):
        value = int(policy.split(":", 1)[1])
        return f"{value}: every TCP connection's SYN is clamped to MSS {value}"
    if path is None:
        return f"auto: TCP clamped to the network MTU ({mtu - 40} for IPv4) until a path is probed"
    v4 = auto_mss(path.mtu, mtu, ipv6=False)
    return (
        f"auto: TCP clamped to MSS {v4} (IPv4) / {auto_mss(path.mtu, mtu, ipv6=True)} (IPv6),"
        " so a full segment crosses in one datagram, unfragmented"
    )
