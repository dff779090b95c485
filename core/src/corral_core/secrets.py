"""Encryption at rest for secrets (cloud credentials, private keys, provider tokens)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from corral_core.settings import Settings
from corral_sdk.errors import CorralError, SettingsError

__all__ = ["SecretBox"]

KEY_FILE = "secret.key"


class SecretBox:
    """Encrypts and decrypts with the platform key (Fernet: AES-128-CBC with HMAC-SHA256)."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SettingsError(
                "secrets.key is not a valid key: it must be 32 url-safe base64-encoded bytes "
                "(make one with `corral secrets generate-key`)",
                field="secrets.key",
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The key from settings; in embedded mode, a key file made on first start."""
        if settings.secrets.key:
            return cls(settings.secrets.key)
        if not settings.database_url.startswith("sqlite"):
            raise SettingsError(
                "secrets.key must be set when the database is shared "
                "(every Corral process must encrypt with the same key)",
                field="secrets.key",
            )
        path = settings.data_path / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls(Path(path).read_bytes().strip())

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CorralError(
                "a stored secret could not be decrypted",
                log_message="secret decryption failed: wrong secrets.key or corrupted value",
                reason="secret-undecryptable",
            ) from None
