"""Sealing and opening packets, session keys, cipher suites, and the replay window.

Static-key packets (HELLO, OK(HELLO), ERROR) use XChaCha20-Poly1305 (IETF, PyNaCl): they
carry random 64-bit packet ids under a key that lives as long as both identities, so they
need the 24-byte nonce, which also binds source, destination, cipher and key id (the two
directions of one static key can never collide). Session packets use the suite the
handshake negotiated (`Suite`): XChaCha20 as before (what old peers speak), or AES-256-GCM
or ChaCha20-Poly1305 from `cryptography`, whose 12-byte nonce is the session counter.
Per 1400-byte packet with 20 bytes of associated data, best of 5 timeit runs of 20k calls
on the dev machine (AMD EPYC with AES-NI, 2 shared cores, Python 3.11, PyNaCl 1.6.2,
cryptography 50.0.2); the last column is the whole Session.seal / Session.open call:

    suite                       seal      open      Session.seal / .open
    XCHACHA20 (PyNaCl)          4.93 us   4.92 us   5.61 us / 5.65 us
    AES256GCM (cryptography)    0.83 us   0.82 us   1.01 us / 1.05 us
    CHACHA20 (cryptography)     1.43 us   1.50 us   1.64 us / 1.75 us

Taking packet ids costs 0.11 us for one (take_ids(1)) and 1.0 us for a batch of 64.

Sessions: static-static X25519 (keys converted from Ed25519) mixed with an ephemeral
X25519 exchange carried in HELLO / OK(HELLO). Compromising both identities later does not
reveal old sessions (forward secrecy). Each session has one key per direction, a counter
that is the packet id, and a 2048-packet sliding replay window. A session is replaced
after REKEY_AFTER_S or REKEY_AFTER_PACKETS and refused after REJECT_AFTER_S.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from nacl import bindings
from nacl.exceptions import CryptoError

from .effects import Endpoint
from .identity import Identity
from .wire import (
    CIPHER_MASK,
    CIPHER_SHIFT,
    FEATURE_AESGCM,
    FEATURE_CHACHA,
    FEATURE_PARTIAL_CSUM,
    FEATURE_PUNCH,
    FEATURE_SUITES,
    Cipher,
)

REKEY_AFTER_S = 120.0
REJECT_AFTER_S = 180.0
REKEY_AFTER_PACKETS = 1 << 28
REPLAY_WINDOW = 2048
_NONCE_PAD = bytes(4)
_SHORT_NONCE_PAD = bytes(2)
_TAG_BYTES = bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES
_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1


def nonce_for(header: bytes) -> bytes:
    # packet id (8) + destination (5) + source (5) + flags (1) + key id (1) + padding (4).
    # Of the flags only the cipher bits stay: the hop count (and the fragment and cookie
    # flags) are cleared, so a relayed packet has the same nonce.
    return header[:18] + bytes([header[18] & CIPHER_MASK]) + header[19:20] + _NONCE_PAD


def seal(key: bytes, header: bytes, ad: bytes, plaintext: bytes) -> bytes:
    return bytes(
        bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce_for(header), key)
    )


def open_(key: bytes, header: bytes, ad: bytes, ciphertext: bytes) -> bytes | None:
    """Decrypt and authenticate; None when the tag does not verify, or when the ciphertext
    is too short to hold one (libsodium raises ValueError for that, not CryptoError)."""
    if len(ciphertext) < _TAG_BYTES:
        return None
    try:
        return bytes(
            bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                ciphertext, ad, nonce_for(header), key
            )
        )
    except CryptoError:
        return None


# --------------------------------------------------------------------------- cipher suites


class Suite(IntEnum):
    """The AEAD of session packets, negotiated in HELLO / OK(HELLO) (wire.FEATURE_*)."""

    XCHACHA20 = 0  # PyNaCl XChaCha20-Poly1305, 24-byte nonce: the default, old peers' only
    AES256GCM = 1  # cryptography AESGCM: fastest where the CPU has AES instructions
    CHACHA20 = 2  # cryptography ChaCha20Poly1305: fast everywhere, constant time in software


_SUITE_FEATURE = {Suite.AES256GCM: FEATURE_AESGCM, Suite.CHACHA20: FEATURE_CHACHA}
_FEATURE_SUITE = {bit: suite for suite, bit in _SUITE_FEATURE.items()}


def cpu_has_aes(lines: Iterable[str]) -> bool | None:
    """Whether the first `flags` (x86) or `Features` (ARM) line of /proc/cpuinfo text names
    `aes`; None when there is no such line (other architectures, a stripped /proc)."""
    for line in lines:
        key, colon, value = line.partition(":")
        if colon and key.strip() in ("flags", "Features"):
            return "aes" in value.split()
    return None


def preferred_suites(cpuinfo: str = "/proc/cpuinfo") -> tuple[Suite, ...]:
    """This machine's suites, best first, XCHACHA20 (always supported) last.

    With the `aes` flag AES-256-GCM is the fastest (module docstring). Without it OpenSSL
    falls back to software AES, several times slower (and table-based, so not constant
    time, on some platforms), so AES256GCM is not offered at all: a peer that prefers it
    then picks CHACHA20. When the CPU can't be read (no /proc, other architectures) both
    are offered, CHACHA20 first: its worst case is bounded and constant time everywhere,
    and most such machines (macOS on Apple silicon, recent ARM and x86) do have AES, so a
    responder that knows it has AES instructions may still pick AES256GCM.
    Never raises: the node must start whatever /proc holds."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as lines:
            has_aes = cpu_has_aes(lines)
    except (OSError, ValueError):
        has_aes = None
    if has_aes is None:
        return (Suite.CHACHA20, Suite.AES256GCM, Suite.XCHACHA20)
    if has_aes:
        return (Suite.AES256GCM, Suite.CHACHA20, Suite.XCHACHA20)
    return (Suite.CHACHA20, Suite.XCHACHA20)


