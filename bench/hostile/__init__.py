"""The hostile-traffic bench (bench/bench_hostile.py), split by role.

- daemons: the root and leaves as real `overlayd` processes, and their control API;
- legit: the generator's own legitimate node (a real sans-IO Node over UDP);
- attacks: the hostile traffic, its source sockets and its pacer;
- measure: one phase, measured (echo RTT, CPU, RSS, drops, logs, amplification);
- report: the tables and the PASS/FAIL checks printed at the end.

The modules import `overlay_core`, so the repository must be on sys.path; the script
bench/bench_hostile.py puts it there before importing this package.
"""
