"""Rigs that build whole overlays for `ztui demo`, the benchmarks and the system tests.

They ship with the product because the demo runs on them; nothing in the daemon imports
them. `netns` builds real network namespaces (an "internet", public hosts, NATed home
sites; root and iproute2/iptables needed, importing it needs neither) out of
`netns_nodes`' namespace objects, `netns_isp` adds routed ISP hops and carrier NATs;
`world` runs overlayd processes (`overlay_node`) in them; `loopback` runs whole overlays as
Daemons in one process on 127.0.0.1, optionally on `memtap`'s in-memory TAPs, so the demo
and tests need no root. `lifetime` closes rigs and worlds however the program ends, and
`processes` stops what they started, by PID.
"""