# The negotiation (inbound.py _on_hello / _on_ok_hello): the initiator's HELLO sets the feature
# bit of every suite it supports; the responder takes the first suite of its own order
# that both support (XCHACHA20, which every node speaks, when none) and names it in its
# OK(HELLO) with exactly one suite bit, none meaning XCHACHA20. Both messages travel under
# the static AEAD (an identity-to-identity key), so no third party can strip bits from the
# HELLO or change the choice in the OK: there is no downgrade short of a stolen identity.


def suite_bits(suites: Iterable[Suite]) -> int:
    """The HELLO feature bits offering `suites` (XCHACHA20 has none: it is implied)."""
    bits = 0
    for suite in suites:
        bits |= _SUITE_FEATURE.get(suite, 0)
    return bits


def hello_features(suite_offer: int, *, partial_csum: bool, punch: bool = True) -> int:
    """The features of a HELLO: the suite bits it offers (suite_bits), and the others."""
    return (
        suite_offer
        | (FEATURE_PUNCH if punch else 0)
        | (FEATURE_PARTIAL_CSUM if partial_csum else 0)
    )


def choose_suite(ours: Iterable[Suite], their_features: int) -> Suite:
    """Responder: the first of our suites the initiator offered; XCHACHA20 when none."""
    for suite in ours:
        if suite is Suite.XCHACHA20 or _SUITE_FEATURE[suite] & their_features:
            return suite
    return Suite.XCHACHA20


def answer_suite(
    ours: Iterable[Suite], their_features: int, *, partial_csum: bool, punch: bool = True
) -> tuple[Suite, int]:
    """Responder: the suite to derive the session with, and the features of the OK(HELLO)
    that names it (exactly that suite's bit, none for XCHACHA20)."""
    suite = choose_suite(ours, their_features)
    bit = _SUITE_FEATURE.get(suite, 0)
    return suite, hello_features(bit, partial_csum=partial_csum, punch=punch)


def suite_in_ok(ok_features: int, offered: int) -> Suite | None:
    """Initiator: the suite an OK(HELLO) names, or None when it names more than one or one
    we did not offer (`offered`: our HELLO's suite bits). No bit: XCHACHA20."""
    bits = ok_features & FEATURE_SUITES
    if not bits:
        return Suite.XCHACHA20
    suite = _FEATURE_SUITE.get(bits)  # None for two bits at once
    return suite if suite is not None and bits & offered else None


# --------------------------------------------------------------------------- keys


def _kdf(*parts: bytes, person: bytes) -> bytes:
    data = b"".join(len(p).to_bytes(2, "big") + p for p in parts)
    return bytes(bindings.crypto_generichash_blake2b_salt_personal(data, 64, b"", b"", person))


