"""A :class:`~corral_sdk.transport.CommandRunner` running commands in a real local shell, with
stand-in programs first on the ``PATH``: the shell semantics of a provider's commands (quoting,
standard input, prefixes) without the real scheduler."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from corral_sdk.errors import ProviderError, Timeout
from corral_sdk.transport import CommandResult

__all__ = ["ShellRunner", "shell_runner"]


class ShellRunner:
    """Runs commands with ``shell -c`` in ``home`` (which is also ``$HOME``), with the programs
    of ``bin_dir`` first on the ``PATH``, then ``path`` (by default this process's ``PATH``).
    Only ``run``; ``results`` keeps every command run and what it ended with."""

    def __init__(self, shell: str, home: Path, bin_dir: Path, *, path: str | None = None) -> None:
        self.shell = shell
        self.home = home
        self.bin_dir = bin_dir
        self.path = path
        self.target = f"{shell} in {home.name}"
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
        process = await asyncio.create_subprocess_exec(
            self.shell,
            "-c",
            command,
            cwd=self.home,
            env={
                "PATH": ":".join(
                    p
                    for p in (
                        str(self.bin_dir),
                        os.environ["PATH"] if self.path is None else self.path,
                    )
                    if p
                ),
                "HOME": str(self.home),
                "LANG": "C.UTF-8",
                **(env or {}),
            },
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(input.encode() if input is not None else None), timeout or 60
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise Timeout(f"{command!r} did not finish within {timeout or 60} s") from None
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


def shell_runner(shell: str, directory: Path, programs: Mapping[str, str]) -> ShellRunner:
    """A runner whose home is ``directory/home`` and whose ``PATH`` starts with
    ``directory/bin`` holding ``programs`` (name: script text), executable."""
    home, bin_dir = directory / "home", directory / "bin"
    home.mkdir()
    bin_dir.mkdir()
    for name, text in programs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return ShellRunner(shell, home, bin_dir)
