"""A runner that runs commands in a local shell, as the kernel's runner does on a target, with
``HOME`` a directory of the test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from corral_sdk.errors import ProviderError, Timeout
from corral_sdk.transport import CommandResult


class LocalRunner:
    """Runs every command with ``/bin/sh -c`` in ``home`` (also ``$HOME``); ``path`` replaces
    the ``PATH`` (by default this process's). Only ``run``: all the desktop uses."""

    def __init__(self, home: Path, *, path: str | None = None) -> None:
        self.home = home
        self.path = path if path is not None else os.environ["PATH"]
        self.target = f"local shell in {home}"
        self.results: list[CommandResult] = []

    async def run(
        self,
        command: str,
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> CommandResult:
        environment = {"PATH": self.path, "HOME": str(self.home), "LANG": "C.UTF-8"}
        environment.update(env or {})
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=self.home,
            env=environment,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(input.encode() if input is not None else None), timeout
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise Timeout(f"{command!r} did not finish within {timeout} s") from None
        assert process.returncode is not None
        result = CommandResult(
            command=command,
            exit_status=process.returncode,
            stdout=stdout.decode(),
            stderr=stderr.decode(),
        )
        self.results.append(result)
        if check and not result.ok:
            raise ProviderError(f"{command!r} failed: {result.stderr}")
        return result
