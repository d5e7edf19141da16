"""Plain-text renderings of API JSON for the `ztui` subcommands. Pure: dicts in, lines out.

The layouts follow `zerotier-cli` where it has an equivalent (`info`, `peers`,
`listnetworks`), so people who know that tool read these at a glance; what it lacks (why a
peer is relayed, why a network has no config yet, which path an echo came back on) is added
on indented lines or at the end of a line: a peer's name and overlay IP, for one, end its
`ztui peers` line.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from overlay_core.api.schema import (
    ControllerNetworkJson,
    EchoJson,
    Link,
    MemberJson,
    NetcheckJson,
    NetworkJson,
    NetworkState,
    PeerJson,
    PeerNameJson,
    StatusJson,
)

PEER_COLUMNS = ("ADDRESS", "VER", "ROLE", "LAT", "LINK", "LASTTX", "LASTRX", "PATH", "NAME")
NETWORK_COLUMNS = ("NWID", "NAME", "STATUS", "TYPE", "DEV", "MAC", "MTU", "MSS", "ADDRESSES")
CONTROLLER_COLUMNS = ("NWID", "NAME", "TYPE", "MEMBERS", "PENDING", "MTU", "MSS", "POOLS")
MEMBER_COLUMNS = ("", "ADDRESS", "STATE", "NAME", "IPS", "BRIDGE", "SEEN", "VERSION")
PENDING_MARK = "*"


def ago(seconds: float | None) -> str:
    """Compact time since: 0.4s, 12s, 5m, 3h; '-' for never."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}ms" if value >= 100 else f"{value:.1f}ms"


def info_lines(status: StatusJson) -> list[str]:
    external = ", ".join(status["external_endpoints"]) or "unknown (no root has answered)"
    rows = [
        ("role", status["role"]),
        ("roots", f"{status['roots_reachable']}/{status['roots_total']} reachable"),
        ("external", external),
        ("nat", status["nat"]),
        ("uptime", duration(status["uptime_s"])),
        ("peers", str(status["peer_count"])),
    ]
    dropped = sum(status["drops"].values())
    if dropped:
        top = sorted(status["drops"].items(), key=lambda kv: -kv[1])[:3]
        rows.append(("drops", f"{dropped} ({', '.join(f'{k} {v}' for k, v in top)})"))
    lines = [f"info {status['address']} {status['version']} {status['state']}"]
    lines += [f"  {key:<9} {value}" for key, value in rows]
    return lines


# --------------------------------------------------------------------------- peers and ping


def printable(text: str) -> str:
    """`text` with every character that is not printable (a newline, the ESC that starts a
    terminal escape sequence, a right-to-left override) shown as "?". Member names are
    typed by a controller's admin and reach every member: printed as they are, one could
    move the cursor, recolour the terminal or forge a line of output."""
    return "".join(c if c.isprintable() else "?" for c in text)


def name_label(entry: PeerNameJson) -> str:
    """One network's name for a peer as people say it: `nas (10.147.17.22)` with its first
    overlay IP, the name alone without one, the IP alone when the admin gave no name."""
    name = printable(entry["name"].strip())
    ip = printable(entry["ips"][0]) if entry["ips"] else ""
    if name and ip:
        return f"{name} ({ip})"
    return name or ip


def peer_label(peer: PeerJson) -> str:
    """The label of the first network that names the peer (networks in nwid order), else
    of the first that gives it an IP; "" for a root or a stranger, known by address only.
    .get: a daemon from before names has none to give."""
    entries = peer.get("names", [])
    named = [e for e in entries if e["name"].strip()] or [e for e in entries if e["ips"]]
    return name_label(named[0]) if named else ""


def peer_labels(peer: PeerJson) -> list[str]:
    """Every distinct label the peer has, one per network that gives it a name or IP."""
    labels = [name_label(e) for e in peer.get("names", [])]
    return list(dict.fromkeys(label for label in labels if label))


