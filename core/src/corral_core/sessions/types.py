"""The built-in session types (spec §9.1): ``tunnel`` (an app on a port of a cluster or of the
workspace, served through the platform) and ``link`` (a URL elsewhere). They are registered by
Corral's built-in plugin through ``corral_register_session_types``, as a plugin's would be.

Neither starts anything: a tunnel's app is already running (a workflow step or the user started
it), so it is ``running`` as soon as it has a port, and the kernel then checks that the app
answers through the tunnel before it shows the session as running.
"""

from __future__ import annotations

from collections.abc import Mapping

from corral_sdk.errors import Invalid
from corral_sdk.providers import ProgressLog
from corral_sdk.providers.session import SessionEndpoint, SessionSpec, SessionState, SessionStatus
from corral_sdk.transport import CommandRunner

__all__ = ["Link", "Tunnel"]


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
