"""`ztui netcheck` on real Linux NATs: does it name each NAT the way the kernel behaves?

One world for the module (overlay_core/lab/world.py): two roots on the "internet",
and per story a member in a home of its own (its own NAT router, so no mapping of an
earlier story is reused) or on a public host. Each story waits until both roots have
reported where they see the member and its hop trace is done, then reads `ztui netcheck
--json` from its control socket:

(a) port-preserving MASQUERADE: both roots see home1's address at the leaf's own port:
    endpoint-independent, port preserved, "Direct connections should work".
(b) MASQUERADE --random-fully: a random port per destination: endpoint-dependent, port
    not preserved, the symmetric-NAT verdict with the port to forward.
(c) a leaf on a public host: the roots see its own address: no NAT.

The NAT hops (hops.py) must be the home router's inside address for (a) and (b) and none
for (c).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from overlay_core.lab.netns import unavailable_reason
from overlay_core.lab.world import PORT, OverlayNode, OverlayWorld

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
]

# Start, HELLO/OK with both roots, a keepalive round, and the hop trace (a few probes of
# TRACE_STEP_S, 0.5 s, at most).
REPORT_TIMEOUT_S = 25.0


@pytest.fixture(scope="module")
def world() -> Iterator[OverlayWorld]:
    with OverlayWorld(log_level="debug") as w:
        w.add_roots(2)
        yield w


def _report(node: OverlayNode) -> dict[str, Any] | None:
    """`ztui netcheck --json`, or None while the daemon cannot answer yet."""
    proc = node.ztui("netcheck", "--json")
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def _both_roots_reported(node: OverlayNode) -> Callable[[], dict[str, Any] | None]:
    """The report once both roots answer over UDP, have said where they see the node, and
    its hop trace has finished."""

    def probe() -> dict[str, Any] | None:
        report = _report(node)
        if report is None or len(report["roots"]) != 2 or not report["hops_traced"]:
            return None
        if not all(r["link"] == "UDP" and r["external_v4"] for r in report["roots"]):
            return None
        return report

    return probe


def _reported(world: OverlayWorld, node: OverlayNode) -> dict[str, Any]:
    return world.wait(
        f"both roots to report {node.name}", _both_roots_reported(node), REPORT_TIMEOUT_S
    )


def test_port_preserving_masquerade_is_endpoint_independent(world: OverlayWorld) -> None:
    """(a) Plain MASQUERADE keeps the member's port: both roots see the router:port."""
    node = world.add_home("keep", "pckeep")
    assert node.site is not None
    report = _reported(world, node)
    fail = world.report
    assert report["udp"] and not report["tunneled"], fail()
    assert report["external_v4"] == [f"{node.site.addr}:{PORT}"], fail()
    assert report["mapping"] == "endpoint-independent", fail()
    assert report["port_preserved"] is True and report["local_port"] == PORT, fail()
    assert report["level"] == "ok", fail()
    assert report["verdict"] == "Direct connections should work (endpoint-independent NAT)"
    assert report["nat_hops"] == [node.site.gateway], fail()
    text = node.ztui("netcheck").stdout
    assert (
        text.startswith("Direct connections should work")
        and "mapping   endpoint-independent" in text
    )


def test_random_fully_is_endpoint_dependent(world: OverlayWorld) -> None:
    """(b) --random-fully gives each root its own random port: symmetric, port moved, and
    the verdict says peers behind another symmetric NAT get relayed."""
    node = world.add_home("random", "pcrandom", random_fully=True)
    assert node.site is not None
    report = _reported(world, node)
    fail = world.report
    assert report["mapping"] == "endpoint-dependent (symmetric)", fail()
    assert report["port_preserved"] is False, fail()
    assert len(report["external_v4"]) == 2, fail()
    assert all(e.startswith(f"{node.site.addr}:") for e in report["external_v4"]), fail()
    assert report["level"] == "warn", fail()
    assert report["verdict"].startswith("Symmetric NAT"), fail()
    assert f"forward UDP port {PORT}" in report["advice"], fail()
    assert report["nat_hops"] == [node.site.gateway], fail()


def test_public_host_has_no_nat(world: OverlayWorld) -> None:
    """(c) A member with a public address: the roots see its own address and port."""
    node = world.add_public_member("pub")
    report = _reported(world, node)
    fail = world.report
    assert report["external_v4"] == [f"{node.host.addr}:{PORT}"], fail()
    assert report["mapping"] == "none (public address)", fail()
    assert report["port_preserved"] is True, fail()
    assert report["verdict"] == "Direct connections should work (public address, no NAT)"
    assert report["nat_hops"] == [], fail()