def _peer_row(peer: PeerJson) -> tuple[str, ...]:
    latency = peer["latency"]
    rtt = latency["smoothed_ms"] if latency["smoothed_ms"] is not None else latency["last_ms"]
    return (
        peer["address"],
        peer["version"] or "-",
        peer["role"],
        ms(rtt),
        peer["link"],
        ago(peer["last_send_ago_s"]),
        ago(peer["last_receive_ago_s"]),
        peer["preferred_path"] or "-",
        ", ".join(peer_labels(peer)) or "-",
    )


def is_relayed(peer: PeerJson) -> bool:
    """Sent through a root (over UDP or the TCP fallback): there is a reason to show."""
    return peer["link"] in (Link.RELAY, Link.TCP)


def peers_lines(peers: Sequence[PeerJson]) -> list[str]:
    rows = [PEER_COLUMNS, *(_peer_row(p) for p in peers)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(PEER_COLUMNS) - 1)]
    lines: list[str] = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        peer = peers[index - 1] if index else None
        if peer is not None and is_relayed(peer) and peer["relay_reason"]:
            reason = peer["relay_reason"]
            lines.append(f"    {peer['link'].lower()} because: {reason['summary']}")
            # The NAT verdict is what a user can act on; the other details are in --json.
            lines += [f"    note: {d}" for d in reason["details"] if "NAT is symmetric" in d]
    if not peers:
        lines.append("(no peers yet)")
    return lines


def who(address: str, label: str) -> str:
    """A peer in a line of output: `3a91c4e7f2 nas (10.147.17.22)`, or the address alone."""
    return f"{address} {label}" if label else address


def pong_line(reply: EchoJson, label: str = "") -> str:
    """`pong from nas (10.147.17.22): 1.2 ms via 192.168.1.23:9993 (DIRECT)`, as ping(8)
    says `from nas (10.147.17.22)`: `label` is the peer's (peer_label); the address stands
    in for a peer without one. The statistics line under the pongs names both."""
    via = f"{reply['link']} through root {reply['relay']}" if reply["relay"] else reply["link"]
    peer = label or reply["peer"]
    return f"pong from {peer}: {reply['rtt_ms']:.1f} ms via {reply['endpoint']} ({via})"


def ping_summary(address: str, sent: int, rtts_ms: Sequence[float], label: str = "") -> list[str]:
    received = len(rtts_ms)
    loss = 100.0 * (sent - received) / sent if sent else 0.0
    line = f"{sent} sent, {received} received, {loss:.0f}% loss"
    if rtts_ms:
        avg = sum(rtts_ms) / received
        line += f", rtt min/avg/max {min(rtts_ms):.1f}/{avg:.1f}/{max(rtts_ms):.1f} ms"
    return [f"--- {who(address, label)} ping statistics ---", line]


# --------------------------------------------------------------------------- netcheck

NETCHECK_WIDTH = 80  # `ztui netcheck` wraps its sentences to a classic terminal


def netcheck_facts(report: NetcheckJson) -> list[tuple[str, str]]:
    """(label, value) rows of `ztui netcheck`, shared with the console's netcheck screen."""
    ago_text = ago(report["last_udp_ago_s"])
    if report["udp"]:
        udp = f"yes, a root answered {ago_text} ago"
    elif report["last_udp_ago_s"] is not None:
        udp = f"no, the last UDP answer from a root was {ago_text} ago"
    else:
        udp = "no, no root has answered over UDP"
    tcp = "in use: everything goes through the roots" if report["tunneled"] else "not in use"
    port = report["local_port"]
    if report["port_preserved"] is None:
        kept = "unknown (no root has reported our port yet)"
    elif report["port_preserved"]:
        kept = f"preserved ({port})"
    else:
        seen = sorted({int(e.rsplit(":", 1)[1]) for e in report["external_v4"]})
        local = port if port is not None else "?"
        kept = f"not preserved (local {local}, roots see {', '.join(map(str, seen))})"
    hops = report["hops"]
    if report["hops_traced"]:
        hops += f"; punch TTL {report['opener_ttl']}"
    return [
        ("udp", udp),
        ("tcp", tcp),
        ("ipv4", _family(report["ipv4"], report["external_v4"])),
        ("ipv6", _family(report["ipv6"], report["external_v6"])),
        ("mapping", report["mapping"]),
        ("port", kept),
        ("nat hops", hops),
    ]