def static_key(me: Identity, them: Identity) -> bytes:
    """Key both sides derive from their long-term identities (same in both directions).

    Raises ValueError when `them` holds 32 bytes that are no Ed25519 point (possible for
    a stranger's key, whose proof of work is checked only after this, as it costs more)."""
    try:
        shared = bindings.crypto_scalarmult(me.x25519_secret(), them.x25519_public())
    except CryptoError:  # PyNaCl's RuntimeError for a bad point is a CryptoError too
        raise ValueError("not a usable public key") from None
    low, high = sorted((me.public_key, them.public_key))
    return _kdf(shared, low, high, person=b"ztui-static-v1\0\0")[:32]


@dataclass(frozen=True, slots=True)
class EphemeralKey:
    secret: bytes
    public: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> EphemeralKey:
        return cls(secret, bytes(bindings.crypto_scalarmult_base(secret)))


@dataclass(slots=True)
class ReplayWindow:
    """Accepts each counter once, within REPLAY_WINDOW of the highest seen (RFC 6479 idea).

    The bitmap never holds more than REPLAY_WINDOW bits, whatever the counter does: a jump
    of REPLAY_WINDOW or more starts a fresh window (nothing in the old one can be accepted
    any more anyway) instead of shifting by the jump, which for a counter of 2^33 would
    allocate a 1 GiB integer. Only authenticated counters are ever accepted, but a peer with
    a session (roots accept anyone) is not a trusted peer.
    """

    highest: int = -1
    bitmap: int = 0  # bit i set: counter (highest - i) was seen

    def check(self, counter: int) -> bool:
        """Would `counter` be accepted? Does not record it (check before authenticating)."""
        if counter > self.highest:
            return True
        offset = self.highest - counter
        return offset < REPLAY_WINDOW and not (self.bitmap >> offset) & 1

    def accept(self, counter: int) -> None:
        if counter > self.highest:
            shift = counter - self.highest
            if shift >= REPLAY_WINDOW:
                self.bitmap = 1
            else:
                self.bitmap = ((self.bitmap << shift) | 1) & _WINDOW_MASK
            self.highest = counter
        else:
            self.bitmap |= 1 << (self.highest - counter)

    def accept_run(self, first: int, last: int) -> None:
        """`accept` for each of first..last, all above `highest` (checked as such): one
        shift instead of one per counter, for a receiver taking a batch in order."""
        if first <= self.highest or last < first:
            raise ValueError(f"not a run above {self.highest}: {first}..{last}")
        shift = last - self.highest
        run = (1 << (last - first + 1)) - 1  # bit i: counter last - i
        if shift >= REPLAY_WINDOW:
            self.bitmap = run & _WINDOW_MASK
        else:
            self.bitmap = ((self.bitmap << shift) | run) & _WINDOW_MASK
        self.highest = last


_Aead = AESGCM | ChaCha20Poly1305


def _aead(suite: Suite, key: bytes) -> _Aead | None:
    if suite is Suite.AES256GCM:
        return AESGCM(key)
    if suite is Suite.CHACHA20:
        return ChaCha20Poly1305(key)
    return None  # XCHACHA20: PyNaCl's functions take the key each call


