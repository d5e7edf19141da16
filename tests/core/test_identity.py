"""Identities: addresses come from a proof of work over the key and can't be claimed cheaply."""

from __future__ import annotations

import pytest

from overlay_core.proto.identity import (
    POW_THRESHOLD,
    Identity,
    _pow_digest,
    derive_address,
    format_address,
    is_reserved_address,
    parse_address,
)


def test_generated_identity_meets_the_proof_of_work(alice: Identity) -> None:
    """The address is the digest's tail and the digest's first byte is under the threshold."""
    digest = _pow_digest(alice.public_key)
    assert digest[0] < POW_THRESHOLD
    assert alice.address == int.from_bytes(digest[-5:], "big")
    assert not is_reserved_address(alice.address)


def test_text_forms_round_trip_and_public_form_has_no_secret(alice: Identity) -> None:
    secret_text = alice.to_secret_text()
    public_text = alice.to_public_text()
    assert Identity.from_text(secret_text) == alice
    parsed = Identity.from_text(public_text)
    assert parsed.seed is None and parsed.address == alice.address
    assert alice.seed is not None and alice.seed.hex() not in public_text
    assert alice.seed.hex() not in repr(alice)


def test_a_claimed_address_that_does_not_match_the_key_is_refused(
    alice: Identity, bob: Identity
) -> None:
    forged = f"{bob.address_text}:0:{alice.public_key.hex()}"
    with pytest.raises(ValueError, match="does not match"):
        Identity.from_text(forged)


def test_a_secret_that_does_not_match_the_public_key_is_refused(
    alice: Identity, bob: Identity
) -> None:
    assert bob.seed is not None
    with pytest.raises(ValueError, match="secret does not match"):
        Identity.from_text(f"{alice.to_public_text()}:{bob.seed.hex()}")


def test_keys_that_fail_the_proof_of_work_have_no_address() -> None:
    """Most random keys fail: the check is what makes forging an address expensive."""
    failures = sum(derive_address(bytes([i]) * 32) is None for i in range(40))
    assert failures > 20


@pytest.mark.parametrize("text", ["0000000000", "ff12345678", "xyz", "12345", "123456789012"])
def test_reserved_and_malformed_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_address_text_is_ten_hex_digits() -> None:
    assert format_address(0x1) == "0000000001"
    assert parse_address("00000000AB") == 0xAB


def test_signatures_verify_only_for_the_signer(alice: Identity, bob: Identity) -> None:
    signature = alice.sign(b"network config")
    assert alice.public().verify(b"network config", signature)
    assert not bob.verify(b"network config", signature)
    assert not alice.verify(b"network config!", signature)


def test_roots_file_round_trips_and_rejects_names_and_bad_ports(alice: Identity) -> None:
    from overlay_core.proto.effects import udp
    from overlay_core.proto.roots import RootEntry, parse_roots

    entry = RootEntry(alice.public(), (udp("198.18.0.1", 9993), udp("2001:db8::1", 9993)))
    text = f"# roots\n{entry.to_text()}  # the only one\n"
    assert parse_roots(text) == [entry]
    assert "[2001:db8::1]:9993" in entry.to_text()
    for bad, words in (
        (f"{alice.to_public_text()} root.example.net:9993", "not an IP address"),
        (f"{alice.to_public_text()} 198.18.0.1:0", "port must be"),
        (f"{alice.to_public_text()}", "at least one endpoint"),
        ("nonsense 198.18.0.1:9993", "line 1"),
    ):
        with pytest.raises(ValueError, match=words):
            parse_roots(bad)


def test_keys_that_fail_the_proof_of_work_never_evict_keys_that_pass() -> None:
    """A stranger can send keys that fail as fast as it likes; they are kept apart from
    the verdicts for real nodes, so a flood of them costs real nodes nothing."""
    from overlay_core.proto.identity import _Verdicts

    verdicts = _Verdicts(size=4)
    verdicts.put(b"real", 0x1234)
    for i in range(100):
        verdicts.put(b"junk%d" % i, None)
    assert verdicts.get(b"real") == (True, 0x1234)
    assert verdicts.get(b"junk99") == (True, None) and verdicts.get(b"junk0") == (False, None)
    assert len(verdicts.bad) == 4


def test_derive_address_runs_the_proof_of_work_once_per_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from overlay_core.proto import identity

    calls: list[bytes] = []

    def counted(public_key: bytes) -> int | None:
        calls.append(public_key)
        return None

    monkeypatch.setattr(identity, "_address_of", counted)
    monkeypatch.setattr(identity, "_verdicts", identity._Verdicts())  # no earlier test's
    key = b"\x07" * 32
    assert not identity.address_is_cached(key)
    assert identity.derive_address(key) is None and identity.derive_address(key) is None
    assert identity.address_is_cached(key) and calls == [key]
