"""Credential strings: ``<kind>_<public id>_<secret>``, stored as a hash of the secret only."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = [
    "KINDS",
    "IssuedSecret",
    "ParsedCredential",
    "hash_secret",
    "issue",
    "parse",
    "secret_matches",
]

KINDS = {"apikey": "cak", "token": "cat", "session": "cas", "run": "car"}
"""Credential kinds and their prefixes; ``run`` is a workflow run's token, lent to its steps."""
_PREFIX_TO_KIND = {prefix: kind for kind, prefix in KINDS.items()}
PUBLIC_ID_BYTES = 12
SECRET_BYTES = 32


@dataclass(frozen=True)
class IssuedSecret:
    public_id: str
    secret_hash: str
    value: str
    """The full credential, shown to its owner once."""


@dataclass(frozen=True)
class ParsedCredential:
    kind: str
    public_id: str
    secret: str


def hash_secret(secret: str) -> str:
    # The secret has 256 bits of entropy, so a fast hash suffices (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(kind: str) -> IssuedSecret:
    public_id = secrets.token_hex(PUBLIC_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return IssuedSecret(public_id, hash_secret(secret), f"{KINDS[kind]}_{public_id}_{secret}")


def parse(value: str) -> ParsedCredential | None:
    """``None`` for anything that is not a well-formed credential."""
    prefix, sep, rest = value.partition("_")
    public_id, sep2, secret = rest.partition("_")
    kind = _PREFIX_TO_KIND.get(prefix)
    if not (sep and sep2 and kind and secret) or len(public_id) != PUBLIC_ID_BYTES * 2:
        return None
    return ParsedCredential(kind, public_id, secret)


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
