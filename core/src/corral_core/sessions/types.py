"""The built-in session types (spec §9.1): ``tunnel`` (an app on a port of a cluster or of the
workspace, served through the platform) and ``link`` (a URL elsewhere). They are registered by
Corral's built-in plugin through ``corral_register_session_types``, as a plugin's would be.

Neither starts anything: a tunnel's app is already running (a workflow step or the user started
it), so it is ``running`` as soon as it has a port, and the kernel then checks that the app
answers through the tunnel before it shows the session as running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from corral_core.workflows.executors import shell_path
from corral_sdk.errors import Invalid
from corral_sdk.providers import ProgressLog
from corral_sdk.providers.session import SessionEndpoint, SessionSpec, SessionState, SessionStatus
from corral_sdk.transport import CommandRunner

__all__ = ["Link", "ServiceJson", "Tunnel"]


class Tunnel:
    """``remote_host:remote_port`` on the target, proxied at the session's URL (``/`` of the
    app at the session's base path; the slug is what the session opens)."""

    def _status(self, spec: SessionSpec) -> SessionStatus:
        if spec.remote_port is None:
            raise Invalid("a tunnel session needs the app's remote port", field="remote_port")
        return SessionStatus(
            state=SessionState.RUNNING,
            endpoint=SessionEndpoint(
                host=spec.remote_host or "localhost",
                port=spec.remote_port,
                scheme="https" if spec.use_tls else "http",
                path="/",
            ),
            open_path=spec.slug.lstrip("/"),
        )

    async def start(
        self, spec: SessionSpec, *, runner: CommandRunner | None, log: ProgressLog
    ) -> SessionStatus:
        return self._status(spec)

    async def status(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> SessionStatus:
        return self._status(spec)

    async def stop(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> None:
        return None  # the app is not Corral's: closing the tunnel is the kernel's


class Link:
    """A URL outside the platform; the session opens it (``options`` holds ``{"url": ...}``)."""

    @staticmethod
    def _url(spec: SessionSpec) -> str:
        url = str((spec.options or {}).get("url", "")) if isinstance(spec.options, dict) else ""
        if not url.startswith(("https://", "http://")):
            raise Invalid("a link session needs an http(s) url", field="url")
        return url

    async def start(
        self, spec: SessionSpec, *, runner: CommandRunner | None, log: ProgressLog
    ) -> SessionStatus:
        return SessionStatus(state=SessionState.RUNNING, url=self._url(spec))

    async def status(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> SessionStatus:
        return SessionStatus(state=SessionState.RUNNING, url=self._url(spec))

    async def stop(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> None:
        return None


class ServiceJson:
    """``service-json``: the legacy interactive sessions of workflow runs (spec §10), read from
    the ``service.json`` the run's steps write in its directory (``options["directory"]`` on
    the target): ``JOB_STATUS`` ``running``/``r`` (any case, padding trimmed) proxies to
    ``PORT`` on the target's loopback, ``/sme`` in ``URL`` meaning HTTPS, ``SLUG`` what opens
    (``\\`` or empty: the root); ``failed`` fails with ``ERROR_MESSAGE``; anything else is
    shown as the loading state (``PENDING``)."""

    @staticmethod
    def _directory(spec: SessionSpec) -> str:
        options = spec.options if isinstance(spec.options, dict) else {}
        directory = str(options.get("directory", ""))
        if not directory or "\n" in directory or "\0" in directory:
            raise Invalid("a service-json session needs its run's directory", field="options")
        return directory

    async def _read(self, spec: SessionSpec, runner: CommandRunner | None) -> SessionStatus:
        if runner is None:
            raise Invalid("a service-json session runs in the workspace", field="target")
        result = await runner.run(
            "sh -s",
            input=f"cat {shell_path(self._directory(spec) + '/service.json')} 2>/dev/null\n",
        )
        if not result.stdout.strip():
            return SessionStatus(state=SessionState.STARTING, message="waiting for service.json")
        try:
            found = json.loads(result.stdout)
        except ValueError:
            return SessionStatus(state=SessionState.STARTING, message="service.json is incomplete")
        if not isinstance(found, dict):
            return SessionStatus(state=SessionState.STARTING, message="service.json is incomplete")
        status = str(found.get("JOB_STATUS", "")).strip()
        if status.lower() in ("running", "r"):
            port = str(found.get("PORT", "")).strip()
            if not port.isdigit() or not 0 < int(port) < 65536:
                return SessionStatus(state=SessionState.FAILED, message=f"PORT {port!r} is no port")
            slug = str(found.get("SLUG", "")).strip().strip("\\").lstrip("/")
            return SessionStatus(
                state=SessionState.RUNNING,
                endpoint=SessionEndpoint(
                    host="127.0.0.1",
                    port=int(port),
                    scheme="https" if str(found.get("URL", "")).strip() == "/sme" else "http",
                    path="/",
                ),
                open_path=slug,
            )
        if status.lower() == "failed":
            message = str(found.get("ERROR_MESSAGE", "")).strip()
            return SessionStatus(state=SessionState.FAILED, message=message or "failed")
        return SessionStatus(state=SessionState.STARTING, message=status or "starting")

    async def start(
        self, spec: SessionSpec, *, runner: CommandRunner | None, log: ProgressLog
    ) -> SessionStatus:
        return await self._read(spec, runner)

    async def status(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> SessionStatus:
        return await self._read(spec, runner)

    async def stop(
        self, spec: SessionSpec, data: Mapping[str, str], *, runner: CommandRunner | None
    ) -> None:
        return None  # the run's cancel (its cleanup steps) stops the service
