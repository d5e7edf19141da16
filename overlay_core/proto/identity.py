"""Node identities: an Ed25519 key pair and the 40-bit address cut from it.

The address is the last five bytes of a memory-hard hash (argon2id) of the public key, and a
key pair only counts if that hash also meets a proof-of-work condition (first byte below
`POW_THRESHOLD`). Claiming someone else's address therefore means searching ~2^40 * 8
argon2id evaluations of 4 MiB each, while checking a claim costs one (~3 ms here), and
checks are cached by public key.

Text forms (one line each, hex):
    public:  <address>:0:<ed25519 public key>
    secret:  <address>:0:<ed25519 public key>:<ed25519 seed>
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from nacl import bindings
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.pwhash import argon2id
from nacl.signing import SigningKey, VerifyKey

ADDRESS_BYTES = 5
ADDRESS_MASK = (1 << 40) - 1
PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
# One argon2id pass over 4 MiB: ~3 ms per evaluation on the development machine
# (measured with nacl.pwhash.argon2id.kdf in a loop), so generation needs ~8 tries, ~25 ms.
POW_OPSLIMIT = 2
POW_MEMLIMIT = 4 * 1024 * 1024
POW_THRESHOLD = 32  # first digest byte must be below this: 1 key pair in 8 qualifies
_POW_SALT = b"ztui-address-v1!"  # argon2id wants exactly 16 bytes of salt
VERDICTS_KEPT = 4096  # proof-of-work verdicts cached, of each kind (pass, fail)


def format_address(address: int) -> str:
    return f"{address:010x}"


def parse_address(text: str) -> int:
    """Parse a 10-hex-digit address; raise ValueError with a reason a human can act on."""
    text = text.strip().lower()
    if len(text) != 10 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"an address is 10 hex digits, got {text!r}")
    address = int(text, 16)
    if is_reserved_address(address):
        raise ValueError(f"address {text} is reserved")
    return address


def is_reserved_address(address: int) -> bool:
    # 0 means "nobody"; a first byte of 0xff marks a fragment on the wire (see wire.py).
    return address == 0 or (address >> 32) == 0xFF


def _pow_digest(public_key: bytes) -> bytes:
    return bytes(
        argon2id.kdf(32, public_key, _POW_SALT, opslimit=POW_OPSLIMIT, memlimit=POW_MEMLIMIT)
    )


class _Verdicts:
    """Proof-of-work verdicts by public key, in two bounded LRU maps: keys that pass and
    keys that fail. Anyone can send us keys that fail, as fast as they like; kept apart,
    those only ever push out other failing keys, never a real node's."""

    def __init__(self, size: int = VERDICTS_KEPT) -> None:
        self._size = size
        self.good: OrderedDict[bytes, int] = OrderedDict()
        self.bad: OrderedDict[bytes, None] = OrderedDict()

    def get(self, public_key: bytes) -> tuple[bool, int | None]:
        """(known, address): address None for a key known to fail."""
        if public_key in self.good:
            self.good.move_to_end(public_key)
            return True, self.good[public_key]
        return public_key in self.bad, None

    def put(self, public_key: bytes, address: int | None) -> None:
        table: OrderedDict[bytes, int] | OrderedDict[bytes, None]
        if address is None:
            self.bad[public_key] = None
            table = self.bad
        else:
            self.good[public_key] = address
            table = self.good
        while len(table) > self._size:
            table.popitem(last=False)


_verdicts = _Verdicts()


def derive_address(public_key: bytes) -> int | None:
    """The address for `public_key`, or None if the key fails the proof of work. Cached
    (see _Verdicts): one argon2id per key, however often it is asked."""
    known, address = _verdicts.get(public_key)
    if not known:
        address = _address_of(public_key)
        _verdicts.put(public_key, address)
    return address


def address_is_cached(public_key: bytes) -> bool:
    """Would derive_address answer without an argon2id? (A node budgets the ones that
    don't, see admission.py.)"""
    return _verdicts.get(public_key)[0]


def _address_of(public_key: bytes) -> int | None:
    digest = _pow_digest(public_key)
    if digest[0] >= POW_THRESHOLD:
        return None
    address = int.from_bytes(digest[-ADDRESS_BYTES:], "big")
    if is_reserved_address(address):
        return None
    return address


@dataclass(frozen=True, slots=True)
class Identity:
    address: int
    public_key: bytes  # Ed25519
    seed: bytes | None = None  # Ed25519 seed; None for other nodes' identities

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes] = os.urandom) -> Identity:
        while True:
            seed = random_bytes(SEED_BYTES)
            public_key, _ = bindings.crypto_sign_seed_keypair(seed)
            address = derive_address(public_key)
            if address is not None:
                return cls(address, public_key, seed)

    @classmethod
    def from_public_key(cls, public_key: bytes) -> Identity:
        if len(public_key) != PUBLIC_KEY_BYTES:
            raise ValueError("public key must be 32 bytes")
        try:  # cheap, and what every later key agreement would trip on: check it first
            _x25519_public(public_key)
        except CryptoError:
            raise ValueError("public key is not a valid Ed25519 point") from None
        address = derive_address(public_key)
        if address is None:
            raise ValueError("public key fails the address proof of work")
        return cls(address, public_key)

    @classmethod
    def from_text(cls, text: str) -> Identity:
        """Parse a public or secret text form, checking that the address matches the key."""
        parts = text.strip().split(":")
        if len(parts) not in (3, 4) or parts[1] != "0":
            raise ValueError("identity must look like ADDRESS:0:PUBLICKEY[:SECRET]")
        claimed = parse_address(parts[0])
        try:
            public_key = bytes.fromhex(parts[2])
            seed = bytes.fromhex(parts[3]) if len(parts) == 4 else None
        except ValueError:
            raise ValueError("identity keys must be hex") from None
        identity = cls.from_public_key(public_key)
        if identity.address != claimed:
            raise ValueError("identity address does not match its public key")
        if seed is not None:
            if len(seed) != SEED_BYTES:
                raise ValueError("identity secret must be 32 bytes")
            if bindings.crypto_sign_seed_keypair(seed)[0] != public_key:
                raise ValueError("identity secret does not match its public key")
        return cls(identity.address, public_key, seed)

    @property
    def address_text(self) -> str:
        return format_address(self.address)

    def public(self) -> Identity:
        return Identity(self.address, self.public_key)

    def to_public_text(self) -> str:
        return f"{self.address_text}:0:{self.public_key.hex()}"

    def to_secret_text(self) -> str:
        if self.seed is None:
            raise ValueError("this identity has no secret")
        return f"{self.to_public_text()}:{self.seed.hex()}"

    # -- key agreement: X25519 keys derived from the Ed25519 pair

    def x25519_public(self) -> bytes:
        return _x25519_public(self.public_key)

    def x25519_secret(self) -> bytes:
        if self.seed is None:
            raise ValueError("this identity has no secret")
        _, secret = bindings.crypto_sign_seed_keypair(self.seed)
        return bytes(bindings.crypto_sign_ed25519_sk_to_curve25519(secret))

    def sign(self, message: bytes) -> bytes:
        if self.seed is None:
            raise ValueError("this identity has no secret")
        return bytes(SigningKey(self.seed).sign(message).signature)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            VerifyKey(self.public_key).verify(message, signature)
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True

    def __repr__(self) -> str:  # never print the seed
        return f"Identity({self.address_text})"


@lru_cache(maxsize=4096)
def _x25519_public(ed25519_public: bytes) -> bytes:
    return bytes(bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_public))
