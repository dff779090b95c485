"""Pytest fixtures for testing the kernel and everything built on it, in either mode.

The mode comes from the test environment, and reaches the code under test as settings only:

- embedded (default): a fresh SQLite database under the test's temporary directory and the
  in-process broker;
- distributed: ``CORRAL_TEST_POSTGRES_URL`` (a server where tests may create databases) and
  ``CORRAL_TEST_REDIS_URL``; every test gets its own database and its own broker namespace.

It is a pytest plugin, registered through the ``pytest11`` entry point of ``corral-core``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from corral_core.settings import Settings, load_settings

__all__ = [
    "ADMIN_PASSWORD",
    "ADMIN_USERNAME",
    "CorralProcess",
    "OpenSSHServer",
    "TestDeployment",
    "api_key",
    "free_port",
    "git_repository",
    "install_distribution",
    "test_mode",
]

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "Corral-test-admin-Passw0rd!"  # noqa: S105 - a test deployment's
"""The platform admin every test deployment bootstraps."""
POSTGRES_ENV = "CORRAL_TEST_POSTGRES_URL"
REDIS_ENV = "CORRAL_TEST_REDIS_URL"


def test_mode() -> str:
    return "distributed" if os.environ.get(POSTGRES_ENV) else "embedded"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TestDeployment:
    """One isolated Corral deployment: its settings as ``CORRAL_*`` variables."""

    __test__ = False  # not a test class

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.mode = test_mode()
        self.database_name: str | None = None
        self.env: dict[str, str] = {
            "CORRAL_DATA_DIR": str(self.data_dir),
            "CORRAL_STRICT_PLUGINS": os.environ.get("CORRAL_STRICT_PLUGINS", "0"),
            "CORRAL_RECONCILE_SWEEP_INTERVAL": "1",
            "CORRAL_RECONCILE_LEASE_SECONDS": "3",
            "CORRAL_RECONCILE_RETRY_BACKOFF": "0.5",
            "CORRAL_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USERNAME,
            "CORRAL_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        if self.mode == "distributed":
            self._create_database()
            redis_url = os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0")
            self.env["CORRAL_BROKER_URL"] = redis_url
            self.env["CORRAL_BROKER_NAMESPACE"] = f"corral-test-{uuid.uuid4().hex[:10]}"
            self.env["CORRAL_SECRETS_KEY"] = "x" * 43 + "="

    def _admin_url(self) -> str:
        url = os.environ[POSTGRES_ENV]
        return url.replace("postgresql+psycopg://", "postgresql://")

    def _create_database(self) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        self.database_name = f"corral_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database_name}"')
        url = make_url(os.environ[POSTGRES_ENV]).set(database=self.database_name)
        self.env["CORRAL_DATABASE_URL"] = url.render_as_string(hide_password=False)

    def settings(self, **env: str) -> Settings:
        return load_settings(None, {**self.env, **env})

    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a Corral subprocess: this deployment's settings only."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        base.pop("PW_PLATFORM_HOST", None)
        return {**base, **self.env, **(extra or {})}

    def close(self) -> None:
        if self.database_name:
            import psycopg

            with psycopg.connect(self._admin_url(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')


class CorralProcess:
    """A ``corral`` command running as a real subprocess."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "corral_sdk.cli.main", *args],
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"corral {self.args} exited early:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout}s:\n{self.output()}")

    def wait_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"corral {self.args} exited early:\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not printed within {timeout}s:\n{self.output()}")

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to end by itself; returns its exit code."""
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup runs."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode


class OpenSSHServer:
    """OpenSSH's sshd as a process of the caller's, on a loopback port: a throwaway host key,
    sign-in with the ``authorized_keys`` given only, as the user running it (so it needs no
    root), TCP forwarding allowed. ``path`` comes first on the ``PATH`` of what it runs."""

    SSHD = "/usr/sbin/sshd"

    def __init__(
        self, directory: Path, authorized_keys: list[str], *, path: tuple[Path, ...] = ()
    ) -> None:
        import getpass

        self.directory = directory
        self.username = getpass.getuser()
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / "host_key")],
            check=True,
        )
        self.host_key = (directory / "host_key.pub").read_text().strip()
        (directory / "authorized_keys").write_text(
            "".join(f"{k.strip()}\n" for k in authorized_keys)
        )
        search = ":".join([*map(str, path), "/usr/local/bin", "/usr/bin", "/bin"])
        (directory / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {directory}/host_key\n"
            f"PidFile none\nAuthorizedKeysFile {directory}/authorized_keys\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"AllowTcpForwarding yes\nSetEnv PATH={search}\n"
        )
        self._log = (directory / "sshd.log").open("ab")
        self.proc = subprocess.Popen(
            [self.SSHD, "-D", "-e", "-f", str(directory / "sshd_config")],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its connections' processes too, to end them with it
        )
        deadline = time.monotonic() + 20
        while not self._serving():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"sshd did not start:\n{self.output()}")
            time.sleep(0.05)

    def _serving(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                return conn.recv(4) == b"SSH-"
        except OSError:
            return False

    def output(self) -> str:
        return (self.directory / "sshd.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop sshd and end the connections it serves."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)
        self._log.close()


def git_repository(path: Path, files: Mapping[str, str], branch: str = "main") -> Path:
    """A git repository at ``path`` with one commit of ``files`` (path: text) on ``branch``:
    what the checkout action fetches in tests (nothing here reaches a network)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    author = {"GIT_AUTHOR_NAME": "Corral tests", "GIT_AUTHOR_EMAIL": "tests@corral.invalid"}
    env = {
        **author,
        "GIT_COMMITTER_NAME": author["GIT_AUTHOR_NAME"],
        "GIT_COMMITTER_EMAIL": author["GIT_AUTHOR_EMAIL"],
        "HOME": str(path),
        "PATH": os.environ.get("PATH", os.defpath),
    }
    for command in (["init", "-q", "-b", branch], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", *command], cwd=path, env=env, check=True, capture_output=True)
    return path


def api_key(base_url: str, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD) -> str:
    """Sign in to a running Corral and create an API key (for CLI runs and HTTP calls)."""
    import httpx

    with httpx.Client(base_url=base_url, timeout=30) as client:
        login = client.post("/api/auth/login", json={"username": username, "password": password})
        login.raise_for_status()
        created = client.post("/api/auth/apikeys", json={"name": "tests"})
        created.raise_for_status()
        secret: str = created.json()["secret"]
        return secret


def install_distribution(
    target: Path,
    name: str,
    version: str,
    files: Mapping[str, str],
    *,
    entry_points: str = "",
    requires: tuple[str, ...] = (),
) -> Path:
    """Build a real wheel from ``files`` and install it into ``target`` with ``uv pip``.

    Put ``target`` on ``PYTHONPATH`` and the distribution, with its entry points, is installed
    as far as ``importlib.metadata`` and the kernel can tell.
    """
    dist = name.replace("-", "_")
    wheel = target.parent / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    metadata = "\n".join(
        ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        + [f"Requires-Dist: {r}" for r in requires]
    )
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/METADATA", metadata + "\n")
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: corral-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n",
        )
        if entry_points:
            archive.writestr(f"{info}/entry_points.txt", entry_points)
        record = [f"{p},," for p in [*files, f"{info}/METADATA", f"{info}/WHEEL"]]
        if entry_points:
            record.append(f"{info}/entry_points.txt,,")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[TestDeployment]:
    """A fresh, isolated deployment in the suite's mode (embedded or distributed)."""
    deploy = TestDeployment(tmp_path)
    try:
        yield deploy
    finally:
        deploy.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_report_header(config: Any) -> str:
    return f"corral test mode: {test_mode()}"
