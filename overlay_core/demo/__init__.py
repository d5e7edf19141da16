"""`ztui demo`'s world: a small overlay on this machine that a newcomer can watch move.

`python -m overlay_core.demo` builds it, prints progress lines on stderr while it does, then
one JSON line on stdout when it is ready, and keeps traffic flowing until SIGTERM, SIGINT,
EOF on a piped stdin, or the death of the process that started it. `ztui demo`
(console/demo.py) runs it as a child process, because the console imports nothing from
overlay_core but the API schema; it talks to the world only through the nodes' APIs.

Two worlds, with the same cast:

    root1, root2   roots on the "internet" (two, so a node can tell what its NAT does)
    ctl            the controller, behind a port-preserving NAT ("office"); it hosts the
                   private network "demo" (10.147.17.0/24) and is a member of it too
    nas, laptop    members behind port-preserving NATs: they punch through to DIRECT
    phone          a member behind a port-randomising NAT (mobile carrier): stays RELAY,
                   and says why
    guest          has asked to join and waits for approval (pending on ctl's Members)

* As root (world_netns.py): real overlayd processes in network namespaces of a rig with a
  fixed prefix (DEMO_PREFIX), iptables NAT, real TAP devices, ping every second between
  members and a TCP transfer every 10 s (traffic.py, run inside the namespaces).
* Otherwise (world_loopback.py): the same nodes as Daemons in this process on 127.0.0.1 with fake
  TAP devices, so networks and members are real but every peer is DIRECT; the ready line
  says `"simulated": true` and carries NOTICE (see loopback_notice).

State (state.py): a directory (/run/ztui-demo as root) holds a lock the running demo keeps,
state.json (this process, its parent, every process it started) and the nodes' homes. A
demo that finds the lock free but the directory not empty clears what a killed run left
(processes, namespaces with the demo prefix, homes) before it builds anything.

The ready line: {"ready": true, "home": ctl's home, "simulated": bool, "notice"?: str,
"network": {"nwid", "name", "pool"}, "nodes": {name: {"role", "address", "home", "underlay",
"nat", "overlay_ip", "member"}}, "traffic": str, "state_dir": str}.
"""

from __future__ import annotations

NETWORK_NAME = "demo"
POOL = "10.147.17.0/24"
DEMO_PREFIX = "ztde00"  # netns.py: the rig prefix, fixed so a later run finds leftovers
NOTICE = (
    "not root: loopback only, no TAP devices or NAT; peers are all DIRECT; "
    "run as root for the full demo"
)


def loopback_notice(reason: str, root: bool) -> str:
    """What the simulated world's ready line tells the user: NOTICE without root; as root
    (--loopback, or a missing tool) why there are no namespaces instead."""
    if not root:
        return NOTICE
    return f"{reason}: loopback only, no TAP devices or NAT; peers are all DIRECT"
