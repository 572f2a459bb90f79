"""The cryptography of erasure by crypto-shredding (docs/erasure.md).

Every subject (a lead, or a refused row that never became one) has its own data key. Its personal
data is sealed with that key (AES-256-GCM) before it is stored, so the log can stay append-only:
erasing a subject deletes its key, and what the log still holds can no longer be read by anyone.
Data keys are stored wrapped (AES key wrap, RFC 3394) under one master key, which never touches
the database; rotating the master key re-wraps the data keys and leaves every event as it is.
Dedupe keys are stored as keyed hashes (HMAC-SHA256 under a secret of the account's), which let
duplicate checks compare numbers without the log holding them.

This module is pure: bytes in, bytes out. Where keys are stored and when they are used is the
store's business.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from lead_ledger.ledger.errors import LedgerError
from lead_ledger.ledger.random_bytes import random_bytes

KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12  # GCM's standard nonce: random per seal, so never reused under a key
# The first byte of everything sealed: a later format can be told apart from this one.
SEAL_VERSION: Final = 1
MASTER_KEY_FILE: Final = "master.key"


Digest = Callable[[str], str]


class SubjectKeyError(LedgerError, ValueError):
    """A key that does not open what it is asked to open, or is no key at all."""


class WrongMasterKeyError(SubjectKeyError):
    """The master key in use did not wrap a stored data key: the command line names the
    setting or key file it came from (WRONG_MASTER_KEY)."""


# Said of the master key's source (LEDGER_MASTER_KEY, or the key file) when it does not open
# the stored keys.
WRONG_MASTER_KEY: Final = (
    "does not open the keys this database holds: it is not the key they were stored with"
)


def parse_master_key(text: str, *, source: str = "LEDGER_MASTER_KEY") -> bytes:
    """A master key from its base64 text (32 bytes); a SubjectKeyError naming `source`."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise SubjectKeyError(f"{source} is not base64") from None
    if len(key) != KEY_BYTES:
        raise SubjectKeyError(f"{source} must be {KEY_BYTES} bytes of base64, not {len(key)}")
    return key


def new_master_key_text() -> str:
    """A fresh master key as the base64 text LEDGER_MASTER_KEY takes."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def load_or_create_master_key(data_dir: Path) -> bytes:
    """The master key of an embedded installation, from `data_dir/master.key`; created on first
    use, readable by its owner alone (0600). Two processes starting at once agree: the key is
    written whole to a private temporary file and then linked into place, which fails when the
    name exists, so a reader never sees a half-written key and the loser reads the winner's."""
    path = data_dir / MASTER_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        descriptor, temporary = tempfile.mkstemp(dir=data_dir, prefix=".master.key.")
        try:
            with os.fdopen(descriptor, "w") as created:
                created.write(new_master_key_text() + "\n")
                created.flush()
                os.fsync(created.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            Path(temporary).unlink()
    return parse_master_key(path.read_text(), source=str(path))


def master_key_from(text: str | None, data_dir: Path) -> bytes:
    """The master key: LEDGER_MASTER_KEY's when set, else the data dir's key file (made on
    first use)."""
    if text:
        return parse_master_key(text)
    return load_or_create_master_key(data_dir)


def new_data_key() -> bytes:
    return random_bytes(KEY_BYTES)


def wrap(master_key: bytes, data_key: bytes) -> bytes:
    """A data key as it is stored: wrapped under the master key."""
    return aes_key_wrap(master_key, data_key)


def unwrap(master_key: bytes, wrapped: bytes) -> bytes:
    """The data key; SubjectKeyError when this master key did not wrap it."""
    try:
        return aes_key_unwrap(master_key, wrapped)
    except InvalidUnwrap:
        raise WrongMasterKeyError("the master key does not open this data key") from None


def seal(data_key: bytes, plaintext: bytes, subject: str) -> bytes:
    """Encrypt a subject's personal data. The subject id is authenticated with it, so sealed
    data moved to another subject does not open there."""
    nonce = random_bytes(NONCE_BYTES)
    sealed = AESGCM(data_key).encrypt(nonce, plaintext, subject.encode())
    return bytes([SEAL_VERSION]) + nonce + sealed


def open_sealed(data_key: bytes, sealed: bytes, subject: str) -> bytes:
    """The plaintext of `seal`; SubjectKeyError when the key, the subject or the bytes differ."""
    if len(sealed) < 1 + NONCE_BYTES or sealed[0] != SEAL_VERSION:
        raise SubjectKeyError("not data sealed by this version")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(data_key).decrypt(nonce, body, subject.encode())
    except InvalidTag:
        raise SubjectKeyError("this key does not open this subject's data") from None


def dedupe_digest(secret: bytes, dedupe_key: str) -> str:
    """A dedupe key as the log may hold it: equal keys give equal digests under one account's
    secret, and without the secret the digest says nothing about the number."""
    return digester(secret)(dedupe_key)


def digester(secret: bytes) -> Digest:
    """`dedupe_digest` under one secret, for many values: the keyed state is set up once and
    copied per value (a third of the cost of a fresh HMAC), and repeated values are not
    hashed again."""
    keyed = hmac.new(secret, digestmod=hashlib.sha256)
    done: dict[str, str] = {}

    def digest(value: str) -> str:
        found = done.get(value)
        if found is None:
            h = keyed.copy()
            h.update(value.encode())
            found = done[value] = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
        return found

    return digest
