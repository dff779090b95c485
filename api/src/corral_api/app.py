"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, Router
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from corral_api.routes.audit import list_audit
from corral_api.routes.auth import AuthController, SshKeyController, ssh_public_keys
from corral_api.routes.cloud_resources import OsSnapshotController, StaticIpController
from corral_api.routes.cloud_settings import CloudSettingsController
from corral_api.routes.clouds import CloudAccountController
from corral_api.routes.clusters import ClusterController
from corral_api.routes.marketplace import MarketplaceController
from corral_api.routes.networks import CloudAccountAccessController, NetworkController
from corral_api.routes.orgs import GroupController, OrgController, UserController
from corral_api.routes.resources import ResourceController
from corral_api.routes.runs import RunController, WorkflowRunController
from corral_api.routes.sessions import SessionController
from corral_api.routes.ssh import SSHController, ssh_connect
from corral_api.routes.storage import StorageController
from corral_api.routes.system import system_routes
from corral_api.routes.workflows import WorkflowController, WorkflowSchemaController
from corral_api.security import (
    AuditMiddleware,
    CredentialMiddleware,
    provide_principal,
    provide_runtime,
)
from corral_core.identity.roles import Principal
from corral_core.runtime import Runtime
from corral_sdk import __version__
from corral_sdk.errors import CorralError
from corral_sdk.wire import Problem

__all__ = ["PROBLEM_MEDIA_TYPE", "create_app"]

log = logging.getLogger("corral.api")
SHUTDOWN_STEP_SECONDS = 10.0
"""How long a shutdown waits for each connection to close."""

PROBLEM_MEDIA_TYPE = "application/problem+json"


def _problem(request: Request[Any, Any, Any], problem: Problem) -> Response[Problem]:
    return Response(
        msgspec.structs.replace(problem, instance=request.url.path),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def corral_error_handler(request: Request[Any, Any, Any], exc: CorralError) -> Response[Problem]:
    """Every error Corral raises on purpose becomes problem details, in this one place."""
    if exc.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.log_message)
    errors = [dict(exc.details)] if exc.details else []
    return _problem(
        request,
        Problem(
            type=f"https://corral.dev/problems/{exc.reason}",
            title=exc.title,
            status=exc.status,
            detail=exc.message,
            reason=exc.reason,
            errors=errors,
        ),
    )


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    errors: list[dict[str, Any]] = []
    detail = exc.detail
    if isinstance(exc, ValidationException):
        status = 422 if status == 400 else status
        for item in exc.extra if isinstance(exc.extra, list) else []:
            if isinstance(item, dict):
                errors.append({k: v for k, v in item.items() if k in {"key", "message", "source"}})
        if errors:
            detail = "; ".join(
                f"{e.get('key') or e.get('source', 'body')}: {e.get('message', '')}" for e in errors
            )
    title = {401: "Not authenticated", 403: "Permission denied", 404: "Not found"}.get(
        status, detail if status < 500 else "Internal error"
    )
    return _problem(request, Problem(title=title, status=status, detail=str(detail), errors=errors))


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("%s %s crashed", request.method, request.url.path)
    return _problem(
        request,
        Problem(
            title="Internal error",
            status=500,
            detail="Corral hit an unexpected error; the operators can find it in the logs",
            reason="internal-error",
        ),
    )


async def _follow_identity_changes(app: Litestar) -> None:
    runtime: Runtime = app.state.runtime
    app.state.identity_follower = asyncio.create_task(runtime.authn.follow_identity_changes())


async def _close_connections(app: Litestar) -> None:
    """Database and pub/sub connections belong to the server's event loop: close them with it."""
    runtime: Runtime = app.state.runtime
    follower: asyncio.Task[None] | None = app.state.get("identity_follower")
    if follower is not None:
        follower.cancel()
    # a shutdown never hangs on one of them (seen once, on PostgreSQL with Redis: the test
    # client waited for ever): each gets a bounded time, and a stuck one is reported
    steps: list[tuple[str, Any]] = [
        ("the identity follower", follower),
        ("the database pool", runtime.db.dispose()),
        ("the pub/sub client", runtime.pubsub.close()),
    ]
    for what, step in steps:
        if step is None:
            continue
        try:
            await asyncio.wait_for(step, SHUTDOWN_STEP_SECONDS)
        except asyncio.CancelledError:
            if what != "the identity follower":
                raise
        except TimeoutError:
            log.warning("shutdown: %s did not close within %s s", what, SHUTDOWN_STEP_SECONDS)


def create_app(runtime: Runtime, *, debug: bool = False) -> Litestar:
    """Build the API for ``runtime``: the kernel's routes plus every plugin's."""
    route_handlers: list[Any] = [
        *system_routes(),
        AuthController,
        SshKeyController,
        CloudAccountController,
        CloudAccountAccessController,
        NetworkController,
        OsSnapshotController,
        StaticIpController,
        StorageController,
        CloudSettingsController,
        WorkflowController,
        WorkflowSchemaController,
        WorkflowRunController,
        RunController,
        MarketplaceController,
        ssh_public_keys,
        OrgController,
        UserController,
        GroupController,
        ResourceController,
        SessionController,
        ClusterController,
        SSHController,
        ssh_connect,
        list_audit,
    ]
    for plugin_name, handlers in runtime.kernel.api_routes():
        route_handlers.append(Router(path=f"/api/plugins/{plugin_name}", route_handlers=handlers))
    app = Litestar(
        route_handlers=route_handlers,
        exception_handlers={
            CorralError: corral_error_handler,
            HTTPException: http_error_handler,
            Exception: unexpected_error_handler,
        },
        openapi_config=OpenAPIConfig(
            title="Corral",
            version=__version__,
            description="The Corral control plane API.",
            path="/api/schema",
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
        ),
        dependencies={
            "principal": Provide(provide_principal, sync_to_thread=False),
            "runtime": Provide(provide_runtime, sync_to_thread=False),
        },
        middleware=[
            AuditMiddleware,
            DefineMiddleware(
                CredentialMiddleware,
                exclude=["^/api/schema"],
                exclude_from_auth_key="public",
            ),
        ],
        signature_namespace={"Principal": Principal, "Runtime": Runtime},
        debug=debug,
        logging_config=None,
        on_startup=[_follow_identity_changes],
        on_shutdown=[_close_connections],
    )
    app.state.runtime = runtime
    # set when the server starts shutting down: long responses (log streams) end early
    app.state.closing = threading.Event()
    return app
