"""The demo as root: overlayd processes in network namespaces with NAT and real TAPs.

    internet 198.18.0.0/15: root1 198.18.1.10, root2 198.18.1.11, and the NAT routers
    office (port-preserving)  -- ctl     the controller, a member of "demo" too
    home   (port-preserving)  -- nas     punches through to DIRECT
    cafe   (port-preserving)  -- laptop  punches through to DIRECT
    mobile (random ports)     -- phone   RELAY: its NAT maps every flow to a new port
    hotel  (port-preserving)  -- guest   joined, waits for approval

Built on lab/world.py's OverlayWorld over a Rig with the fixed DEMO_PREFIX; closing
them stops every process by PID and deletes every namespace. Traffic: `ping -i 1` between
members, and traffic.py's TCP sink/send pairs inside the namespaces.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..lab.netns import Rig, cleanup_leftovers, list_namespaces, unavailable_reason
from ..lab.overlay_node import stop_nodes
from ..lab.world import OverlayNode, OverlayWorld, WorldError, child_env
from . import DEMO_PREFIX, NETWORK_NAME, POOL
from .state import DemoState

Progress = Callable[[str], None]

# (host, site, random_fully); the controller comes first.
HOMES = [
    ("ctl", "office", False),
    ("nas", "home", False),
    ("laptop", "cafe", False),
    ("phone", "mobile", True),
    ("guest", "hotel", False),
]
APPROVED = ["ctl", "nas", "laptop", "phone"]
PINGS = [("ctl", "nas"), ("ctl", "laptop"), ("ctl", "phone"), ("laptop", "nas"), ("phone", "nas")]
TRAFFIC = "ping every second between members; 256 KB over TCP every 10 s"
TCP_PORT = 7000
TCP_BYTES = 256 * 1024
TCP_EVERY_S = 10
# sender -> receiver, and the sender's offset within the period
TRANSFERS = [("laptop", "ctl", 0), ("phone", "nas", 5)]
HEALTH_EVERY_S = 5.0
# A daemon's API is up in ~1 s; five starting at once on a loaded 2-core machine took
# over the test rig's 15 s. A demo that gives up on a slow NAS helps nobody.
NODE_START_S = 60.0
DAEMON_STOP_S = 10.0  # SIGTERM to SIGKILL, one deadline for all; an idle one takes < 1 s


def unavailable() -> str | None:
    """Why the namespace demo cannot run here (then the loopback one does), or None."""
    return unavailable_reason()


def clear_leftovers(progress: Progress) -> list[str]:
    """Delete the namespaces a killed demo left (we hold the demo lock: none is live)."""
    if not any(ns.startswith(DEMO_PREFIX + "-") for ns in list_namespaces()):
        return []
    progress(f"removing namespaces {DEMO_PREFIX}-* left by a previous demo ...")
    return cleanup_leftovers(DEMO_PREFIX, only_orphans=False)


def run(
    state: DemoState,
    progress: Progress,
    ready: Callable[[dict[str, Any]], None],
    wait_stop: Callable[[float], bool],
    shield: Callable[[], None],
) -> None:
    """Build the world, call `ready(info)`, keep it until `wait_stop` says stop; always
    tear everything down (also when interrupted while building), after `shield()` so a
    second signal cannot interrupt the teardown."""
    rig = Rig(prefix=DEMO_PREFIX)
    world = OverlayWorld(rig=rig, base=state.homes)
    try:
        info = build(world, state, progress)
        ready(info)
        while not wait_stop(HEALTH_EVERY_S):
            for node in world.nodes:
                if not node.stopped and not node.running:
                    progress(f"overlayd {node.name} exited; its log: {node.log}")
                    node.stopped = True
    finally:
        shield()
        progress("stopping the daemons and the traffic ...")
        # Side by side with one deadline: seven slow daemons must not outlast what
        # `ztui demo` waits for us, or it kills us halfway, namespaces left behind.
        stop_nodes(world.nodes, DAEMON_STOP_S)
        world.close()
        progress(f"deleting {len(rig.namespaces)} namespaces ...")
        rig.close()


def build(world: OverlayWorld, state: DemoState, progress: Progress) -> dict[str, Any]:
    started = time.monotonic()

    def done(what: str) -> None:
        progress(f"  {what} ({time.monotonic() - started:.1f} s)")

    progress("starting root1 and root2 on the internet 198.18.0.0/15 ...")
    roots = world.add_roots(2)
    record(state, world)
    done(", ".join(f"{r.name} on {r.host.addr}" for r in roots))

    progress("building NATed sites: office (ctl), home (nas), cafe (laptop), "
             "mobile (phone, random-port NAT), hotel (guest) ...")  # fmt: skip
    nodes: dict[str, OverlayNode] = {}
    for name, site, random_fully in HOMES:
        if name == "ctl":
            nodes[name] = world.add_controller(name, at_home=True, site_name=site, start=False)
        else:
            nodes[name] = world.add_home(site, name, random_fully=random_fully, start=False)
    progress("starting overlayd on ctl, nas, laptop, phone, guest ...")
    parallel([functools.partial(node.start, NODE_START_S) for node in nodes.values()])
    record(state, world)
    done(", ".join(f"{n.name} {n.address}" for n in nodes.values()))

    progress(f'creating the private network "{NETWORK_NAME}" ({POOL}) on ctl ...')
    nwid = world.create_network(NETWORK_NAME, pools=[POOL])
    for node in nodes.values():
        node.join(nwid)
    for node in nodes.values():
        world.wait(f"{node.name}'s join request", functools.partial(asked, world, nwid, node), 20)
    progress(f"approving {', '.join(APPROVED)}; guest waits for approval ...")
    for name in APPROVED:
        world.approve(nwid, nodes[name], name=name)
    world.set_member(nwid, nodes["guest"], name="guest")
    progress("waiting for the members' TAP devices and addresses ...")
    for name in APPROVED:
        world.wait_addressed(nodes[name], nwid, 20)
    ips = {name: world.overlay_ip(nodes[name], nwid) for name in APPROVED}
    done(", ".join(f"{name} {ip}" for name, ip in ips.items()))

    progress(f"starting traffic: {TRAFFIC} ...")
    start_traffic(nodes, ips)
    record(state, world)
    return {
        "simulated": False,
        "home": str(nodes["ctl"].home),
        "network": {"nwid": nwid, "name": NETWORK_NAME, "pool": POOL},
        "nodes": {n.name: describe(n, ips) for n in world.nodes},
        "traffic": TRAFFIC,
        "namespaces": list(world.rig.namespaces),
    }


def asked(world: OverlayWorld, nwid: str, node: OverlayNode) -> bool:
    return any(m["address"] == node.address for m in world.member_list(nwid))


def parallel(calls: Sequence[Callable[[], object]]) -> None:
    """Run the calls in daemon threads, wait for all, raise the first error. Daemon
    threads: an interrupted demo does not wait for them before it cleans up."""
    errors: list[BaseException] = []

    def call(fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(fn,), daemon=True) for fn in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def start_traffic(nodes: dict[str, OverlayNode], ips: dict[str, str]) -> None:
    quiet: dict[str, Any] = {"stdin": -3, "stdout": -3, "stderr": -3}  # DEVNULL
    for src, dst in PINGS:
        nodes[src].host.popen(["ping", "-n", "-q", "-i", "1", ips[dst]], **quiet)
    traffic = [sys.executable, "-m", "overlay_core.demo.traffic"]
    for dst in sorted({dst for _, dst, _ in TRANSFERS}):
        nodes[dst].host.popen([*traffic, "sink", str(TCP_PORT)], env=child_env(), **quiet)
    for src, dst, offset in TRANSFERS:
        argv = [*traffic, "send", ips[dst], str(TCP_PORT), str(TCP_BYTES), str(TCP_EVERY_S),
                "--delay", str(offset)]  # fmt: skip
        nodes[src].host.popen(argv, env=child_env(), **quiet)


def record(state: DemoState, world: OverlayWorld) -> None:
    """Every process started so far into state.json, for a later run to clear."""
    pids = {n.proc.pid: f"overlayd {n.name}" for n in world.nodes if n.proc is not None}
    for proc in world.rig._procs:
        pids.setdefault(proc.pid, what(proc.args))
    state.add_processes(pids)
    state.write(namespaces=list(world.rig.namespaces))


def what(argv: Any) -> str:
    """A process's short description from its `ip netns exec NS cmd...` command line."""
    cmd = [str(a) for a in argv][3:] if isinstance(argv, list) else [str(argv)]
    ns, cmd = (cmd[0], cmd[1:]) if cmd else ("", [])
    if "overlay_core.demo.traffic" in cmd:
        cmd = cmd[cmd.index("overlay_core.demo.traffic") :]
    return f"{' '.join(cmd)} in {ns}"


def describe(node: OverlayNode, ips: dict[str, str]) -> dict[str, Any]:
    site = node.site
    if site is None:
        nat, public = "none", node.host.addr
    else:
        nat, public = ("random ports" if site.random_fully else "port-preserving"), site.addr
    role = node.role if node.name != "guest" else "member"
    member = "authorized" if node.name in ips else ("pending" if node.name == "guest" else None)
    return {
        "role": role,
        "address": node.address,
        "home": str(node.home),
        "underlay": node.host.addr,
        "public": public,
        "nat": nat,
        "namespace": node.host.ns,
        "overlay_ip": ips.get(node.name),
        "member": member,
    }


__all__ = ["WorldError", "clear_leftovers", "run", "unavailable"]
