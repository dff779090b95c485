"""Sessions that run: their type's service started, watched and stopped, and the tunnel to it.

A session resource names a session type (``tunnel``, ``link``, or a plugin's: ``jupyter``,
``desktop``...) and a target: the owner's workspace, or a cluster the owner can log in to. The
:class:`SessionReconciler` starts the type's service (:meth:`SessionType.start`), keeps what it
returns (``data``) in the resource's status, asks for its status until it runs, then checks that
its endpoint answers *through the tunnel* before showing it ``running``; afterwards it looks
again every :data:`RECHECK_SECONDS`, so a service that died turns ``failed`` with the reason.

:class:`SessionConnector` is the tunnel, one per process: a running session's endpoint is
reached through an SSH port forward over the owner's pooled connection to the cluster (opened on
first use, kept while used, closed when the session stops or goes), or directly in the workspace
(loopback only: a workspace session cannot be pointed at other machines of the Corral host's
network). The proxy and the reconciler both reach sessions through it.

A session type that starts its service through the scheduler (its record declares
``SessionFeature.NEEDS_SCHEDULER``: a :class:`ScheduledSessionType`) is also given the
cluster's scheduler on a cluster target; its endpoint's host is then a compute node, which
the forward reaches from the login host (an SSH ``direct-tcpip`` channel, as ``ssh -L``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import msgspec
from sqlalchemy import update
from sqlmodel import col, select

from corral_core.db import Database, utcnow
from corral_core.identity.names import ResourceRef
from corral_core.plugins import Kernel
from corral_core.resources.models import Resource
from corral_core.resources.service import ResourceService
from corral_core.sessions.models import SessionActivity
from corral_core.sessions.spec import SESSION_KIND, WORKSPACE
from corral_core.sessions.spec import SessionSpec as StoredSpec
from corral_core.ssh.runner import SSHRunner
from corral_core.workflows.targets import StepTargets
from corral_sdk.errors import Conflict, CorralError, Invalid, NotFound
from corral_sdk.features import SessionFeature
from corral_sdk.providers import ProgressLog, StepState
from corral_sdk.providers.scheduler import Scheduler
from corral_sdk.providers.session import (
    ScheduledSessionType,
    SessionEndpoint,
    SessionSpec,
    SessionState,
    SessionStatus,
    SessionTarget,
    SessionType,
    TargetKind,
)
from corral_sdk.reconcile import ReconcileContext, ReconcileResult, ResourceSnapshot
from corral_sdk.transport import CommandRunner, Forward

__all__ = ["Backend", "SessionConnector", "SessionReconciler", "base_path"]

log = logging.getLogger("corral.sessions")

PROBE_SECONDS = 3.0
RECHECK_SECONDS = 15.0
FLUSH_SECONDS = 30.0
"""How often a process writes down which sessions carried traffic."""
ENDPOINT_SECONDS = 30.0
"""How long a process trusts a session's endpoint before asking its type again."""
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def base_path(owner: str, name: str) -> str:
    """Where the platform serves a session: ``/sessions/<owner>/<name>/``."""
    return f"/sessions/{owner}/{name}/"


def _loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Log:
    """A session type's progress, into the process log (sessions have no step log yet)."""

    def __init__(self, session: str) -> None:
        self.session = session

    async def log(self, message: str) -> None:
        log.info("session %s: %s", self.session, message)

    async def step(self, name: str, state: StepState, detail: str = "") -> None:
        log.info("session %s: %s %s %s", self.session, name, state.value, detail)


@dataclass
class Backend:
    """Where this process reaches a running session's service, and how to talk to it."""

    host: str
    port: int
    endpoint: SessionEndpoint
    checked_at: float
    forward: Forward | None = None