def _family(live: bool, seen: Sequence[str]) -> str:
    answer = "yes" if live else "no"
    return f"{answer}, roots see us at {', '.join(seen)}" if seen else answer


def netcheck_root_lines(report: NetcheckJson) -> list[str]:
    """Two lines per root, nearest first: how we reach it, and where it sees us."""
    lines: list[str] = []
    unmeasured = float("inf")
    for root in sorted(report["roots"], key=lambda r: r["latency_ms"] or unmeasured):
        seen = root["external_v4"] or root["external_v6"] or "(not reported)"
        lines.append(
            f"{root['address']}  {root['link']:<4}  {ms(root['latency_ms']):>7}  "
            f"reached at {root['endpoint'] or '-'}"
        )
        lines.append(f"{'':<27}sees us at {seen}")
    return lines or ["(no roots configured)"]


def netcheck_lines(report: NetcheckJson, width: int = NETCHECK_WIDTH) -> list[str]:
    """`ztui netcheck`: the verdict and what to do first, then the facts behind it."""
    lines = textwrap.wrap(report["verdict"], width, subsequent_indent="  ")
    lines += textwrap.wrap(
        report["advice"], width, initial_indent="  next step: ", subsequent_indent=" " * 13
    )
    lines.append("")
    lines += [f"  {label:<9} {value}" for label, value in netcheck_facts(report)]
    lines.append("  roots")
    lines += [f"    {line}" for line in netcheck_root_lines(report)]
    return lines


# --------------------------------------------------------------------------- networks


def _table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[list[str]]
) -> list[str]:
    """Left-aligned columns; the last one is not padded. notes[i]: lines under row i."""
    table = [tuple(columns), *(tuple(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns) - 1)]
    lines: list[str] = []
    for index, row in enumerate(table):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if index:
            lines += [f"    {note}" for note in notes[index - 1]]
    return lines


def controller_of(nwid: str) -> str:
    """The controller's address: the first 10 of the network id's 16 hex digits."""
    return nwid[:10]


def _kind(private: bool | None) -> str:
    return "-" if private is None else ("PRIVATE" if private else "PUBLIC")


def network_hint(network: NetworkJson, my_address: str | None) -> str | None:
    """What a network's state means and what to do, or None when it is fine (OK)."""
    nwid, ctl = network["nwid"], controller_of(network["nwid"])
    match network["state"]:
        case NetworkState.ACCESS_DENIED:
            me = my_address or "ADDRESS"
            return (
                "ACCESS_DENIED — waiting for approval: ask the network's admin to run "
                f"`ztui approve {nwid} {me}`"
            )
        case NetworkState.NOT_FOUND:
            return f"NOT_FOUND — controller {ctl} has no network {nwid}: check the id"
        case NetworkState.PORT_ERROR:
            return f"PORT_ERROR — {network['port_error'] or 'the TAP device failed'}"
        case NetworkState.REQUESTING_CONFIGURATION:
            return f"asking controller {ctl} for the config; `ztui ping {ctl}` checks it answers"
    return None


def _network_row(network: NetworkJson) -> tuple[str, ...]:
    return (
        network["nwid"],
        network["name"] or "-",
        network["state"],
        _kind(network["private"]),
        network["device"] or "-",
        network["mac"],
        str(network["mtu"]),
        network["mss"],
        ",".join(network["addresses"]) or "-",
    )


