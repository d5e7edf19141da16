"""Test doubles for overlay_core, kept out of the installed product (pyproject excludes
this package from the wheel; tests/test_wheel.py checks).

`fakenet` runs sans-IO Nodes over a simulated internet of `fakenat` NATs; `fakebind`
wraps real UDP sockets with loss; `nat_pairs` measures NAT pairings on the namespace rig
of overlay_core.lab.
"""
