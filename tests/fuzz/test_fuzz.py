"""The short fuzz run of `make test`: every target of tests/fuzz for a few hundred inputs.

Deterministic (`derandomize`): the same inputs on every machine and every run, so a red
run is a real regression, reproducible with `pytest tests/fuzz -k <target>`. `make fuzz`
(tests/fuzz/run.py) runs the same targets with fresh inputs for longer.

Besides the targets, this pins down that the harness itself still reaches what it claims:
the seed world produced every kind of real packet, and a real plaintext sealed again by
the structured fuzzer is accepted by its receiver (so a changed receive path that silently
sent every fuzz input to `bad_mac` would fail here, not pass vacuously).
"""

from __future__ import annotations

from collections import Counter

import pytest

from overlay_core.proto import wire
from tests.fuzz.harness import Target, run_target
from tests.fuzz.seeds import fuzz_world
from tests.fuzz.targets_codec import registry as codec_registry
from tests.fuzz.targets_node import Sealed, deliver_sealed, fresh
from tests.fuzz.targets_node import registry as node_registry

TARGETS = codec_registry.targets + node_registry.targets
EXAMPLES = {"node.sequence": 60, "node.batch": 60, "node.sealed": 300, "node.datagram": 300}
DEFAULT_EXAMPLES = 200


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_fuzz_target_short_run(target: Target) -> None:
    result = run_target(target, EXAMPLES.get(target.name, DEFAULT_EXAMPLES), derandomize=True)
    finding = result.finding
    assert finding is None, (
        f"{finding.error}\ninput: {finding.input}\n{finding.traceback}" if finding else ""
    )


def test_the_seed_world_produces_every_kind_of_packet() -> None:
    kinds = {s.kind for s in fuzz_world().seeds}
    wanted = {
        "HELLO",
        "OK-HELLO",
        "ECHO",
        "OK-ECHO",
        "WHOIS",
        "OK-WHOIS",
        "RENDEZVOUS",
        "PUSH_DIRECT_PATHS",
        "FRAME",
        "HEAD-FRAME",
        "FRAGMENT-FRAME",
        "USER_DATA",
        "NETWORK_CONFIG_REQUEST",
        "NETWORK_CONFIG",
        "CREDENTIALS",
        "ERROR-ACCESS_DENIED",
        "ERROR-OBJ_NOT_FOUND",
        "PATH_REPORT",
    }
    assert wanted <= kinds, f"missing: {sorted(wanted - kinds)}"
    assert any(k.startswith("RELAYED-") for k in kinds)


def test_real_plaintexts_sealed_again_are_accepted_by_their_receivers() -> None:
    world = fuzz_world()
    names = {address: name for name, address in world.addresses.items()}
    resealed = 0
    for seed in world.seeds:
        if seed.plaintext is None or seed.cipher is not wire.Cipher.SESSION:
            continue
        if seed.dest is None or seed.dest != seed.receiver:
            continue
        node = fresh(seed.receiver)
        value = Sealed(
            seed.receiver,
            names[seed.sender],
            wire.Cipher.SESSION,
            seed.plaintext,
            0,
            None,
            -1,  # the newest session
            None,
            None,
            False,
            seed.source,
            0.0,
        )
        before = Counter(node.drops)
        deliver_sealed(node, value, world.now)
        dropped = Counter(node.drops) - before
        refused = {"bad_mac", "unknown_session", "replay", "unknown_peer"} & set(dropped)
        assert not refused, f"{seed.kind} to {seed.receiver}: {dict(dropped)}"
        resealed += 1
    assert resealed >= 20
