"""Password policy and hashing (argon2id)."""

from __future__ import annotations

import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from corral_sdk.errors import Invalid

__all__ = ["MIN_LENGTH", "check_policy", "hash_password", "needs_rehash", "verify_password"]

MIN_LENGTH = 15
_hasher = PasswordHasher()
# A hash of a random password, verified against when the user does not exist, so that unknown
# users take as long to refuse as wrong passwords.
_DUMMY_HASH = _hasher.hash("corral-no-such-user-Password-1!")


def check_policy(password: str, field: str = "password") -> str:
    """At least 15 characters with a lowercase and an uppercase letter, a digit and a special."""
    missing = []
    if len(password) < MIN_LENGTH:
        missing.append(f"at least {MIN_LENGTH} characters")
    if not any(c.islower() for c in password):
        missing.append("a lowercase letter")
    if not any(c.isupper() for c in password):
        missing.append("an uppercase letter")
    if not any(c.isdigit() for c in password):
        missing.append("a digit")
    if not any(c in string.punctuation or c.isspace() for c in password):
        missing.append("a special character")
    if missing:
        raise Invalid(f"{field} needs {', '.join(missing)}", field=field)
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
