"""Session types: interactive web services (Jupyter, VS Code, desktops, tunnels, links) that
Corral starts somewhere and proxies to the browser.

A session plugin registers a :class:`~corral_sdk.records.SessionTypeRecord` whose factory is
called with no arguments; the record's ``config`` struct decodes the type's options (a
directory, a URL) into :attr:`SessionSpec.options`. Providers are stateless: whatever a started
session must remember (a pid, a scheduler job id, a port) goes in :attr:`SessionStatus.data`,
which the kernel stores and hands back. The kernel owns the tunnel: it opens
``runner.forward(endpoint.host, endpoint.port)`` to the :class:`SessionEndpoint` a running
session reports and serves it under :attr:`SessionSpec.base_path`, behind Corral's sign-in.

A type whose record declares :attr:`~corral_sdk.features.SessionFeature.NEEDS_SCHEDULER` may
start its service as a batch job on a compute node: it implements
:class:`ScheduledSessionType`, whose methods also take ``scheduler``, the
:class:`~corral_sdk.providers.scheduler.Scheduler` of the session's cluster (working through
the same runner), or ``None`` where there is none (the workspace). Its endpoint's ``host`` is
then the node, as the login host reaches it: the kernel's forward goes through the login host.

Errors: a target that is not running raises :class:`~corral_sdk.errors.Conflict`; bad options
raise :class:`~corral_sdk.errors.Invalid` with ``field``; commands that fail raise
:class:`~corral_sdk.errors.ProviderError`; transport errors pass through.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.features import SessionFeature
from corral_sdk.providers._common import ProgressLog, redacted_repr
from corral_sdk.providers.scheduler import Scheduler
from corral_sdk.transport import CommandRunner

__all__ = [
    "SESSION_FEATURE_METHODS",
    "ScheduledSessionType",
    "SessionEndpoint",
    "SessionSpec",
    "SessionState",
    "SessionStatus",
    "SessionTarget",
    "SessionType",
    "TargetKind",
    "run_report",
]


class TargetKind(enum.StrEnum):
    """Where a session's service runs."""

    CLUSTER = "cluster"
    """A cluster's controller or, through its scheduler, a compute node."""
    WORKSPACE = "workspace"
    """The user's workspace on the Corral host."""
    KUBERNETES = "kubernetes"
    """A pod, deployment or service of a Kubernetes cluster."""
    EXTERNAL = "external"
    """Nowhere Corral manages: a plain link."""


class SessionTarget(msgspec.Struct, frozen=True, kw_only=True):
    kind: TargetKind
    name: str = ""
    """The cluster's or Kubernetes cluster's name; empty for the workspace."""
    details: dict[str, str] = msgspec.field(default_factory=dict)
    """Kind-specific facts (``resource_type``/``resource_name`` for Kubernetes, a partition)."""


class SessionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A session as the kernel hands it to its type."""

    name: str
    session_id: str
    """Corral's stable id of the session (use it to name files, jobs and ports)."""
    user: str
    """The Corral user the session runs for."""
    target: SessionTarget
    options: Any = None
    """An instance of the record's ``config`` struct (``None`` without one)."""
    remote_host: str = "localhost"
    """For tunnels: the host the service listens on, as seen from the target."""
    remote_port: int | None = None
    slug: str = ""
    """Appended to the session's URL (apps whose base path is not ``/``)."""
    use_tls: bool = False
    """The service itself speaks HTTPS."""
    base_path: str = "/"
    """The path Corral serves the session under (``/sessions/alice/nb1/``); give it to services
    that need to know their public base URL (Jupyter's ``base_url``)."""

    def __post_init__(self) -> None:
        if self.remote_port is not None and not 0 < self.remote_port < 65536:
            raise Invalid("the remote port must be between 1 and 65535", field="remote_port")
        if not self.base_path.startswith("/"):
            raise Invalid("the base path must start with '/'", field="base_path")


class SessionState(enum.StrEnum):
    CREATING = "creating"
    """Waiting for its workflow or its scheduler job."""
    INSTALLING = "installing"
    STARTING = "starting"
    RUNNING = "running"
    """Ready: :attr:`SessionStatus.endpoint` (or ``url``) is set."""
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (SessionState.STOPPED, SessionState.FAILED)


class SessionEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """What the proxy connects to, as seen from the target's :class:`CommandRunner`."""

    host: str
    port: int
    scheme: Literal["http", "https"] = "http"
    path: str = "/"
    """The service's path that the session's base path maps to: a request for
    ``<base_path>x`` goes to ``<path>x``. A service told its public base URL (Jupyter's
    ``base_url``) uses ``spec.base_path``; a service at its root uses ``/``."""
    websocket: bool = True
    """Whether to pass WebSocket upgrades through."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Headers the proxy adds to every request (a service token); never shown to users."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise Invalid("the endpoint port must be between 1 and 65535", field="port")
        if not self.path.startswith("/"):
            raise Invalid("the endpoint path must start with '/'", field="path")

    def __repr__(self) -> str:
        return redacted_repr(self, frozenset({"headers"}))


class SessionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A session's observed state."""

    state: SessionState
    message: str = ""
    """Shown while it is not running (``queued``), or why it failed."""
    endpoint: SessionEndpoint | None = None
    """Where to proxy, once running."""
    url: str | None = None
    """For links: the external URL the browser goes to instead of the proxy."""
    open_path: str = ""
    """What to open under the session's base path (``lab``, ``vnc.html?autoconnect=1``); by
    default the session's slug."""
    data: dict[str, str] = msgspec.field(default_factory=dict)
    """What the type needs to find the session again (passed back to ``status``/``stop``)."""


@runtime_checkable
class SessionType(Protocol):
    """What a session plugin implements. See the module docstring for construction and errors.

    ``runner`` reaches the session's target (a cluster's login node, the workspace); it is
    ``None`` for :attr:`TargetKind.EXTERNAL` sessions.
    """

    async def start(
        self, spec: SessionSpec, *, runner: CommandRunner | None, log: ProgressLog
    ) -> SessionStatus:
        """Start the service (install it if needed, submit a job, launch a server) and return
        at once with its state, usually ``starting`` or already ``running``. Idempotent for one
        ``spec.session_id``."""
        ...

    async def status(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> SessionStatus:
        """Observe the session started with ``data``; called repeatedly until it is running,
        then periodically. A session whose service vanished is ``stopped`` or ``failed``."""
        ...

    async def stop(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> None:
        """Stop the service and clean up what :meth:`start` created. Idempotent."""
        ...


@runtime_checkable
class ScheduledSessionType(Protocol):
    """A :class:`SessionType` that can start its service through the cluster's scheduler (its
    record declares ``SessionFeature.NEEDS_SCHEDULER``): the kernel passes every method the
    :class:`SessionType` arguments and ``scheduler``, the session's cluster's scheduler, or
    ``None`` for a target without one (the workspace). Give ``scheduler`` a default of
    ``None`` so the type is a :class:`SessionType` too.

    A job it submits goes in :attr:`SessionStatus.data` (its id), its state in the status
    (``starting`` with the job's pending reason, ``failed`` when the job ends); :meth:`stop`
    cancels it.
    """

    async def start(
        self,
        spec: SessionSpec,
        *,
        runner: CommandRunner | None,
        log: ProgressLog,
        scheduler: Scheduler | None,
    ) -> SessionStatus:
        """:meth:`SessionType.start`, with the cluster's scheduler."""
        ...

    async def status(
        self,
        spec: SessionSpec,
        data: Mapping[str, str],
        *,
        runner: CommandRunner | None,
        scheduler: Scheduler | None,
    ) -> SessionStatus:
        """:meth:`SessionType.status`, with the cluster's scheduler."""
        ...

    async def stop(
        self,
        spec: SessionSpec,
        data: Mapping[str, str],
        *,
        runner: CommandRunner | None,
        scheduler: Scheduler | None,
    ) -> None:
        """:meth:`SessionType.stop`, with the cluster's scheduler."""
        ...


SESSION_FEATURE_METHODS: Mapping[SessionFeature, tuple[str, ...]] = MappingProxyType(
    {
        SessionFeature.HTTP: (),
        SessionFeature.WEBSOCKET: (),
        SessionFeature.HTTPS_BACKEND: (),
        SessionFeature.NEEDS_SCHEDULER: (),
        SessionFeature.WORKSPACE: (),
    }
)
"""Session features need no extra methods: they describe the endpoint and where it may run."""


async def run_report(runner: CommandRunner, script: str, what: str) -> dict[str, str]:
    """Run a POSIX ``sh`` script on the session's target (on standard input, so the login shell
    may be any shell) that prints ``key=value`` lines, then optionally ``log:`` followed by the
    end of a log (returned under ``"log"``). A script that fails raises ``ProviderError``
    ("could not <what> on <target>: <its stderr>"): the helper session types share."""
    result = await runner.run("sh -s", input=script)
    if result.exit_status != 0:
        raise ProviderError(
            f"could not {what} on {runner.target}: "
            f"{result.stderr.strip() or f'exit status {result.exit_status}'}"
        )
    found: dict[str, str] = {}
    lines = result.stdout.splitlines()
    for index, line in enumerate(lines):
        if line == "log:":
            found["log"] = "\n".join(lines[index + 1 :]).strip()
            break
        key, sep, value = line.partition("=")
        if sep:
            found[key] = value
    return found