@dataclass(slots=True)
class Session:
    key_id: int
    tx_key: bytes
    rx_key: bytes
    created: float
    initiator: bool
    # A responder doesn't send on a new session until the initiator has used it, so the
    # initiator never receives packets under a key it hasn't derived yet.
    confirmed: bool
    suite: Suite = Suite.XCHACHA20
    # The highest packet id handed out (take_ids). Exact in one thread; while threads
    # take ids at once it may lag the true highest by their batches, which only delays a
    # rekey (REKEY_AFTER_PACKETS) by as many packets.
    tx_counter: int = 0
    replay: ReplayWindow = field(default_factory=ReplayWindow)
    # Responder: where our OK(HELLO) went. The initiator's first packet under this session
    # proves it received that OK there, which confirms the path (see path.py).
    reply_endpoint: Endpoint | None = None
    # Built once per session from suite and keys (None for XCHACHA20), never per packet.
    tx_aead: _Aead | None = field(init=False, repr=False, compare=False)
    rx_aead: _Aead | None = field(init=False, repr=False, compare=False)
    # The 12-byte nonce of AES256GCM and CHACHA20 is the packet id (8), the cipher bits
    # and key id bytes of the header (1 + 1) and two zero bytes: unique per key, as keys
    # are per direction and take_ids never hands out a packet id twice. All but the id
    # are the same for every packet of the session: made once (~0.14 us a packet).
    # datapath.send_many and _more_frames build the nonce from it inline too (a Python
    # call less per segment): a change of the layout changes them with seal and open.
    nonce_tail: bytes = field(init=False, repr=False, compare=False)
    # The packet-id source. itertools.count, not a lock: proto may not import threading
    # (sans-IO, tests/test_architecture.py), and none is needed here: `next` on a count,
    # and on an islice that skips n-1 of its values, is a single C call that runs no
    # bytecode, allocates nothing the GC tracks and never releases the GIL, so no other
    # thread can take an id in the middle of it; ids are therefore unique and each batch
    # consecutive. (A free-threaded build of Python would need a lock here instead.)
    ids: itertools.count[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.tx_aead = _aead(self.suite, self.tx_key)
        self.rx_aead = _aead(self.suite, self.rx_key)
        self.nonce_tail = bytes((Cipher.SESSION << CIPHER_SHIFT, self.key_id)) + _SHORT_NONCE_PAD
        self.ids = itertools.count(self.tx_counter + 1)

    def __deepcopy__(self, memo: dict[int, object]) -> Session:
        # cryptography's AEAD objects can't be copied: a copy builds its own (the fuzzers
        # copy whole nodes). Its ids go on from tx_counter, which is exact unless threads
        # are taking ids from this session while it is copied.
        return replace(self, replay=copy.deepcopy(self.replay, memo))

    def take_ids(self, n: int) -> int:
        """Reserve n consecutive fresh packet ids (a batch); returns the first. Atomic
        under threads (see `ids`), so a nonce never repeats under the session's keys."""
        if n < 1:
            raise ValueError("take at least one packet id")
        last = next(self.ids) if n == 1 else next(itertools.islice(self.ids, n - 1, None))
        self.tx_counter = last
        return last - n + 1

    def next_packet_id(self) -> int:
        return self.take_ids(1)

    def seal(self, header: bytes, ad: bytes, plaintext: bytes) -> bytes:
        """Seal a packet of this session: `header` is its SESSION header with our key id
        and a packet id from take_ids."""
        aead = self.tx_aead
        if aead is None:
            return seal(self.tx_key, header, ad, plaintext)
        return aead.encrypt(header[:8] + self.nonce_tail, plaintext, ad)

    def open(self, header: bytes, ad: bytes, ciphertext: bytes) -> bytes | None:
        """Decrypt and authenticate a packet whose SESSION header named our key id; None
        for a bad tag or input too short to hold one."""
        aead = self.rx_aead
        if aead is None:
            return open_(self.rx_key, header, ad, ciphertext)
        if len(ciphertext) < _TAG_BYTES:
            return None
        try:
            return aead.decrypt(header[:8] + self.nonce_tail, ciphertext, ad)
        except InvalidTag:
            return None

    def expired(self, now: float) -> bool:
        return now - self.created > REJECT_AFTER_S or self.tx_counter >= (1 << 62)

    def wants_rekey(self, now: float, rekey_after_packets: int) -> bool:
        return now - self.created > REKEY_AFTER_S or self.tx_counter > rekey_after_packets


def derive_session(
    static: bytes,
    ephemeral_dh: bytes,
    initiator_ephemeral: bytes,
    responder_ephemeral: bytes,
    *,
    initiator: bool,
    now: float,
    suite: Suite,
) -> Session:
    parts = [static, ephemeral_dh, initiator_ephemeral, responder_ephemeral]
    if suite is not Suite.XCHACHA20:
        # The suite is a fifth part of the KDF input. XCHACHA20 keeps the four-part input
        # (its keys are byte for byte what old peers derive); the parts are length-prefixed,
        # so no two suites hash the same input and their keys never coincide.
        parts.append(bytes([suite]))
    material = _kdf(*parts, person=b"ztui-session-v1\0")
    i2r, r2i = material[:32], material[32:]
    key_id = _kdf(material, person=b"ztui-keyid-v1\0\0\0")[0]
    if initiator:
        return Session(key_id, i2r, r2i, now, initiator=True, confirmed=True, suite=suite)
    return Session(key_id, r2i, i2r, now, initiator=False, confirmed=False, suite=suite)


def ephemeral_dh(secret: bytes, their_public: bytes) -> bytes | None:
    try:
        return bytes(bindings.crypto_scalarmult(secret, their_public))
    except (CryptoError, ValueError, TypeError):  # an all-zero result (low-order point)
        return None
