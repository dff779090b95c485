"""The built-in ``password`` auth method: local accounts with argon2id hashes.

It is registered by the built-in plugin through ``corral_register_auth_methods``, like any
third-party method. Stateless: the kernel hands it the account's stored hash per sign-in.
"""

from __future__ import annotations

import asyncio

from corral_core.identity.authn import LocalAccount
from corral_core.identity.passwords import verify_password
from corral_sdk.errors import NotAuthenticated
from corral_sdk.providers.auth import AuthMethodBase, Identity

__all__ = ["PasswordMethod"]


class PasswordMethod(AuthMethodBase):
    def __init__(self, config: LocalAccount | None = None) -> None:
        self._account = config

    async def validate_config(self) -> None:
        return None

    async def authenticate_password(self, username: str, password: str) -> Identity:
        account = self._account
        stored = (
            account.password_hash if account is not None and account.username == username else None
        )
        # argon2 is deliberately slow: keep it off the event loop.
        if not await asyncio.to_thread(verify_password, stored, password):
            raise NotAuthenticated("wrong username or password", reason="login-failed")
        return Identity(subject=username, username=username)
