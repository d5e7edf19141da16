"""`ztui paths NWID`: how every pair of a hosted network's members reaches each other.

Run on the network's controller. Each member reports its links to the others every 30 s
(and at once when one changes), so this answers "which of my members are DIRECT with each
other, and why not?" for the whole network from one place. Pairs come worst first; each
shows both sides' view (they can differ: TCP on the side whose UDP is blocked, RELAY on
the other), and, when not DIRECT, why, naming the member that causes it when one does.
"""

from __future__ import annotations

import argparse

from overlay_core.api.schema import PathMemberJson, PathPairJson, PathSideJson, PathsJson

from ..client import ApiClient
from ..render import printable
from .common import Handler, Subparsers, add_json, nwid, show, whole_number
from .controller import hosted


def add_parsers(sub: Subparsers, common: list[argparse.ArgumentParser]) -> dict[str, Handler]:
    paths = sub.add_parser(
        "paths",
        parents=common,
        help="how every pair of a hosted network's members connects (run on the controller)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    paths.add_argument("nwid", help="16-hex-digit network id")
    paths.add_argument(
        "--limit", type=whole_number, metavar="N", help="show only the N worst pairs"
    )
    add_json(paths)
    return {"paths": cmd_paths}


def cmd_paths(client: ApiClient, args: argparse.Namespace) -> int:
    target = nwid(args.nwid)
    view = hosted(client, target, lambda: client.paths(target, args.limit))
    return show(args, view, lambda: paths_lines(view))


def member_label(member: PathMemberJson) -> str:
    """`nas (10.147.17.22)`, or the address when the member has no name."""
    name = printable(member["name"]) or member["address"]
    return f"{name} ({member['ips'][0]})" if member["ips"] else name


def paths_lines(view: PathsJson) -> list[str]:
    """The view as text; ages are the controller's own (measured on its clock)."""
    members = view["members"]
    online = sum(1 for m in members if m["online"])
    links = ", ".join(f"{n} {link}" for link, n in view["links"].items()) or "none"
    lines = [
        f"{printable(view['name'])} ({view['nwid']}): {len(members)} members, "
        f"{online} online; pairs: {links}"
    ]
    if not members:
        return [*lines, "  (no authorized members)"]
    names = {m["address"]: printable(m["name"]) or m["address"] for m in members}
    width = min(28, max(len(member_label(m)) for m in members))
    lines.append("members")
    for m in members:
        lines.append(f"  {member_label(m):<{width}}  {_member_state(m, view['online_within_s'])}")
        if m["flag_why"]:
            lines.append(f"  {'':<{width}}  ! {printable(m['flag_why'])}")
    shown = len(view["pairs"])
    more = f" ({shown} of {view['pairs_total']})" if shown < view["pairs_total"] else ""
    lines.append(f"pairs, worst first{more}")
    labels = [_pair_label(p, names) for p in view["pairs"]]
    pad = min(32, max((len(label) for label in labels), default=0))
    for pair, label in zip(view["pairs"], labels, strict=True):
        lines += _pair_lines(pair, names, label.ljust(pad))
    return lines


def _member_state(m: PathMemberJson, online_within_s: float) -> str:
    if m["report_age_s"] is None:
        return "no report yet (an older version, or never online since joining)"
    if m.get("reporting") is False:
        return f"reporting switched off there ({m['report_age_s']:.0f} s ago)"
    age = f"{m['report_age_s']:.0f} s ago"
    state = "online" if m["online"] else f"OFFLINE (no report for over {online_within_s:.0f} s)"
    words = [f"{state}, reported {age}"]
    if m["version"]:
        words.append(f"v{printable(m['version'])}")
    if m["nat"]:
        words.append(f"NAT {printable(m['nat'])}")
    if m["tcp_fallback"]:
        words.append("TCP only")
    return "; ".join(words)


def _side(who: str, side: PathSideJson | None) -> str:
    if side is None:
        return f"{who}: no report"
    latency = f" {side['latency_ms']:.1f} ms" if side["latency_ms"] is not None else ""
    kind = f" via {side['kind']}" if side["kind"] not in ("unknown", "relay") else ""
    return f"{who}: {side['link']}{latency}{kind}"


def _pair_label(pair: PathPairJson, names: dict[str, str]) -> str:
    return f"{names.get(pair['a'], pair['a'])} <-> {names.get(pair['b'], pair['b'])}"


def _pair_lines(pair: PathPairJson, names: dict[str, str], label: str) -> list[str]:
    a, b = names.get(pair["a"], pair["a"]), names.get(pair["b"], pair["b"])
    sides = f"{_side(a, pair['a_sees'])} | {_side(b, pair['b_sees'])}"
    head = f"  {pair['link']:<7} {label}  {sides}"
    return [head] + ([f"          why: {printable(pair['why'])}"] if pair["why"] else [])


__all__ = ["add_parsers", "member_label", "paths_lines"]
