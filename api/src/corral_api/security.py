"""Authentication on every route, the few public ones listed here, and the audit trail.

Every route requires a credential unless its handler is marked public (``opt={"public": True}``)
and listed in :data:`PUBLIC_ROUTES`; a meta-test checks the two agree. Credentials come as
``Authorization: Bearer <api key or token>`` or as the browser's session cookie.

A workflow run's token (lent to its steps as ``PW_API_KEY``) acts as the run's user when the
workflow declares ``permissions: ['*']``; otherwise its scope (``Principal.scope``) lets it call
only routes marked ``opt={"run_token": True}`` (updating the run's own sessions), each of which
checks that scope itself.
"""

from __future__ import annotations

import logging
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from corral_core.identity.roles import Principal
from corral_core.runtime import Runtime
from corral_sdk.errors import NotAuthenticated, PermissionDenied

__all__ = [
    "PUBLIC",
    "PUBLIC_ROUTES",
    "SESSION_COOKIE",
    "AuditMiddleware",
    "Caller",
    "CredentialMiddleware",
    "RuntimeDep",
    "provide_principal",
    "provide_runtime",
]

log = logging.getLogger("corral.api")

SESSION_COOKIE = "corral_session"
PUBLIC: dict[str, Any] = {"public": True}
PUBLIC_ROUTES = frozenset(
    {
        ("GET", "/api/health"),
        ("GET", "/api/version"),
        ("POST", "/api/auth/login"),
        ("GET", "/api/users/{username}/ssh-public-keys"),
        # a cloud cluster's hosts, with their session's token (checked by the handler)
        ("POST", "/api/clusters/callbacks/nodes"),
        ("POST", "/api/clusters/callbacks/bootstrap"),
        # the workflow format's JSON Schema, for editors (like the OpenAPI document)
        ("GET", "/api/schema/workflow.json"),
    }
)
"""Routes that answer without credentials (besides the OpenAPI document under /api/schema)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _runtime(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


class CredentialMiddleware(AbstractAuthenticationMiddleware):
    """Resolves the caller on every non-public request; 401 without a valid credential."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise NotAuthenticated(
                    "the Authorization header must be 'Bearer <api key or token>'",
                    reason="credential-malformed",
                )
            principal = await _runtime(connection).authn.authenticate(value.strip())
            if principal.scope and not connection.route_handler.opt.get("run_token"):
                raise PermissionDenied(
                    "this workflow run's token may only update the sessions the run created; "
                    "a workflow that needs more declares `permissions: ['*']`",
                    reason="run-token-scope",
                )
            return AuthenticationResult(user=principal, auth=principal.credential_kind)
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = await _runtime(connection).authn.authenticate(cookie)
            if connection.scope.get("method") not in SAFE_METHODS:
                _check_origin(connection)
            return AuthenticationResult(user=principal, auth="session")
        raise NotAuthenticated(
            "sign in, or send 'Authorization: Bearer <api key or token>'",
            reason="not-authenticated",
        )


def _check_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """A cookie-authenticated change must come from the platform's own pages."""
    origin = connection.headers.get("origin")
    if origin is None:
        return  # not a browser cross-site request (browsers send Origin on cross-site writes)
    host = connection.headers.get("host", "")
    allowed = {host, urlsplit(_runtime(connection).settings.public_url).netloc}
    if urlsplit(origin).netloc not in allowed:
        raise PermissionDenied("cross-site request refused", reason="cross-site")


Caller: TypeAlias = NamedDependency[Principal]
"""The authenticated caller, as a handler parameter: ``principal: Caller``."""
RuntimeDep: TypeAlias = NamedDependency[Runtime]
"""The process's runtime (services, database, kernel), as a handler parameter."""


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        raise NotAuthenticated("sign in first", reason="not-authenticated")
    return principal


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


class AuditMiddleware:
    """Writes one audit row per state-changing API call: who, what, target, from where, outcome."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or scope["path"].startswith("/sessions/")  # a session's own traffic, not Corral's
        ):
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await self._record(scope, status)

    @staticmethod
    async def _record(scope: Scope, status: int) -> None:
        runtime: Runtime = scope["app"].state.runtime
        principal = scope.get("user")
        template = scope.get("path_template") or scope["path"]
        client = scope.get("client")
        try:
            known = isinstance(principal, Principal)
            await runtime.audit.record(
                actor=principal.username if known else scope.get("audit_actor", "anonymous"),
                org=principal.org if known else scope.get("audit_org"),
                action=f"{scope['method']} {template}",
                target=scope["path"],
                source=client[0] if client else "",
                outcome="success" if status < 400 else f"failed ({status})",
            )
        except Exception:
            log.exception("could not write the audit log for %s %s", scope["method"], scope["path"])
