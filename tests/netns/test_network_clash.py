"""System test (root) for networks of one controller sharing a pool, with real TAP devices.

The defect: a member of two networks of the same controller, both on 10.147.17.0/24, got
10.147.17.22/24 on two TAPs (a member's pool address is a hash of its own address, so the
same in both). Here the controller's own node is that member (it is let into its own
networks at once, so nobody approves anything): `ztui net create` without --pool keeps
networks apart, an explicit overlap is created with a warning, and the node refuses to put
the clashing address on the second TAP, saying which network and device hold it.

The world (overlay_core/lab/world.py): root1 on the "internet", ctl a public host;
every node in its own namespace, removed when the module ends, whatever happened.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from overlay_core.lab.netns import unavailable_reason
from overlay_core.lab.world import OverlayNode, OverlayWorld

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
]

POOL = "10.147.17.0/24"


def ztui(node: OverlayNode, *args: str) -> subprocess.CompletedProcess[str]:
    return node.ztui(*args)


def create(node: OverlayNode, *args: str) -> tuple[str, str]:
    """`ztui net create ...`: the new id (stdout) and what it said on stderr."""
    proc = ztui(node, "net", "create", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), proc.stderr


def test_a_second_tap_on_a_taken_subnet_gets_no_address(world: OverlayWorld) -> None:
    ctl = world.controller
    assert ctl is not None
    home, said = create(ctl, "home")
    assert said == ""
    twin, said = create(ctl, "twin", "--pool", POOL)
    assert said.startswith("ztui: warning: pool 10.147.17.0/24 overlaps pool 10.147.17.0/24")
    apart, _ = create(ctl, "apart")

    joined = ztui(ctl, "join", home)
    assert joined.returncode == 0 and " OK on " in joined.stdout, joined.stderr
    first = world.wait_addressed(ctl, home)
    device = first["device"]
    [address] = first["addresses"]
    assert address.startswith("10.147.17.")
    assert world.device_addresses(ctl, device) == [address.split("/")[0]]

    refused = ztui(ctl, "join", twin)
    assert refused.returncode == 1 and refused.stdout == ""
    clash = world.wait_state(ctl, twin, "PORT_ERROR")
    reason = (
        f"{address} clashes with {address} on {device} (network {home}), so no address is "
        "set here: change one network's pool or leave one of them"
    )
    assert clash["port_error"] == reason
    assert refused.stderr == (
        f"ztui: {twin} on {clash['device']}: {reason} (`ztui leave {twin}`, fix that, and "
        "join again)\n"
    )
    assert world.device_addresses(ctl, clash["device"]) == []  # the kernel has it once
    networks = json.loads(ztui(ctl, "networks", "--json").stdout)
    assert {n["nwid"]: n["state"] for n in networks} == {home: "OK", twin: "PORT_ERROR"}

    assert ztui(ctl, "join", apart).returncode == 0
    third = world.wait_addressed(ctl, apart)
    assert third["addresses"][0].startswith("10.147.18.")

    # A way out: another pool for twin, and the member removed from it (a member keeps
    # its address when the pool changes), then leave and join again.
    world.update_network(twin, pools=["10.147.99.0/24"])
    assert ztui(ctl, "leave", twin).returncode == 0
    assert ztui(ctl, "remove", twin, ctl.address).returncode == 0
    assert ztui(ctl, "join", twin).returncode == 0
    fixed = world.wait_addressed(ctl, twin)
    assert fixed["addresses"][0].startswith("10.147.99.")
    assert world.device_addresses(ctl, device) == [address.split("/")[0]]