def networks_lines(networks: Sequence[NetworkJson], my_address: str | None) -> list[str]:
    """`ztui networks`: zerotier-cli listnetworks' columns, a hint under any that is not OK."""
    if not networks:
        return ["(no networks joined; join one with `ztui join NWID`)"]
    notes = [[hint] if (hint := network_hint(n, my_address)) else [] for n in networks]
    return _table(NETWORK_COLUMNS, [_network_row(n) for n in networks], notes)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def settings_line(network: NetworkJson) -> str:
    """`ztui set`: the settings in force, local overrides marked."""
    settings = network["settings"]
    mtu = f"{network['mtu']}{' (local)' if settings['mtu'] is not None else ''}"
    mss = f"{network['mss']}{' (local)' if settings['mss'] is not None else ''}"
    return (
        f"{network['nwid']}: mtu {mtu}, mss {mss}, "
        f"allow-managed {_yes(settings['allow_managed'])}, "
        f"allow-global {_yes(settings['allow_global'])}, "
        f"allow-default {_yes(settings['allow_default'])}, "
        f"report {_yes(settings.get('report', True))}"
    )


def controller_networks_lines(networks: Sequence[ControllerNetworkJson]) -> list[str]:
    """`ztui net list`: the networks this node's controller hosts."""
    if not networks:
        return ["(this controller hosts no networks; create one with `ztui net create NAME`)"]
    rows = [
        (
            n["nwid"],
            n["name"] or "-",
            _kind(n["private"]),
            str(n["members"]["authorized"]),
            str(n["members"]["pending"]),
            str(n["mtu"]),
            n["mss"],
            ",".join(n["pools"]) or "-",
        )
        for n in networks
    ]
    # .get: a daemon from before warnings existed has none to give.
    notes = [[f"! {w}" for w in n.get("warnings", [])] for n in networks]
    return _table(CONTROLLER_COLUMNS, rows, notes)


def _since(then: float | None, now: float) -> str:
    return "never" if then is None else ago(max(0.0, now - then))


def members_lines(nwid: str, members: Sequence[MemberJson], now: float) -> list[str]:
    """`ztui members`: pending members first, marked, with how to approve them."""
    if not members:
        return [f"(no members yet: nobody has asked to join {nwid})"]
    order = {"pending": 0, "authorized": 1, "deauthorized": 2}
    ordered = sorted(members, key=lambda m: order.get(m["state"], 3))
    rows = [
        (
            PENDING_MARK if m["state"] == "pending" else "",
            m["address"],
            m["state"].upper(),
            m["name"] or "-",
            ",".join(m["ips"]) or "-",
            _yes(m["active_bridge"]),
            _since(m["last_seen"], now),
            m["version"] or "-",
        )
        for m in ordered
    ]
    lines = _table(MEMBER_COLUMNS, rows, [[] for _ in rows])
    pending = [m for m in ordered if m["state"] == "pending"]
    if pending:
        example = pending[0]["address"]
        lines.append(
            f"{PENDING_MARK} waiting for approval ({len(pending)}): `ztui approve {nwid} {example}`"
        )
    return lines


def member_lines(member: MemberJson, now: float) -> list[str]:
    """`ztui member NWID ADDR`: one member in full."""
    rows = [
        ("state", member["state"]),
        ("name", member["name"] or "-"),
        ("ips", ", ".join(member["ips"]) or "-"),
        ("bridge", _yes(member["active_bridge"])),
        ("seen", _since(member["last_seen"], now)),
        ("from", member["physical_address"] or "-"),
        ("version", member["version"] or "-"),
    ]
    lines = [f"member {member['address']} of {member['nwid']}"]
    return lines + [f"  {key:<8} {value}" for key, value in rows]


def joined_lines(network: NetworkJson, my_address: str | None) -> list[str]:
    """`ztui join`: where the network stands after the controller's first answer."""
    head = f"joined {network['nwid']}"
    if network["name"]:
        head += f" ({network['name']})"
    head += f": {network['state']}"
    if network["state"] == NetworkState.OK:
        head += f" on {network['device'] or '-'}"
        if network["addresses"]:
            head += f", {', '.join(network['addresses'])}"
    hint = network_hint(network, my_address)
    return [head] + ([f"    {hint}"] if hint else [])
