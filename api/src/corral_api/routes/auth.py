"""Signing in and out, who am I, API keys, tokens and SSH keys (the caller's own)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.datastructures import Cookie
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import FromPath, JSONBody

from corral_api.params import RowId
from corral_api.security import PUBLIC, SESSION_COOKIE, Caller, RuntimeDep
from corral_sdk.errors import CorralError
from corral_sdk.wire import (
    ApiKeyCreate,
    CredentialInfo,
    IssuedCredential,
    LoginRequest,
    SshKeyCreate,
    SshKeyInfo,
    TokenCreate,
    Whoami,
)

__all__ = ["AuthController", "SshKeyController", "ssh_public_keys"]


async def whoami_of(runtime: RuntimeDep, principal: Caller) -> Whoami:
    groups = [
        g.name
        for g, _ in await runtime.identity.list_groups(principal)
        if g.id in principal.group_ids
    ]
    return Whoami(
        username=principal.username,
        org=principal.org,
        roles=sorted(r.value for r in principal.roles),
        groups=sorted(groups),
        credential=principal.credential_kind,
        credential_id=principal.credential_id,
        credential_expires_at=principal.credential_expires_at,
    )


def _issued(issued: Any) -> IssuedCredential:
    return IssuedCredential(
        id=issued.id,
        kind=issued.kind,
        name=issued.name,
        created_at=issued.created_at,
        expires_at=issued.expires_at,
        secret=issued.secret,
    )


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/login", opt=PUBLIC, summary="Sign in with a username and password")
    async def login(
        self,
        data: JSONBody[LoginRequest],
        runtime: RuntimeDep,
        request: Request[Any, Any, Any],
    ) -> Response[Whoami]:
        """Sets the session cookie (HttpOnly, SameSite=Lax) and returns who signed in."""
        try:
            principal, issued = await runtime.authn.login_password(data.username, data.password)
        except CorralError:
            # Failed sign-ins are audited under the name tried, in that user's org if it exists.
            request.scope["audit_actor"] = data.username[:255]
            request.scope["audit_org"] = await runtime.identity.org_of(data.username)
            raise
        secure = runtime.settings.public_url.startswith("https://")
        cookie = Cookie(
            key=SESSION_COOKIE,
            value=issued.secret,
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
            expires=int(issued.expires_at.timestamp()) if issued.expires_at else None,
        )
        request.scope["user"] = principal  # for the audit trail
        return Response(await whoami_of(runtime, principal), cookies=[cookie], status_code=200)

    @post(
        "/logout", summary="End this session or token (API keys are revoked by id)", status_code=204
    )
    async def logout(self, principal: Caller, runtime: RuntimeDep) -> Response[None]:
        await runtime.authn.logout(principal)
        return Response(
            None,
            status_code=204,
            cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")],
        )

    @get("/whoami", summary="Who the credential of this request belongs to")
    async def whoami(self, principal: Caller, runtime: RuntimeDep) -> Whoami:
        return await whoami_of(runtime, principal)

    @get("/apikeys", summary="Your API keys (never their secrets)")
    async def list_api_keys(self, principal: Caller, runtime: RuntimeDep) -> list[CredentialInfo]:
        return [_info(c) for c in await runtime.authn.list_credentials(principal, "apikey")]

    @post("/apikeys", summary="Create an API key: the secret is returned this once")
    async def create_api_key(
        self,
        data: JSONBody[ApiKeyCreate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> IssuedCredential:
        return _issued(
            await runtime.authn.create_api_key(principal, data.name, data.expiration_days)
        )

    @delete("/apikeys/{key_id:int}", summary="Revoke an API key at once", status_code=204)
    async def delete_api_key(
        self,
        key_id: RowId,
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.authn.revoke(principal, key_id, "apikey")

    @get("/tokens", summary="Your short-lived CLI tokens")
    async def list_tokens(self, principal: Caller, runtime: RuntimeDep) -> list[CredentialInfo]:
        return [_info(c) for c in await runtime.authn.list_credentials(principal, "token")]

    @post("/tokens", summary="Create a token for the CLI, valid 1 to 24 hours")
    async def create_token(
        self,
        data: JSONBody[TokenCreate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> IssuedCredential:
        return _issued(await runtime.authn.create_token(principal, data.expiration_hours))

    @delete("/tokens/{token_id:int}", summary="Revoke a token at once", status_code=204)
    async def delete_token(
        self,
        token_id: RowId,
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.authn.revoke(principal, token_id, "token")


def _info(credential: Any) -> CredentialInfo:
    return CredentialInfo(
        id=credential.id,
        kind=credential.kind,
        name=credential.name,
        created_at=credential.created_at,
        expires_at=credential.expires_at,
        last_used_at=credential.last_used_at,
    )


PUBLIC_KEYS_RATE_LIMIT = RateLimitConfig(rate_limit=("minute", 600), store="public-keys-rate-limit")


@get(
    "/api/users/{username:str}/ssh-public-keys",
    opt=PUBLIC,
    tags=["auth"],
    summary="A user's SSH public keys, authorized_keys format (public, for AuthorizedKeysCommand)",
    media_type=MediaType.TEXT,
    middleware=[PUBLIC_KEYS_RATE_LIMIT.middleware],
)
async def ssh_public_keys(username: FromPath[str], runtime: RuntimeDep) -> str:
    """Public like any published public key, so clusters' sshd can call it without a credential.

    An unknown or disabled user has no keys: the answer is empty, never an error, so the route
    does not tell which usernames exist. Rate limited per client address.
    """
    return "".join(f"{key}\n" for key in await runtime.authn.authorized_keys(username))


class SshKeyController(Controller):
    path = "/api/ssh-keys"
    tags = ["auth"]

    @get("/", summary="Your SSH public keys, and the platform's key for you")
    async def list_keys(self, principal: Caller, runtime: RuntimeDep) -> list[SshKeyInfo]:
        keys = [
            SshKeyInfo(
                name=k.name, key=k.public_key, fingerprint=k.fingerprint, created_at=k.created_at
            )
            for k in await runtime.authn.ssh_keys(principal.user_id)
        ]
        pair = await runtime.authn.key_pair(principal.user_id)
        from corral_core.identity.authn import parse_public_key

        _, fingerprint = parse_public_key(pair.public_key)
        keys.append(
            SshKeyInfo(
                name="Corral platform", key=pair.public_key, fingerprint=fingerprint, system=True
            )
        )
        return keys

    @post("/", summary="Add an SSH public key (OpenSSH format)")
    async def add_key(
        self,
        data: JSONBody[SshKeyCreate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> SshKeyInfo:
        key = await runtime.authn.add_ssh_key(principal, data.name, data.key)
        return SshKeyInfo(
            name=key.name,
            key=key.public_key,
            fingerprint=key.fingerprint,
            created_at=key.created_at,
        )

    @delete("/{name:str}", summary="Remove an SSH public key", status_code=204)
    async def delete_key(
        self,
        name: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.authn.delete_ssh_key(principal, name)
