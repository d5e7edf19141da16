"""Sealing and opening packets, session keys, and the replay window.

AEAD choice: XChaCha20-Poly1305 (IETF). PyNaCl does not expose libsodium's AES-256-GCM,
and between the two ChaCha constructions it offers the cost is the same: 1400-byte
payloads sealed at ~119k/s with XChaCha20 and ~116k/s with ChaCha20 (IETF), opened at
~126k/s and ~128k/s (PyNaCl 1.6.2, `python aead_bench` loop of 50k calls on the dev
machine, both ~1.3 Gbit/s, far above what the Python data path around them reaches). The
24-byte nonce is what decides it: static-key packets (HELLO, OK(HELLO), ERROR) use random
64-bit packet ids under a key that lives as long as both identities, and the nonce also
binds source, destination, cipher and key id, so the two directions of one static key
can never collide.

Sessions: static-static X25519 (keys converted from Ed25519) mixed with an ephemeral
X25519 exchange carried in HELLO / OK(HELLO). Compromising both identities later does not
reveal old sessions (forward secrecy). Each session has one key per direction, a counter
that is the packet id, and a 2048-packet sliding replay window. A session is replaced
after REKEY_AFTER_S or REKEY_AFTER_PACKETS and refused after REJECT_AFTER_S.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nacl import bindings
from nacl.exceptions import CryptoError

from .effects import Endpoint
from .identity import Identity

REKEY_AFTER_S = 120.0
REJECT_AFTER_S = 180.0
REKEY_AFTER_PACKETS = 1 << 28
REPLAY_WINDOW = 2048
_NONCE_PAD = bytes(4)
_TAG_BYTES = bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES
_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1


def nonce_for(header: bytes) -> bytes:
    # packet id (8) + destination (5) + source (5) + flags (1) + key id (1) + padding (4).
    # The flags' hop and fragment bits are cleared so a relayed packet has the same nonce.
    return header[:18] + bytes([header[18] & 0x30]) + header[19:20] + _NONCE_PAD


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
    tx_counter: int = 0
    replay: ReplayWindow = field(default_factory=ReplayWindow)
    # Responder: where our OK(HELLO) went. The initiator's first packet under this session
    # proves it received that OK there, which confirms the path (see path.py).
    reply_endpoint: Endpoint | None = None

    def next_packet_id(self) -> int:
        self.tx_counter += 1
        return self.tx_counter

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
) -> Session:
    material = _kdf(
        static,
        ephemeral_dh,
        initiator_ephemeral,
        responder_ephemeral,
        person=b"ztui-session-v1\0",
    )
    i2r, r2i = material[:32], material[32:]
    key_id = _kdf(material, person=b"ztui-keyid-v1\0\0\0")[0]
    if initiator:
        return Session(key_id, i2r, r2i, now, initiator=True, confirmed=True)
    return Session(key_id, r2i, i2r, now, initiator=False, confirmed=False)


def ephemeral_dh(secret: bytes, their_public: bytes) -> bytes | None:
    try:
        return bytes(bindings.crypto_scalarmult(secret, their_public))
    except (CryptoError, ValueError, TypeError):  # an all-zero result (low-order point)
        return None
