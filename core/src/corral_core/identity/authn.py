"""Authentication: sign-in, credentials (API keys, tokens, sessions), SSH keys and key pairs."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from corral_core.db import Database, utcnow
from corral_core.events.bus import PubSub
from corral_core.identity import credentials
from corral_core.identity.models import Credential, GroupMember, Org, SshKey, User, UserKeyPair
from corral_core.identity.models import Group as GroupRow
from corral_core.identity.names import NameRule
from corral_core.identity.roles import Principal, Role
from corral_core.plugins import Kernel
from corral_core.secrets import SecretBox
from corral_core.settings import AuthSettings
from corral_sdk.errors import Conflict, CorralError, Invalid, NotAuthenticated, NotFound

__all__ = [
    "API_KEY_EXPIRY_DAYS",
    "LOCKOUT_AFTER",
    "Authenticator",
    "IssuedCredential",
    "LocalAccount",
    "TooManyAttempts",
]

log = logging.getLogger("corral.auth")

API_KEY_EXPIRY_DAYS = (None, 7, 30, 60, 90)
TOKEN_HOURS = range(1, 25)
LOCKOUT_AFTER = 5
LOCKOUT_BASE_SECONDS = 30
LOCKOUT_MAX_SECONDS = 15 * 60
LAST_USED_RESOLUTION = timedelta(seconds=60)
PRINCIPAL_CACHE_SECONDS = 30.0
PRINCIPAL_CACHE_SIZE = 10_000
IDENTITY_CHANNEL = "identity"
KEY_NAME = NameRule(
    "key name",
    re.compile(r"[^\x00-\x1f]{1,255}"),
    255,
    "1 to 255 printable characters",
)


class TooManyAttempts(CorralError):
    status = 429
    default_reason = "too-many-attempts"
    title = "Too many attempts"


class LocalAccount(msgspec.Struct, frozen=True, kw_only=True):
    """What the built-in password method is given per sign-in: the account's stored hash."""

    username: str
    password_hash: str | None


