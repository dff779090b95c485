"""The SSH :class:`~corral_sdk.transport.CommandRunner`: commands, files, forwards and streams over
the pooled connection of one identity to one endpoint."""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncssh

from corral_core.ssh.forward import SSHForward
from corral_core.ssh.pool import PooledConnection, SSHEndpoint, SSHIdentity, SSHPool
from corral_sdk.errors import Invalid, NotFound, ProviderError, Timeout, TransportError
from corral_sdk.transport import CommandResult, OutputChunk

__all__ = ["RemoteProcess", "RemoteStream", "SSHRunner"]

T = TypeVar("T")

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Failures that mean the channel never opened, so the command did not start: safe to retry.
_NOT_STARTED = (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, asyncssh.DisconnectError)


def with_env(command: str, env: Mapping[str, str] | None) -> str:
    """Prefix exports rather than use SSH's env requests, which sshd drops unless AcceptEnv."""
    if not env:
        return command
    for name in env:
        if not ENV_NAME.match(name):
            raise Invalid(f"environment variable name {name!r} is not valid", field="env")
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    return f"export {exports}; {command}"


def _home_relative(path: str) -> str:
    """Paths are relative to the login directory; ``~/x`` is accepted and means the same."""
    if path == "~":
        return "."
    return path[2:] if path.startswith("~/") else path


