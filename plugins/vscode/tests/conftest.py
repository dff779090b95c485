"""The vscode tests' fixtures: the anyio backend, a real code-server, and no server left
running after a test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from vscode_testkit import INSTALL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def code_server() -> Path:
    """A real code-server: contrib/lab/vscode.sh installs it from npm when it is missing (a
    minute or two, once); it needs root or sudo, Node.js 20, npm and Debian's apt."""
    done = subprocess.run(
        ["bash", str(INSTALL)], capture_output=True, text=True, timeout=1200, check=False
    )
    if done.returncode != 0:
        raise AssertionError(
            f"contrib/lab/vscode.sh could not install code-server:\n{done.stderr[-4000:]}"
        )
    found = dict(
        line.split("=", 1) for line in done.stdout.splitlines() if line.startswith("CORRAL_")
    )
    return Path(found["CORRAL_LAB_CODE_SERVER"])


@pytest.fixture(autouse=True)
def no_server_left(tmp_path: Path) -> Iterator[None]:
    """Whatever a test leaves running (it failed before its stop) is killed after it."""
    yield
    for pid_file in tmp_path.glob("home/.corral/sessions/*/pid"):
        with contextlib.suppress(ValueError, OSError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
