"""Erasure primitives: master key, wrapped data keys, sealed personal data, dedupe digests."""

from __future__ import annotations

import base64

import pytest

from lead_ledger.ledger import subject_keys as keys


def test_sealed_data_opens_with_its_key_and_subject_only() -> None:
    """A round trip; another key, another subject or one flipped bit does not open it."""
    key = keys.new_data_key()
    sealed = keys.seal(key, b'{"name":"Asha","phone":"+919876543210"}', "lead-7")
    assert b"Asha" not in sealed
    assert b"9876543210" not in sealed
    assert keys.open_sealed(key, sealed, "lead-7") == b'{"name":"Asha","phone":"+919876543210"}'
    with pytest.raises(keys.SubjectKeyError):
        keys.open_sealed(keys.new_data_key(), sealed, "lead-7")
    with pytest.raises(keys.SubjectKeyError):
        keys.open_sealed(key, sealed, "lead-8")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(keys.SubjectKeyError):
        keys.open_sealed(key, tampered, "lead-7")
    with pytest.raises(keys.SubjectKeyError):
        keys.open_sealed(key, b"\x02" + sealed[1:], "lead-7")


def test_sealing_twice_gives_different_bytes() -> None:
    """A fresh nonce every time: equal data of one subject does not show as equal."""
    key = keys.new_data_key()
    assert keys.seal(key, b"same", "lead-1") != keys.seal(key, b"same", "lead-1")


def test_data_keys_are_wrapped_by_the_master_key() -> None:
    """Wrapped, a data key is not its bytes; only the master key that wrapped it unwraps it."""
    master, data_key = keys.new_data_key(), keys.new_data_key()
    wrapped = keys.wrap(master, data_key)
    assert data_key not in wrapped
    assert keys.unwrap(master, wrapped) == data_key
    with pytest.raises(keys.SubjectKeyError, match="master key does not open"):
        keys.unwrap(keys.new_data_key(), wrapped)


def test_rotation_rewraps_without_changing_the_data_key() -> None:
    """What `keys rotate` does to each stored key: unwrap with the old, wrap with the new."""
    old, new, data_key = keys.new_data_key(), keys.new_data_key(), keys.new_data_key()
    rewrapped = keys.wrap(new, keys.unwrap(old, keys.wrap(old, data_key)))
    assert keys.unwrap(new, rewrapped) == data_key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64!", "LEDGER_MASTER_KEY is not base64"),
        (base64.b64encode(b"short").decode(), "must be 32 bytes of base64, not 5"),
    ],
)
def test_a_bad_master_key_setting_is_named(text: str, message: str) -> None:
    """The error names the setting and what it must be."""
    with pytest.raises(keys.SubjectKeyError, match=message):
        keys.parse_master_key(text)


def test_a_generated_master_key_parses() -> None:
    """`new_master_key_text` gives what LEDGER_MASTER_KEY takes."""
    assert len(keys.parse_master_key(keys.new_master_key_text())) == keys.KEY_BYTES


def test_dedupe_digests_compare_numbers_without_showing_them() -> None:
    """Equal keys, equal digests under one secret; another account's secret gives another."""
    secret, other = keys.new_data_key(), keys.new_data_key()
    digest = keys.dedupe_digest(secret, "+919876543210")
    assert digest == keys.dedupe_digest(secret, "+919876543210")
    assert digest != keys.dedupe_digest(secret, "+919876543211")
    assert digest != keys.dedupe_digest(other, "+919876543210")
    assert "9876543210" not in digest
    assert len(digest) == 43  # 256 bits, base64url without padding
