"""How the node is put together (proto/node.py): parts held, not inherited; every verb has
one handler; and what the parts keep per peer goes when the peer does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from overlay_core.proto.hops import HopTrace
from overlay_core.proto.identity import Identity
from overlay_core.proto.node import Node, NodeConfig
from overlay_core.proto.path import PATH_FORGET_S
from overlay_core.proto.timers import PEER_FORGET_S
from overlay_core.proto.wire import Verb
from overlay_core.testing.fakenet import FakeNet

PROTO = Path(__file__).resolve().parents[2] / "overlay_core" / "proto"
# The node's parts, by module: node.py owns one of each and wires them.
PARTS = {
    "node": "Node",
    "outbound": "Outbound",
    "inbound": "Inbound",
    "timers": "Timers",
    "punch": "Punching",
    "relay": "Relay",
    "membership": "Memberships",
    "reporting": "Reporter",
}


def imported_modules(module: str) -> set[str]:
    """The proto modules `module` imports, at run time or for type checking alike."""
    tree = ast.parse((PROTO / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module is not None:
                found.add(node.module)
            else:  # from . import a, b
                found.update(alias.name for alias in node.names)
    return found


def test_the_parts_that_speak_verbs_of_their_own_know_no_node() -> None:
    """Memberships and the Reporter send through the Sender protocol: neither imports the
    node, its core or the parts that route and receive (so neither can reach into them)."""
    node_side = {"node", "outbound", "inbound", "timers", "punch"}
    for module in ("membership", "reporting", "sender"):
        assert imported_modules(module) & node_side == set(), module


def test_no_part_of_the_node_inherits_another() -> None:
    for module, name in PARTS.items():
        tree = ast.parse((PROTO / f"{module}.py").read_text())
        (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
        assert cls.bases == [], f"{name} should hold the parts it uses, not extend them"


def test_every_verb_has_exactly_one_handler() -> None:
    net = FakeNet()
    inbound = net.add_host("a").node.inbound
    session_layer = set(inbound._handlers)
    payload_only = set(inbound._payload_handlers)
    assert session_layer.isdisjoint(payload_only)
    assert session_layer | payload_only == set(Verb)


def test_a_root_keeps_nothing_of_leaves_that_went_away() -> None:
    """Issue 13, item 8: the keys, last links and limits a root keeps per peer go with
    the peer, not just the peer itself (a root with 0 peers held them for ever)."""
    net = FakeNet()
    root = net.add_host("root", root=True)
    # No TCP fallback: blocking UDP to the root (below) cuts them off for good.
    a = net.add_host("a", config=NodeConfig(tcp_fallback=False))
    b = net.add_host("b", config=NodeConfig(tcp_fallback=False))
    net.run(2)
    for _ in range(4):
        net.call(a, a.node.send_user_data(b.address, b"hi", net.now))
        net.run(0.5)
    node = root.node
    leaves = {a.address, b.address}
    assert leaves <= set(node.peers) and leaves <= set(node.outbound._static)
    assert leaves <= set(node.timers._links)
    net.block(root, a)
    net.block(root, b)
    net.run(PATH_FORGET_S + PEER_FORGET_S + 10)
    assert leaves.isdisjoint(node.peers)
    assert leaves.isdisjoint(node.outbound._static)
    assert leaves.isdisjoint(node.timers._links)


def test_the_nodes_tables_are_the_cores_and_cannot_be_replaced() -> None:
    """node.peers, node.hops, ... are Outbound's own objects; assigning one on the Node
    raises instead of leaving the parts on the old table (netcheck read the node's,
    punching the core's, when a test once replaced node.hops)."""
    node = Node(Identity.generate(), NodeConfig())
    for name in ("identity", "address", "config", "peers", "roots", "observed", "counters"):
        assert getattr(node, name) is getattr(node.outbound, name), name
    assert node.drops is node.outbound.drops and node.hops is node.outbound.hops
    with pytest.raises(AttributeError, match=r"node\.outbound\.hops"):
        node.hops = HopTrace()
    assert node.hops is node.outbound.hops
