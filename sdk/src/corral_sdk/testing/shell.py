"""A :class:`~corral_sdk.transport.CommandRunner` running commands in a real local shell, with
stand-in programs first on the ``PATH``: the shell semantics of a provider's commands (quoting,
standard input, prefixes) without the real scheduler."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from corral_sdk.transport import CommandResult

__all__ = ["ShellRunner", "shell_runner"]


class ShellRunner:
    """Runs commands with ``shell -c`` in ``home`` (which is also ``$HOME``), with the programs
    of ``bin_dir`` first on the ``PATH``. Only ``run``; ``results`` keeps every command run and
    what it ended with."""

    def __init__(self, shell: str, home: Path, bin_dir: Path) -> None:
        self.shell = shell
        self.home = home
        self.bin_dir = bin_dir
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
            env={"PATH": f"{self.bin_dir}:{os.environ['PATH']}", "HOME": str(self.home)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(
            process.communicate(input.encode() if input is not None else None), 30
        )
        assert process.returncode is not None
        result = CommandResult(
            command=command,
            exit_status=process.returncode,
            stdout=stdout.decode(),
            stderr=stderr.decode(),
        )
        self.results.append(result)
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
