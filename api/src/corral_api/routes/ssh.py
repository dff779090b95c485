"""SSH through the platform: the WebSocket relay behind `corral ssh`, and host key administration.

``GET /api/ssh/connect`` (WebSocket) relays one of two things, and the caller needs the
``login`` level on the cluster either way:

- ``mode=exec``: Corral signs in to the cluster as the caller (their platform key, which never
  leaves Corral) and runs ``command``, or a login shell; with ``term`` it gets a pty. Frames from
  the client: binary = stdin; text = ``{"type": "resize", "cols": C, "rows": R}`` or
  ``{"type": "eof"}``. Frames to the client: binary whose first byte is the stream (1 stdout,
  2 stderr) followed by its data; text ``{"type": "exit", "status": N}`` last.
- ``mode=tcp``: a raw byte stream to the cluster's sshd (or to ``host:port`` as seen from the
  login node), for OpenSSH's ``ProxyCommand``; the client authenticates to sshd itself.

Failures arrive as text ``{"type": "error", "status": 404, "message": "..."}`` followed by a
close with code ``4000 + status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated, Any

from litestar import Controller, WebSocket, get, post, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import JSONBody, QueryParameter

from corral_api.security import Caller, RuntimeDep
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.runtime import Runtime
from corral_core.ssh.models import HostKey
from corral_core.ssh.runner import RemoteProcess, RemoteStream, SSHRunner
from corral_sdk.errors import Conflict, CorralError, Invalid, PermissionDenied, TransportError
from corral_sdk.wire import HostKeyAccept, HostKeyInfo

__all__ = ["SSHController", "ssh_connect"]

log = logging.getLogger("corral.api.ssh")

STDOUT, STDERR = b"\x01", b"\x02"
CHUNK = 65536


def _host_key_info(row: HostKey) -> HostKeyInfo:
    return HostKeyInfo(
        host=row.host,
        port=row.port,
        fingerprint=row.fingerprint,
        public_key=row.public_key,
        trusted=row.trusted,
        first_seen_at=row.first_seen_at,
        last_offered_at=row.last_offered_at,
        accepted_by=row.accepted_by,
    )


def _require_platform_admin(principal: Principal) -> None:
    if not principal.platform_admin:
        raise PermissionDenied(
            "host keys are shared by every organization: only a platform admin manages them",
            reason="platform-admin-only",
        )


class SSHController(Controller):
    path = "/api/ssh"
    tags = ["ssh"]

    @get("/host-keys", summary="Host keys Corral has pinned or been offered (platform admins)")
    async def list_host_keys(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        host: Annotated[str | None, QueryParameter(name="host", max_length=255)] = None,
    ) -> list[HostKeyInfo]:
        _require_platform_admin(principal)
        return [_host_key_info(row) for row in await runtime.host_keys.list(host)]

    @post(
        "/host-keys/accept",
        summary="Trust a changed host key, and only it, from now on (platform admins)",
        status_code=200,
    )
    async def accept_host_key(
        self, data: JSONBody[HostKeyAccept], principal: Caller, runtime: RuntimeDep
    ) -> HostKeyInfo:
        _require_platform_admin(principal)
        row = await runtime.host_keys.accept(
            data.host, data.port, data.fingerprint, principal.username
        )
        await runtime.ssh.call(runtime.ssh.drop_host(data.host, data.port))
        return _host_key_info(row)

    @get("/pool", summary="The SSH connection pool's counters in this process (platform admins)")
    async def pool_stats(self, principal: Caller, runtime: RuntimeDep) -> dict[str, int]:
        _require_platform_admin(principal)
        stats = runtime.ssh.stats
        return {
            "connections_opened": stats.connections_opened,
            "open_connections": stats.open_connections,
            "channels_opened": stats.channels_opened,
            "reconnects": stats.reconnects,
        }


async def _send_error(socket: WebSocket[Any, Any, Any], exc: CorralError) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await socket.send_text(
            json.dumps(
                {
                    "type": "error",
                    "status": exc.status,
                    "reason": exc.reason,
                    "message": exc.message,
                }
            )
        )
        await socket.close(code=4000 + exc.status, reason=exc.reason[:100])


@websocket("/api/ssh/connect", summary="Relay an SSH session or stream (see corral ssh)")
async def ssh_connect(
    socket: WebSocket[Any, Any, Any],
    target: Annotated[str, QueryParameter(name="target", min_length=1, max_length=600)],
    mode: Annotated[str, QueryParameter(name="mode")] = "exec",
    command: Annotated[str | None, QueryParameter(name="command", max_length=65536)] = None,
    term: Annotated[str | None, QueryParameter(name="term", max_length=64)] = None,
    cols: Annotated[int, QueryParameter(name="cols", ge=1, le=1000)] = 80,
    rows: Annotated[int, QueryParameter(name="rows", ge=1, le=1000)] = 24,
    host: Annotated[str | None, QueryParameter(name="host", max_length=255)] = None,
    port: Annotated[int | None, QueryParameter(name="port", ge=1, le=65535)] = None,
) -> None:
    runtime: Runtime = socket.app.state.runtime
    principal = socket.scope.get("user")
    await socket.accept()
    try:
        if not isinstance(principal, Principal):
            raise PermissionDenied("sign in first")
        if mode not in ("exec", "tcp"):
            raise Invalid("mode must be exec or tcp", field="mode")
        ref = ResourceRef.parse(target, principal.username, "target")
        cluster = await runtime.clusters.require(principal, ref, "login")
        if cluster.observed_state != "active":
            raise Conflict(
                f"{ref.uri} is {cluster.observed_state}: start it first",
                reason="cluster-not-active",
            )
        runner = await runtime.clusters.runner(cluster, principal.username)
        if mode == "exec":
            process = await runner.open_process(
                command, term=term, size=(cols, rows) if term else None
            )
            await _relay_process(socket, process)
            return
        endpoint = runner.endpoint
        if host is not None:
            stream = await runner.open_stream(host, port or 22)
        elif endpoint.jump is not None:
            stream = await SSHRunner(runtime.ssh, runner.identity, endpoint.jump).open_stream(
                endpoint.host, port or endpoint.port
            )
        else:
            stream = await _direct_stream(runtime, endpoint.host, port or endpoint.port)
        await _relay_stream(socket, stream)
    except CorralError as exc:
        await _send_error(socket, exc)


async def _pump_client(
    socket: WebSocket[Any, Any, Any],
    on_data: Any,
    on_text: Any,
) -> None:
    while True:
        message = await socket.receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("bytes") is not None:
            await on_data(message["bytes"])
        elif message.get("text") is not None:
            await on_text(message["text"])


async def _relay_process(socket: WebSocket[Any, Any, Any], process: RemoteProcess) -> None:
    async def on_text(text: str) -> None:
        try:
            control = json.loads(text)
        except ValueError:
            return
        if control.get("type") == "resize":
            await process.resize(int(control.get("cols", 80)), int(control.get("rows", 24)))
        elif control.get("type") == "eof":
            await process.write_eof()

    async def to_client() -> None:
        async for stream, data in process.output():
            await socket.send_bytes((STDOUT if stream == "stdout" else STDERR) + data)
        status = await process.wait()
        await socket.send_text(json.dumps({"type": "exit", "status": status}))
        await socket.close()

    from_client = asyncio.ensure_future(_pump_client(socket, process.write, on_text))
    try:
        await to_client()
    except WebSocketDisconnect:
        pass
    finally:
        from_client.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, CorralError):
            await from_client
        await process.close()


async def _relay_stream(socket: WebSocket[Any, Any, Any], stream: RemoteStream | Any) -> None:
    async def ignore(_: str) -> None:
        return None

    async def to_client() -> None:
        while data := await stream.read(CHUNK):
            await socket.send_bytes(data)
        await socket.close()

    from_client = asyncio.ensure_future(_pump_client(socket, stream.write, ignore))
    sender = asyncio.ensure_future(to_client())
    try:
        await asyncio.wait({from_client, sender}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (from_client, sender):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
        with contextlib.suppress(Exception):
            await stream.close()


class _DirectStream:
    """A plain TCP connection from the Corral host (no jump host in the way)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, n: int) -> bytes:
        return await self._reader.read(n)

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()


async def _direct_stream(runtime: Runtime, host: str, port: int) -> _DirectStream:
    try:
        async with asyncio.timeout(runtime.settings.ssh.connect_timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no answer"
        raise TransportError(
            f"cannot reach {host}:{port}: {why}",
            reason="unreachable",
        ) from None
    return _DirectStream(reader, writer)
