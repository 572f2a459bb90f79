"""scrypt password hashes: self-describing, salted, verified in constant time, never crashing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from lead_ledger.service.passwords import hash_password, verify_password


def test_a_hash_verifies_its_own_password_only() -> None:
    """The password that made a hash verifies; any other does not."""
    encoded = hash_password("correct horse")
    assert (
        verify_password("correct horse", encoded),
        verify_password("correct horsE", encoded),
        verify_password("", encoded),
    ) == (True, False, False)


def test_the_hash_names_its_scheme_parameters_and_salt() -> None:
    """The stored form is scrypt$n$r$p$salt$hash with a 16-byte salt and a 32-byte hash."""
    scheme, n, r, p, salt, digest = hash_password("pw").split("$")
    assert (
        scheme,
        n,
        r,
        p,
        len(base64.b64decode(salt)),
        len(base64.b64decode(digest)),
    ) == ("scrypt", "16384", "8", "1", 16, 32)


def test_each_hash_has_its_own_salt() -> None:
    """Hashing one password twice gives two different strings that both verify."""
    first, second = hash_password("same"), hash_password("same")
    assert first != second
    assert (verify_password("same", first), verify_password("same", second)) == (True, True)


def test_a_hash_with_other_parameters_still_verifies() -> None:
    """Verification reads n, r, p from the string, so a future cost change keeps old hashes."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"pw", salt=salt, n=1024, r=4, p=2, dklen=24)
    encoded = (
        f"scrypt$1024$4$2${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )
    assert (verify_password("pw", encoded), verify_password("px", encoded)) == (True, False)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plain-text-password",
        "bcrypt$12$8$1$c2FsdA==$aGFzaA==",
        "scrypt$x$8$1$c2FsdA==$aGFzaA==",
        "scrypt$16384$8$1$not base64!$aGFzaA==",
        "scrypt$3$8$1$c2FsdA==$aGFzaA==",  # n must be a power of two
        "scrypt$16384$8$1$c2FsdA==$",  # an empty hash matches nothing
        "scrypt$1048576$8$1$c2FsdA==$aGFzaA==",  # would need 1 GiB: refused, not allocated
        "scrypt$16384$8$1$c2FsdA==",
    ],
)
def test_malformed_hashes_verify_nothing_and_raise_nothing(encoded: str) -> None:
    """A broken or foreign stored hash is a mismatch, never an exception."""
    assert verify_password("pw", encoded) is False
