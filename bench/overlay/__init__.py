"""The overlay bench (bench/bench_overlay.py), split by role.

- tinc: tinc 1.0 in switch mode on the same rig, the anchor ztui is compared with: its
  configuration directories, keys, daemons (started and stopped by PID) and node dumps;
- measure: one measurement (iperf3 with ping beside it, idle ping, the daemons' CPU and
  RSS) and the iptables rules the bench adds to the home routers (port forwards, random
  loss, no direct UDP between the homes), each removed again when its measurement ends;
- bare_udp: bare UDP datagrams on the DIRECT path, one per send and with GSO/GRO, the
  kernel-only ceiling of any overlay's datagrams on the rig (its two ends run as programs);
- report: the tables printed at the end and the JSON written to bench/results/.

The modules import `overlay_core`, so the repository must be on sys.path; the script
bench/bench_overlay.py puts it there before importing this package.
"""