class IssuedCredential(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    secret: str
    """The credential itself: shown once, never stored."""


def _fingerprint(key_blob: bytes) -> str:
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_public_key(text: str, field: str = "key") -> tuple[str, str]:
    """Validate an OpenSSH public key; returns ``(normalised key, SHA256 fingerprint)``."""
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    parts = text.strip().split()
    if len(parts) < 2:
        raise Invalid(
            f"{field}: not an OpenSSH public key (expected 'type base64 [comment]')", field=field
        )
    try:
        load_ssh_public_key(" ".join(parts[:2]).encode())
        blob = base64.b64decode(parts[1], validate=True)
    except (ValueError, TypeError) as exc:
        raise Invalid(f"{field}: not a valid OpenSSH public key ({exc})", field=field) from None
    return " ".join(parts), _fingerprint(blob)


class Authenticator:
    """Turns credentials into principals, and signs users in."""

    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        secrets: SecretBox,
        policy: AuthSettings | None = None,
        pubsub: PubSub | None = None,
    ) -> None:
        self._db = db
        self._kernel = kernel
        self._secrets = secrets
        self._policy = policy or AuthSettings()
        self._pubsub = pubsub
        # credential hash -> (principal, credential expiry, monotonic time cached)
        self._cache: dict[str, tuple[Principal, datetime | None, float]] = {}

    # --- the principal cache --------------------------------------------------------------------
    # Every request authenticates; a short-lived cache of principals spares the database. Any
    # change to credentials, users, groups or roles clears it in this process at once and in every
    # other process through the pub/sub channel; the expiry bounds staleness should a message be
    # lost.

    def forget_principals(self) -> None:
        self._cache.clear()

    async def identity_changed(self) -> None:
        self.forget_principals()
        if self._pubsub is not None:
            try:
                await self._pubsub.publish(IDENTITY_CHANNEL, "changed")
            except Exception:
                log.warning("could not announce an identity change", exc_info=True)

    async def follow_identity_changes(self) -> None:
        """Forget cached principals whenever any process announces a change (runs forever)."""
        if self._pubsub is None:
            return
        async for _ in self._pubsub.subscribe(IDENTITY_CHANNEL):
            self.forget_principals()

    # --- principals -----------------------------------------------------------------------------

    async def principal(self, user: User, credential: Credential | None = None) -> Principal:
        async with self._db.session() as session:
            org = await session.get(Org, user.org_id)
            assert org is not None
            return await self._principal(session, user, org, credential)

    @staticmethod
    async def _principal(
        session: AsyncSession, user: User, org: Org, credential: Credential | None
    ) -> Principal:
        assert user.id is not None
        groups = list(
            await session.exec(
                select(GroupRow.id, GroupRow.roles)
                .join(GroupMember, col(GroupMember.group_id) == col(GroupRow.id))
                .where(col(GroupMember.user_id) == user.id)
            )
        )
        roles = {
            Role(r)
            for _, group_roles in groups
            for r in group_roles
            if r in Role._value2member_map_
        }
        return Principal(
            user_id=user.id,
            username=user.username,
            org_id=user.org_id,
            org=org.name,
            roles=frozenset(roles),
            group_ids=frozenset(gid for gid, _ in groups if gid is not None),
            credential_kind=credential.kind if credential else "session",
            credential_id=credential.id if credential else None,
            credential_expires_at=credential.expires_at if credential else None,
            scope=credential.scope if credential else "",
        )

    async def authenticate(self, value: str) -> Principal:
        """The principal behind a credential string, or :class:`NotAuthenticated`.

        Runs on every request: one session, two queries (credential with its user and org, then
        the user's groups), and a write at most once a minute to note the credential's use.
        """
        parsed = credentials.parse(value)
        if parsed is None:
            raise NotAuthenticated("the credential is malformed", reason="credential-malformed")
        now = utcnow()
        cache_key = credentials.hash_secret(value)
        cached = self._cache.get(cache_key)
        if cached is not None:
            principal, expires_at, cached_at = cached
            fresh = time.monotonic() - cached_at < PRINCIPAL_CACHE_SECONDS
            if fresh and (expires_at is None or expires_at > now):
                return principal
            del self._cache[cache_key]
        async with self._db.session() as session:
            found = (
                await session.exec(
                    select(Credential, User, Org)
                    .join(User, col(User.id) == col(Credential.user_id))
                    .join(Org, col(Org.id) == col(User.org_id))
                    .where(col(Credential.public_id) == parsed.public_id)
                )
            ).first()
            if (
                found is None
                or found[0].kind != parsed.kind
                or not credentials.secret_matches(parsed.secret, found[0].secret_hash)
            ):
                raise NotAuthenticated(
                    "the credential is not valid (unknown or revoked)", reason="credential-invalid"
                )
            credential, user, org = found
            if credential.expires_at is not None and credential.expires_at <= now:
                raise NotAuthenticated("the credential has expired", reason="credential-expired")
            if user.disabled:
                raise NotAuthenticated("this account is disabled", reason="user-disabled")
            principal = await self._principal(session, user, org, credential)
            if (
                credential.last_used_at is None
                or now - credential.last_used_at > LAST_USED_RESOLUTION
            ):
                await session.exec(
                    update(Credential)
                    .where(col(Credential.id) == credential.id)
                    .values(last_used_at=now)
                )
                await session.commit()
        if len(self._cache) >= PRINCIPAL_CACHE_SIZE:
            self._cache.clear()
        self._cache[cache_key] = (principal, credential.expires_at, time.monotonic())
        return principal

    # --- sign-in --------------------------------------------------------------------------------

    async def login_password(
        self, username: str, password: str
    ) -> tuple[Principal, IssuedCredential]:
        """Check a password through the ``password`` auth method and open a browser session.

        Repeated failures lock the account with a growing back-off; unknown users, wrong
        passwords and disabled accounts are refused alike.
        """
        refused = NotAuthenticated("wrong username or password", reason="login-failed")
        now = utcnow()
        async with self._db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == username))).first()
        if user is not None and user.locked_until is not None and user.locked_until > now:
            wait = int((user.locked_until - now).total_seconds()) + 1
            raise TooManyAttempts(
                f"too many failed sign-ins: try again in {wait} seconds",
                details={"retry_after": wait},
            )
        method = self._kernel.auth_method("password").create(
            LocalAccount(username=username, password_hash=user.password_hash if user else None)
        )
        try:
            await method.authenticate_password(username, password)
        except NotAuthenticated:
            if user is not None:
                await self._record_failure(user)
            raise refused from None
        assert user is not None
        if user.disabled:
            raise refused
        async with self._db.session() as session:
            await session.exec(
                update(User)
                .where(col(User.id) == user.id)
                .values(failed_logins=0, locked_until=None, last_login_at=now)
            )
            await session.commit()
        issued = await self._issue(
            user, "session", "browser session", now + timedelta(hours=self._policy.session_hours)
        )
        return await self.principal(user), issued

    async def _record_failure(self, user: User) -> None:
        failures = user.failed_logins + 1
        locked_until = None
        if failures >= LOCKOUT_AFTER:
            seconds = min(
                LOCKOUT_BASE_SECONDS * 2 ** (failures - LOCKOUT_AFTER), LOCKOUT_MAX_SECONDS
            )
            locked_until = utcnow() + timedelta(seconds=seconds)
        async with self._db.session() as session:
            await session.exec(
                update(User)
                .where(col(User.id) == user.id)
                .values(failed_logins=failures, locked_until=locked_until)
            )
            await session.commit()

    async def logout(self, principal: Principal) -> None:
        """End the credential this request came with, if it is a session or a token (API keys are
        revoked explicitly)."""
        if principal.credential_id is not None and principal.credential_kind in {
            "session",
            "token",
        }:
            await self.revoke(principal, principal.credential_id, principal.credential_kind)

    # --- credentials ----------------------------------------------------------------------------

    async def _issue(
        self, user: User, kind: str, name: str, expires_at: datetime | None, scope: str = ""
    ) -> IssuedCredential:
        assert user.id is not None
        issued = credentials.issue(kind)
        row = Credential(
            public_id=issued.public_id,
            user_id=user.id,
            kind=kind,
            name=name,
            scope=scope,
            secret_hash=issued.secret_hash,
            expires_at=expires_at,
        )
        async with self._db.session() as session:
            session.add(row)
            await session.commit()
            await session.refresh(row)
        assert row.id is not None
        return IssuedCredential(
            id=row.id,
            kind=kind,
            name=name,
            created_at=row.created_at,
            expires_at=expires_at,
            secret=issued.value,
        )

    async def issue_run_token(
        self, username: str, run_id: int, *, everything: bool, expires_at: datetime | None
    ) -> str:
        """A token for run ``run_id``'s steps, acting as its user: for ``everything`` the
        workflow has ``permissions: ['*']``; else scoped to updating the run's sessions."""
        async with self._db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == username))).first()
        if user is None:
            raise NotFound(f"user {username!r} no longer exists")
        scope = "" if everything else f"run:{run_id}:sessions"
        issued = await self._issue(user, "run", f"run {run_id}", expires_at, scope)
        return issued.secret

    async def revoke_run_token(self, run_id: int) -> None:
        """Delete run ``run_id``'s token: it stops working at once (its run ended)."""
        async with self._db.session() as session:
            await session.exec(
                delete(Credential)
                .where(col(Credential.kind) == "run")
                .where(col(Credential.name) == f"run {run_id}")
            )
            await session.commit()
        await self.identity_changed()

    async def _user(self, principal: Principal) -> tuple[User, Org]:
        async with self._db.session() as session:
            user = await session.get(User, principal.user_id)
            org = await session.get(Org, principal.org_id)
        if user is None or org is None:
            raise NotAuthenticated("this account no longer exists")
        return user, org

    async def create_api_key(
        self, principal: Principal, name: str, expiration_days: int | None
    ) -> IssuedCredential:
        """An API key that expires after none, 7, 30, 60 or 90 days, as org policy allows."""
        KEY_NAME.check(name, "name")
        user, org = await self._user(principal)
        if not org.api_key_user_expiration:
            if expiration_days is not None:
                raise Invalid(
                    "expiration_days: your organization sets the expiry of API keys",
                    field="expiration_days",
                )
            expiration_days = org.api_key_default_days
        elif expiration_days not in API_KEY_EXPIRY_DAYS:
            raise Invalid(
                "expiration_days must be one of 7, 30, 60 or 90 (or null for none), "
                f"not {expiration_days}",
                field="expiration_days",
            )
        for limit, who in (
            (org.api_key_max_days, "your organization"),
            (self._policy.api_key_max_days or None, "this platform"),
        ):
            if limit is not None and (expiration_days is None or expiration_days > limit):
                raise Invalid(
                    f"expiration_days: {who} allows at most {limit} days",
                    field="expiration_days",
                )
        expires = utcnow() + timedelta(days=expiration_days) if expiration_days else None
        return await self._issue(user, "apikey", name, expires)

    async def create_token(self, principal: Principal, expiration_hours: int) -> IssuedCredential:
        """A short-lived token for the CLI: 1 to 24 hours."""
        if expiration_hours not in TOKEN_HOURS:
            raise Invalid(
                f"expiration_hours must be a whole number from 1 to 24, not {expiration_hours}",
                field="expiration_hours",
            )
        user, _ = await self._user(principal)
        return await self._issue(
            user, "token", "cli token", utcnow() + timedelta(hours=expiration_hours)
        )

    async def list_credentials(self, principal: Principal, kind: str) -> list[Credential]:
        async with self._db.session() as session:
            rows = await session.exec(
                select(Credential)
                .where(col(Credential.user_id) == principal.user_id)
                .where(col(Credential.kind) == kind)
                .order_by(col(Credential.id))
            )
            return list(rows)

    async def revoke(self, principal: Principal, credential_id: int, kind: str) -> None:
        """Delete one of the caller's credentials of ``kind``: it stops working at once."""
        async with self._db.session() as session:
            result = await session.exec(
                delete(Credential)
                .where(col(Credential.id) == credential_id)
                .where(col(Credential.user_id) == principal.user_id)
                .where(col(Credential.kind) == kind)
            )
            await session.commit()
        if not result.rowcount:
            raise NotFound(f"no key {credential_id}")
        await self.identity_changed()

    async def revoke_sessions(self, user_id: int) -> None:
        async with self._db.session() as session:
            await session.exec(
                delete(Credential)
                .where(col(Credential.user_id) == user_id)
                .where(col(Credential.kind) == "session")
            )
            await session.commit()
        await self.identity_changed()

    # --- SSH keys -------------------------------------------------------------------------------

    async def add_ssh_key(self, principal: Principal, name: str, key: str) -> SshKey:
        KEY_NAME.check(name, "name")
        normalised, fingerprint = parse_public_key(key)
        row = SshKey(
            user_id=principal.user_id, name=name, public_key=normalised, fingerprint=fingerprint
        )
        async with self._db.session() as session:
            exists = (
                await session.exec(
                    select(SshKey.id)
                    .where(col(SshKey.user_id) == principal.user_id)
                    .where(col(SshKey.name) == name)
                )
            ).first()
            if exists is not None:
                raise Conflict(
                    f"you already have an SSH key named {name!r}", details={"field": "name"}
                )
            session.add(row)
            await session.commit()
            await session.refresh(row)
        return row

    async def ssh_keys(self, user_id: int) -> list[SshKey]:
        async with self._db.session() as session:
            return list(
                await session.exec(
                    select(SshKey).where(col(SshKey.user_id) == user_id).order_by(col(SshKey.id))
                )
            )

    async def delete_ssh_key(self, principal: Principal, name: str) -> None:
        async with self._db.session() as session:
            result = await session.exec(
                delete(SshKey)
                .where(col(SshKey.user_id) == principal.user_id)
                .where(col(SshKey.name) == name)
            )
            await session.commit()
        if not result.rowcount:
            raise NotFound(f"you have no SSH key named {name!r}")

    async def key_pair(self, user_id: int) -> UserKeyPair:
        """The user's platform key pair, made on first use; the private half encrypted at rest."""
        async with self._db.session() as session:
            existing = await session.get(UserKeyPair, user_id)
        if existing is not None:
            return existing
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = Ed25519PrivateKey.generate()
        private_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        public = (
            private.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        row = UserKeyPair(
            user_id=user_id,
            public_key=f"{public} corral-platform",
            private_key_encrypted=self._secrets.encrypt(private_pem),
        )
        async with self._db.session() as session:
            session.add(row)
            try:
                await session.commit()
            except Exception:  # another request made it first
                await session.rollback()
                found = await session.get(UserKeyPair, user_id)
                assert found is not None
                return found
        return row

    def private_key(self, pair: UserKeyPair) -> str:
        """The decrypted private key, for the SSH transport only; never returned by the API."""
        return self._secrets.decrypt(pair.private_key_encrypted)

    async def authorized_keys(self, username: str) -> list[str]:
        """Every public key that may log in as ``username`` (theirs and the platform's)."""
        async with self._db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == username))).first()
        if user is None or user.disabled:
            return []
        assert user.id is not None
        keys = [key.public_key for key in await self.ssh_keys(user.id)]
        keys.append((await self.key_pair(user.id)).public_key)
        return keys