class SessionConnector:
    """Session types, runners and tunnels of one process (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        targets: StepTargets,
        resources: ResourceService,
        *,
        protected_ports: frozenset[int] = frozenset(),
    ) -> None:
        self.db = db
        self.protected_ports = protected_ports
        """Loopback ports of Corral's own services (its API, database, broker): a workspace
        session may not be pointed at them."""
        self.kernel = kernel
        self.targets = targets
        self.resources = resources
        self._backends: dict[tuple[int, int], Backend] = {}
        self._lock = asyncio.Lock()
        self._activity: dict[int, datetime] = {}
        self._flushed = 0.0
        self._flushing: asyncio.Task[None] | None = None

    # --- traffic, and stopping sessions nobody uses ---------------------------------------------

    def touch(self, resource_id: int) -> None:
        """The proxy carried traffic for a session; written down every :data:`FLUSH_SECONDS`."""
        self._activity[resource_id] = utcnow()
        if time.monotonic() - self._flushed >= FLUSH_SECONDS and (
            self._flushing is None or self._flushing.done()
        ):
            self._flushed = time.monotonic()
            self._flushing = asyncio.create_task(self.flush_activity())

    async def flush_activity(self) -> None:
        pending, self._activity = self._activity, {}
        try:
            async with self.db.session() as session:
                for resource_id, at in pending.items():
                    changed = await session.exec(
                        update(SessionActivity)
                        .where(col(SessionActivity.resource_id) == resource_id)
                        .values(last_at=at)
                    )
                    if not changed.rowcount:
                        session.add(SessionActivity(resource_id=resource_id, last_at=at))
                await session.commit()
        except Exception:  # a session deleted meanwhile, a concurrent insert: next time
            log.debug("could not record session activity", exc_info=True)

    async def cull_idle(self, idle_seconds: float) -> int:
        """Stop running sessions without traffic for ``idle_seconds`` (since they started
        running, when they never had any); returns how many."""
        if idle_seconds <= 0:
            return 0
        cutoff = utcnow() - timedelta(seconds=idle_seconds)
        async with self.db.session() as session:
            rows = list(
                await session.exec(
                    select(Resource, SessionActivity.last_at)
                    .join(
                        SessionActivity,
                        col(SessionActivity.resource_id) == col(Resource.id),
                        isouter=True,
                    )
                    .where(col(Resource.kind) == SESSION_KIND)
                    .where(col(Resource.observed_state) == "running")
                    .where(col(Resource.desired_state) == "running")
                )
            )
        stopped = 0
        for resource, last_at in rows:
            last = max(x for x in (last_at, resource.updated_at) if x is not None)
            if last.tzinfo is None:
                last = last.replace(tzinfo=UTC)
            if last < cutoff:
                log.info("session %s/%s: no traffic since %s, stopping it", resource.owner,
                         resource.name, last.isoformat(timespec="seconds"))  # fmt: skip
                await self.resources.set_desired(
                    resource.id or 0, desired_state="stopped", actor="corral"
                )
                stopped += 1
        return stopped

    # --- what a session is ----------------------------------------------------------------------

    def stored(self, resource: Resource | ResourceSnapshot) -> StoredSpec:
        return msgspec.convert(resource.spec, StoredSpec)

    def session_type(self, stored: StoredSpec) -> tuple[SessionType, Any]:
        """The session's type and its decoded options; ``Invalid`` for an unknown type."""
        try:
            record = self.kernel.session_type(stored.type)
        except (KeyError, NotFound):
            known = ", ".join(sorted(self.kernel.session_types()))
            raise Invalid(
                f"no session type {stored.type!r} is installed (installed: {known})",
                field="type",
            ) from None
        options: Any = dict(stored.options)
        if stored.type == "link":
            options = {"url": stored.url}
        elif record.config is not None:
            try:
                # strict=False: options typed on the command line (--option cpus=4) are text
                options = msgspec.convert(stored.options, record.config, strict=False)
            except msgspec.ValidationError as exc:
                raise Invalid(f"options: {exc}", field="options") from None
        session_type: SessionType = record.create()
        return session_type, options

    def spec(self, resource: Resource | ResourceSnapshot, stored: StoredSpec, options: Any) -> Any:
        target = (
            SessionTarget(kind=TargetKind.WORKSPACE)
            if stored.target == WORKSPACE
            else SessionTarget(
                kind=TargetKind.EXTERNAL if stored.type == "link" else TargetKind.CLUSTER,
                name=stored.target,
            )
        )
        return SessionSpec(
            name=resource.name,
            session_id=f"s{resource.id}",
            user=resource.owner,
            target=target,
            options=options,
            remote_host=stored.remote_host or "localhost",
            remote_port=stored.remote_port,
            slug=stored.slug,
            use_tls=stored.use_tls,
            base_path=base_path(resource.owner, resource.name),
        )

    async def runner(self, owner: str, stored: StoredSpec) -> CommandRunner | None:
        """The owner's runner on the session's target (``None`` for a link)."""
        if stored.type == "link":
            return None
        return await self.targets.runner_for(owner, stored.target)

    async def scheduler(
        self, owner: str, stored: StoredSpec, runner: CommandRunner | None
    ) -> Scheduler | None:
        """The session's cluster's scheduler, working through ``runner``, for a type that
        starts its service through it (``NEEDS_SCHEDULER``); ``None`` for other types and
        targets (the workspace, a link)."""
        if stored.type == "link" or stored.target == WORKSPACE:
            return None
        if not isinstance(runner, SSHRunner):
            return None
        try:
            features = self.kernel.session_type(stored.type).features
        except (KeyError, NotFound):
            return None
        if SessionFeature.NEEDS_SCHEDULER not in features:
            return None
        clusters = self.targets.clusters
        principal = await self.targets.principal(owner)
        resource = await clusters.get(principal, ResourceRef.parse(stored.target, owner))
        return clusters.scheduler(resource, runner)

    # --- the tunnel -----------------------------------------------------------------------------

    async def backend(
        self, resource: Resource | ResourceSnapshot, *, fresh: bool = False
    ) -> Backend:
        """Where this process reaches the running session's service: asks the session's type
        for its endpoint (at most every :data:`ENDPOINT_SECONDS`) and opens the tunnel to it."""
        key = (resource.id or 0, resource.generation)
        cached = self._backends.get(key)
        young = cached is not None and time.monotonic() - cached.checked_at < ENDPOINT_SECONDS
        if cached is not None and young and not fresh:
            return cached
        async with self._lock:
            cached = self._backends.get(key)
            if (
                cached is not None
                and not fresh
                and time.monotonic() - cached.checked_at < ENDPOINT_SECONDS
            ):
                return cached
            stored = self.stored(resource)
            session_type, options = self.session_type(stored)
            spec = self.spec(resource, stored, options)
            runner = await self.runner(resource.owner, stored)
            scheduler = await self.scheduler(resource.owner, stored, runner)
            data = dict(resource.status.get("data") or {})
            status = await _status(session_type, spec, data, runner, scheduler)
            if status.state is not SessionState.RUNNING or status.endpoint is None:
                raise Conflict(
                    f"the session {resource.name} is {status.state.value}"
                    + (f": {status.message}" if status.message else ""),
                    reason="session-not-running",
                )
            endpoint = status.endpoint
            if (
                cached is not None
                and cached.endpoint.host == endpoint.host
                and (cached.endpoint.port == endpoint.port)
            ):
                cached.endpoint, cached.checked_at = endpoint, time.monotonic()
                return cached
            if cached is not None:
                await self._close(key)
            backend = await self._open(stored, runner, endpoint)
            self._backends[key] = backend
            return backend

    async def _open(
        self, stored: StoredSpec, runner: CommandRunner | None, endpoint: SessionEndpoint
    ) -> Backend:
        now = time.monotonic()
        if stored.target == WORKSPACE:
            if not _loopback(endpoint.host):
                raise Invalid(
                    f"a workspace session serves on this host only: {endpoint.host!r} is not "
                    "localhost",
                    field="remote_host",
                )
            if endpoint.port in self.protected_ports:
                raise Invalid(
                    f"port {endpoint.port} of this host is Corral's own service",
                    field="remote_port",
                )
            return Backend(endpoint.host, endpoint.port, endpoint, now)
        if runner is None:
            raise Conflict("the session has no target to tunnel to", reason="no-target")
        forward = await runner.forward(endpoint.host, endpoint.port, local_port=stored.local_port)
        return Backend("127.0.0.1", forward.local_port, endpoint, now, forward)

    async def probe(self, backend: Backend) -> str | None:
        """``None`` when the service accepts a connection through the tunnel, else why not."""
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(backend.host, backend.port), PROBE_SECONDS
            )
        except (OSError, TimeoutError) as exc:
            return f"nothing answers at {backend.endpoint.host}:{backend.endpoint.port} ({exc})"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        if backend.forward is None:
            return None
        # an SSH forward accepts locally even when the far side refuses: ask it for a byte
        return await _probe_forwarded(backend)

    async def _close(self, key: tuple[int, int]) -> None:
        backend = self._backends.pop(key, None)
        if backend is not None and backend.forward is not None:
            with contextlib.suppress(Exception):
                await backend.forward.close()

    async def close(self, resource_id: int) -> None:
        """Close this process's tunnels to a session (it stopped, or was deleted)."""
        for key in [k for k in self._backends if k[0] == resource_id]:
            await self._close(key)

    async def close_all(self) -> None:
        for key in list(self._backends):
            await self._close(key)

    # --- start and stop -------------------------------------------------------------------------

    async def stop(self, resource: Resource | ResourceSnapshot) -> None:
        """Stop the session's service (what its type started) and close its tunnels."""
        await self.close(resource.id or 0)
        data = dict(resource.status.get("data") or {})
        if not data and resource.observed_state not in ("running", "starting", "installing"):
            return
        stored = self.stored(resource)
        session_type, options = self.session_type(stored)
        runner = await self.runner(resource.owner, stored)
        scheduler = await self.scheduler(resource.owner, stored, runner)
        spec = self.spec(resource, stored, options)
        if scheduler is not None:
            await cast(ScheduledSessionType, session_type).stop(
                spec, data, runner=runner, scheduler=scheduler
            )
        else:
            await session_type.stop(spec, data, runner=runner)


