"""A :class:`~corral_sdk.transport.CommandRunner` on the Corral host itself: commands run with
``bash -c`` in a user's workspace (their ``~``), with the workspace's environment. Workflow
actions get one when their step runs in the workspace (``ssh: null``), as they get the pooled
SSH runner when it runs on a cluster."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from corral_sdk.errors import ProviderError, Timeout
from corral_sdk.transport import CommandResult, Forward, OutputChunk

__all__ = ["LocalRunner"]


class _LocalForward:
    def __init__(self, server: asyncio.Server, port: int) -> None:
        self._server = server
        self._port = port

    @property
    def local_port(self) -> int:
        return self._port

    async def close(self) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()


class LocalRunner:
    """Runs commands on this machine in ``root`` (also ``$HOME``) with ``environment``."""

    def __init__(
        self, root: Path, environment: Mapping[str, str], shell: str = "/bin/bash"
    ) -> None:
        self.root = root
        self.environment = {**environment, "HOME": str(root)}
        self.shell = shell

    @property
    def target(self) -> str:
        return f"the workspace {self.root}"

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {**self.environment, **(env or {})}

    async def _start(
        self, command: str, env: Mapping[str, str] | None, stdin: int, stderr: int
    ) -> asyncio.subprocess.Process:
        """``command`` through the shell in the workspace, in a process group of its own (a
        timeout or a cancel kills all of it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return await asyncio.create_subprocess_exec(
            self.shell, "-c", command, cwd=self.root, env=self._env(env),
            stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=stderr, start_new_session=True,
        )  # fmt: skip

    async def run(
        self,
        command: str,
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> CommandResult:
        process = await self._start(command, env, asyncio.subprocess.PIPE, asyncio.subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(input.encode() if input is not None else None), timeout
            )
        except (TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            await process.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise Timeout(
                f"{command.splitlines()[0][:80]!r} did not finish in {timeout} s"
            ) from None
        assert process.returncode is not None
        result = CommandResult(
            command=command,
            exit_status=process.returncode,
            stdout=stdout.decode(errors="replace"),
            stderr=stderr.decode(errors="replace"),
        )
        if check and not result.ok:
            raise ProviderError(
                f"{command.splitlines()[0][:80]!r} exited {result.exit_status}: "
                f"{result.stderr.strip()[-2000:]}"
            )
        return result

    async def stream(
        self, command: str, *, env: Mapping[str, str] | None = None
    ) -> AsyncIterator[OutputChunk]:
        process = await self._start(
            command, env, asyncio.subprocess.DEVNULL, asyncio.subprocess.STDOUT
        )
        assert process.stdout is not None
        try:
            while chunk := await process.stdout.read(65536):
                yield OutputChunk(stream="stdout", data=chunk.decode(errors="replace"))
            yield OutputChunk(stream="exit", exit_status=await process.wait())
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                await process.wait()

    def _path(self, path: str) -> Path:
        if path == "~" or path.startswith("~/"):
            return self.root / path[2:]
        return Path(path) if os.path.isabs(path) else self.root / path

    async def put(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        path = self._path(remote_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)

    async def get(self, remote_path: str) -> bytes:
        try:
            return self._path(remote_path).read_bytes()
        except OSError as exc:
            raise ProviderError(f"cannot read {remote_path} in the workspace: {exc}") from None

    async def forward(self, remote_host: str, remote_port: int, *, local_port: int = 0) -> Forward:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    remote_host, remote_port
                )
            except OSError:
                writer.close()
                return
            await asyncio.gather(
                pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
            )

        server = await asyncio.start_server(handle, "127.0.0.1", local_port, family=socket.AF_INET)
        port = server.sockets[0].getsockname()[1]
        return _LocalForward(server, port)
