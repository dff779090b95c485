"""The transport protocol: the only way providers touch machines.

The kernel implements :class:`CommandRunner` over asyncssh (pooled connections, jump hosts,
keepalives, host-key pinning) and over local subprocesses; the test kit adds a transcript runner
that replays recorded output. Providers never open connections themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["CommandResult", "CommandRunner", "Forward", "OutputChunk"]


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """A finished command."""

    command: str
    exit_status: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class OutputChunk(msgspec.Struct, frozen=True, kw_only=True):
    """Part of a streamed command's output; the last chunk carries the exit status."""

    stream: str  # "stdout" | "stderr" | "exit"
    data: str = ""
    exit_status: int | None = None


class Forward(Protocol):
    """An open port forward; closing it stops listening."""

    @property
    def local_port(self) -> int: ...

    async def close(self) -> None: ...


@runtime_checkable
class CommandRunner(Protocol):
    """Runs commands on one machine (a cluster's login node, a local host)."""

    @property
    def target(self) -> str:
        """A human-readable name of the machine, for messages (``user@host:port``)."""
        ...

    async def run(
        self,
        command: str,
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> CommandResult:
        """Run ``command`` through the target's shell and wait for it.

        With ``check=True`` a non-zero exit raises ``ProviderError`` with the command's stderr.
        ``timeout`` bounds the whole call and raises ``corral_sdk.errors.Timeout``.
        """
        ...

    def stream(
        self, command: str, *, env: Mapping[str, str] | None = None
    ) -> AsyncIterator[OutputChunk]:
        """Run ``command`` and yield its output as it is produced, then its exit status."""
        ...

    async def put(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        """Write ``data`` to ``remote_path`` on the target, creating parent directories."""
        ...

    async def get(self, remote_path: str) -> bytes:
        """Read a file from the target."""
        ...

    async def forward(self, remote_host: str, remote_port: int, *, local_port: int = 0) -> Forward:
        """Listen on a local port and forward connections to ``remote_host:remote_port`` as seen
        from the target."""
        ...