async def _start(
    session_type: SessionType,
    spec: SessionSpec,
    runner: CommandRunner | None,
    scheduler: Scheduler | None,
    log: ProgressLog,
) -> SessionStatus:
    if scheduler is not None:  # only for a ScheduledSessionType on a cluster
        scheduled = cast(ScheduledSessionType, session_type)
        return await scheduled.start(spec, runner=runner, log=log, scheduler=scheduler)
    return await session_type.start(spec, runner=runner, log=log)


async def _status(
    session_type: SessionType,
    spec: SessionSpec,
    data: dict[str, str],
    runner: CommandRunner | None,
    scheduler: Scheduler | None,
) -> SessionStatus:
    if scheduler is not None:  # only for a ScheduledSessionType on a cluster
        scheduled = cast(ScheduledSessionType, session_type)
        return await scheduled.status(spec, data, runner=runner, scheduler=scheduler)
    return await session_type.status(spec, data, runner=runner)


async def _probe_forwarded(backend: Backend) -> str | None:
    """Through an SSH forward the local accept says nothing: send an HTTP request and wait for
    the first byte of an answer (or the connection to close, when nothing listens there)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(backend.host, backend.port), PROBE_SECONDS
        )
    except (OSError, TimeoutError) as exc:
        return f"the tunnel does not accept connections ({exc})"
    try:
        writer.write(b"HEAD / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        first = await asyncio.wait_for(reader.read(1), PROBE_SECONDS)
    except (OSError, TimeoutError):
        first = b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not first:
        return f"nothing answers at {backend.endpoint.host}:{backend.endpoint.port}"
    return None


class SessionReconciler:
    """Starts a session's service, follows it to ``running`` (its endpoint answering through
    the tunnel), notices when it dies, and stops it when asked (desired ``stopped``)."""

    def __init__(self, connector: SessionConnector) -> None:
        self.connector = connector

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        status = dict(resource.status)
        desired = resource.desired_state
        if desired == "stopped":
            try:
                await self.connector.stop(resource)
            except CorralError as exc:
                log.warning("session %s: stop failed: %s", resource.id, exc.log_message)
            return ReconcileResult(observed_state="stopped", status={})
        if desired == "creating":  # a workflow's session that update-session has not filled
            return ReconcileResult(observed_state="creating", status=status, requeue_after=300.0)
        try:
            stored = self.connector.stored(resource)
            session_type, options = self.connector.session_type(stored)
            spec = self.connector.spec(resource, stored, options)
            runner = await self.connector.runner(resource.owner, stored)
            scheduler = await self.connector.scheduler(resource.owner, stored, runner)
            data = status.get("data")
            if data is None:
                observed = await _start(session_type, spec, runner, scheduler, _Log(resource.name))
                status["data"] = dict(observed.data)
            else:
                observed = await _status(session_type, spec, dict(data), runner, scheduler)
                if observed.data:
                    status["data"] = {**data, **observed.data}
        except CorralError as exc:
            return ReconcileResult(observed_state="failed", reason=exc.message, status=status)
        if observed.state is SessionState.FAILED:
            return ReconcileResult(
                observed_state="failed", reason=observed.message or "failed", status=status
            )
        if observed.state is SessionState.STOPPED:
            return ReconcileResult(
                observed_state="failed",
                reason=observed.message or "the session's service stopped",
                status=status,
            )
        if observed.state is not SessionState.RUNNING:
            return ReconcileResult(
                observed_state=observed.state.value
                if observed.state.value in ("installing", "starting")
                else "creating",
                reason=observed.message,
                status=status,
                requeue_after=2.0,
            )
        status["open_path"] = observed.open_path
        if observed.url:
            status["url"] = observed.url
            return ReconcileResult(observed_state="running", status=status)
        try:
            backend = await self.connector.backend(resource, fresh=True)
            problem = await self.connector.probe(backend)
        except CorralError as exc:
            problem = exc.message
        if problem is not None:
            was_running = resource.observed_state == "running"
            return ReconcileResult(
                observed_state="failed" if was_running else "starting",
                reason=f"the service stopped answering: {problem}" if was_running else problem,
                status=status,
                requeue_after=None if was_running else 2.0,
            )
        return ReconcileResult(
            observed_state="running", reason="", status=status, requeue_after=RECHECK_SECONDS
        )