class SSHRunner:
    """Runs commands as ``identity`` at ``endpoint``; cheap to make, shares a pooled connection."""

    def __init__(self, pool: SSHPool, identity: SSHIdentity, endpoint: SSHEndpoint) -> None:
        self.pool = pool
        self.identity = identity
        self.endpoint = endpoint

    @property
    def target(self) -> str:
        return str(self.endpoint)

    async def connect(self) -> None:
        """Open (or reuse) the connection now, so its errors surface before any command."""
        await self.pool.call(self.pool.connection(self.identity, self.endpoint))

    async def _with_channel(self, use: Callable[[PooledConnection], Awaitable[T]], what: str) -> T:
        """Run ``use`` with a channel slot on a live connection; reopen once if the pooled one
        turned out dead before anything started."""
        for attempt in (1, 2):
            pooled = await self.pool.connection(self.identity, self.endpoint, fresh=attempt == 2)
            async with pooled.channels:
                try:
                    self.pool.stats.channels_opened += 1
                    return await use(pooled)
                except _NotStarted as exc:
                    self.pool.discard(self.identity, self.endpoint, pooled)
                    if attempt == 2:
                        raise TransportError(
                            f"{self.target} closed the connection before {what} could start: "
                            f"{exc.reason}",
                            reason="connection-lost",
                            retryable=True,
                        ) from None
                except (asyncssh.ConnectionLost, asyncssh.DisconnectError, BrokenPipeError) as exc:
                    self.pool.discard(self.identity, self.endpoint, pooled)
                    raise TransportError(
                        f"the connection to {self.target} dropped during {what}; it is reopened "
                        "on the next call",
                        reason="connection-lost",
                        retryable=True,
                        log_message=f"{what} on {self.target}: {exc!r}",
                    ) from None
        raise AssertionError("unreachable")

    async def _open_process(
        self, pooled: PooledConnection, command: str, **kwargs: Any
    ) -> asyncssh.SSHClientProcess[Any]:
        try:
            async with asyncio.timeout(self.pool.settings.connect_timeout):
                return await pooled.conn.create_process(command, **kwargs)
        except (*_NOT_STARTED, TimeoutError) as exc:
            raise _NotStarted(getattr(exc, "reason", "") or "no answer") from None

    async def home(self) -> str:
        """The login directory on the target (asked once per connection)."""

        async def ask() -> str:
            pooled = await self.pool.connection(self.identity, self.endpoint)
            if pooled.home is None:
                result = await self.run('printf %s "$HOME"', check=True)
                pooled.home = result.stdout.strip() or "."
            return pooled.home

        return await self.pool.call(ask())

    # --- CommandRunner --------------------------------------------------------------------------

    async def run(
        self,
        command: str,
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> CommandResult:
        full = with_env(command, env)
        result = await self._run_bytes(
            full, None if input is None else input.encode(), timeout, short=command
        )
        out = CommandResult(
            command=command,
            exit_status=result[0],
            stdout=result[1].decode(errors="replace"),
            stderr=result[2].decode(errors="replace"),
        )
        if check and not out.ok:
            raise ProviderError(
                f"`{_short(command)}` failed on {self.target} (exit {out.exit_status}): "
                f"{out.stderr.strip() or out.stdout.strip() or 'no output'}",
                reason="command-failed",
            )
        return out

    async def _run_bytes(
        self, command: str, stdin: bytes | None, timeout: float | None, *, short: str
    ) -> tuple[int, bytes, bytes]:
        bound = timeout if timeout is not None else self.pool.settings.command_timeout

        async def use(pooled: PooledConnection) -> tuple[int, bytes, bytes]:
            process = await self._open_process(pooled, command, encoding=None)
            try:
                async with asyncio.timeout(bound):
                    stdout, stderr = await process.communicate(stdin)
            except TimeoutError:
                process.close()
                raise Timeout(
                    f"`{_short(short)}` on {self.target} did not finish within {bound:g} s",
                    retryable=True,
                ) from None
            if process.exit_status is None and process.exit_signal is None:
                raise asyncssh.ConnectionLost("the channel closed without an exit status")
            return _exit_status(process), bytes(stdout or b""), bytes(stderr or b"")

        return await self.pool.call(self._with_channel(use, f"`{_short(short)}`"))

    async def stream(
        self, command: str, *, env: Mapping[str, str] | None = None
    ) -> AsyncIterator[OutputChunk]:
        process = await self.open_process(with_env(command, env))
        try:
            async for stream, data in process.output():
                yield OutputChunk(stream=stream, data=data.decode(errors="replace"))
            yield OutputChunk(stream="exit", exit_status=await process.wait())
        finally:
            await process.close()

    async def put(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        path = shlex.quote(_home_relative(remote_path))
        command = f'mkdir -p -- "$(dirname -- {path})" && cat > {path} && chmod {mode:o} -- {path}'
        status, _, stderr = await self._run_bytes(command, data, None, short=f"write {path}")
        if status != 0:
            raise ProviderError(
                f"cannot write {remote_path} on {self.target}: "
                f"{stderr.decode(errors='replace').strip()}",
                reason="write-failed",
            )

    async def get(self, remote_path: str) -> bytes:
        path = shlex.quote(_home_relative(remote_path))
        status, stdout, stderr = await self._run_bytes(
            f"cat -- {path}", None, None, short=f"read {path}"
        )
        if status != 0:
            message = stderr.decode(errors="replace").strip()
            if "No such file" in message:
                raise NotFound(f"{remote_path} does not exist on {self.target}")
            raise ProviderError(
                f"cannot read {remote_path} on {self.target}: {message}", reason="read-failed"
            )
        return stdout

    async def forward(
        self, remote_host: str, remote_port: int, *, local_port: int = 0
    ) -> SSHForward:
        forward = SSHForward(self.pool, self.identity, self.endpoint, remote_host, remote_port)
        return await self.pool.call(forward.open(local_port))

    # --- beyond the protocol: interactive processes and raw streams (the `corral ssh` relay) ----

    async def open_process(
        self, command: str | None, *, term: str | None = None, size: tuple[int, int] | None = None
    ) -> RemoteProcess:
        """Start ``command`` (or a login shell) with a pty when ``term`` is given."""

        async def start() -> RemoteProcess:
            pooled = await self.pool.connection(self.identity, self.endpoint)
            await pooled.channels.acquire()
            try:
                self.pool.stats.channels_opened += 1
                kwargs: dict[str, Any] = {"encoding": None}
                if term:
                    kwargs.update(term_type=term, term_size=size or (80, 24))
                process = await self._open_process(pooled, command or "", **kwargs)
            except BaseException:
                pooled.channels.release()
                raise
            return RemoteProcess(self.pool, process, pooled.channels.release)

        try:
            return await self.pool.call(start())
        except _NotStarted as exc:
            raise TransportError(
                f"{self.target} refused a new session: {exc.reason}", reason="connection-lost"
            ) from None

    async def open_stream(self, host: str, port: int) -> RemoteStream:
        """A TCP stream to ``host:port`` as seen from this endpoint (a direct-tcpip channel)."""

        async def start() -> RemoteStream:
            pooled = await self.pool.connection(self.identity, self.endpoint)
            try:
                reader, writer = await pooled.conn.open_connection(host, port)
            except asyncssh.ChannelOpenError as exc:
                raise TransportError(
                    f"{self.target} cannot open a connection to {host}:{port}: {exc.reason}",
                    reason="forward-refused",
                ) from None
            return RemoteStream(self.pool, reader, writer)

        return await self.pool.call(start())


class _NotStarted(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RemoteProcess:
    """A process on the far side, driven from any event loop."""

    def __init__(
        self, pool: SSHPool, process: asyncssh.SSHClientProcess[Any], release: Callable[[], None]
    ) -> None:
        self._pool, self._process, self._release = pool, process, release
        self._closed = False

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """``("stdout" | "stderr", data)`` as produced, until both streams end."""
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        caller = asyncio.get_running_loop()

        async def pump(name: str, reader: asyncssh.SSHReader[bytes]) -> None:
            while data := await reader.read(65536):
                caller.call_soon_threadsafe(queue.put_nowait, (name, data))

        async def pump_both() -> None:
            try:
                await asyncio.gather(
                    pump("stdout", self._process.stdout), pump("stderr", self._process.stderr)
                )
            except (asyncssh.Error, OSError):
                pass  # the process or the connection ended; wait() tells the status
            finally:
                caller.call_soon_threadsafe(queue.put_nowait, None)

        task = asyncio.ensure_future(self._pool.call(pump_both()))
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            task.cancel()

    async def write(self, data: bytes) -> None:
        async def send() -> None:
            self._process.stdin.write(data)
            await self._process.stdin.drain()

        await self._pool.call(send())

    async def write_eof(self) -> None:
        async def eof() -> None:
            self._process.stdin.write_eof()

        await self._pool.call(eof())

    async def resize(self, cols: int, rows: int) -> None:
        async def change() -> None:
            self._process.change_terminal_size(cols, rows)

        await self._pool.call(change())

    async def wait(self) -> int:
        async def done() -> int:
            await self._process.wait_closed()
            return _exit_status(self._process)

        return await self._pool.call(done())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def close() -> None:
            try:
                self._process.close()
                await self._process.wait_closed()
            finally:
                self._release()

        await self._pool.call(close())


class RemoteStream:
    """A byte stream through the SSH connection, driven from any event loop."""

    def __init__(
        self, pool: SSHPool, reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]
    ) -> None:
        self._pool, self._reader, self._writer = pool, reader, writer

    async def read(self, n: int = 65536) -> bytes:
        return await self._pool.call(self._reader.read(n))

    async def write(self, data: bytes) -> None:
        async def send() -> None:
            self._writer.write(data)
            await self._writer.drain()

        await self._pool.call(send())

    async def close(self) -> None:
        async def close() -> None:
            self._writer.close()

        await self._pool.call(close())


def _exit_status(process: asyncssh.SSHClientProcess[Any]) -> int:
    if process.exit_status is not None and process.exit_status >= 0:
        return int(process.exit_status)
    signal = process.exit_signal
    if signal is not None:
        return 128 + _SIGNALS.get(signal[0], 0)
    return 255  # like OpenSSH's client when the connection ends without a status


_SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "SEGV": 11, "PIPE": 13, "TERM": 15}


def _short(command: str, limit: int = 80) -> str:
    line = command.strip().splitlines()[0] if command.strip() else command
    return line if len(line) <= limit else line[: limit - 1] + "…"
