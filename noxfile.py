"""Corral's checks: `uv run nox` runs them all, as CI does.

- `lint`, `typecheck`: ruff and mypy (strict on sdk/ and core/).
- `sdk`, `core(mode)`, `api(mode)`, `plugins(plugin)`: each package's tests in an environment
  holding only that package and its declared dependencies, so an undeclared cross-package import
  fails.
- `integration(mode)`: cross-package tests in tests/ (real `corral` processes, real plugins).
- `docs`: the generated reference is current and the site builds.
- `bench` (not by default): the benchmarks in bench/.

`mode` is `embedded` (SQLite, in-process broker) or `distributed` (PostgreSQL and Redis, which
contrib/lab/services.sh installs and starts when they are missing).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typecheck", "sdk", "core", "api", "plugins", "integration", "docs"]

ROOT = Path(__file__).parent
PLUGINS = sorted(path.name for path in (ROOT / "plugins").iterdir() if (path / "tests").is_dir())
MODES = ["embedded", "distributed"]
PYTEST = ["pytest", "-p", "no:cacheprovider"]
PARALLEL = ["-n", "2"]
"""For the kernel's and the API's tests: each has its own database, broker namespace and ports,
and most of their time is spent waiting, so two workers take about two thirds of the time."""


def _sync(session: nox.Session, *args: str) -> None:
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": str(session.virtualenv.location)},
        external=True,
    )


def install_package(session: nox.Session, package: str) -> None:
    """Only ``package``, its dependencies and its test group."""
    _sync(session, "--package", package, "--no-default-groups", "--group", "test")


def install_workspace(session: nox.Session) -> None:
    _sync(session, "--all-packages")


_services: dict[str, str] = {}


def mode_env(session: nox.Session, mode: str) -> dict[str, str]:
    """Settings for the tests of ``mode``; the tests pass them to Corral as settings only."""
    env = {"CORRAL_STRICT_PLUGINS": "1"}
    if mode == "embedded":
        return {**env, "CORRAL_TEST_POSTGRES_URL": "", "CORRAL_TEST_REDIS_URL": ""}
    if not _services:
        output = subprocess.run(
            ["bash", str(ROOT / "contrib" / "lab" / "services.sh")],
            check=True,
            capture_output=True,
            text=True,
        )
        session.log(output.stderr.strip() or "PostgreSQL and Redis are running")
        for line in output.stdout.splitlines():
            key, _, value = line.partition("=")
            _services[key] = value
    return {**env, **_services}


@nox.session
def lint(session: nox.Session) -> None:
    install_workspace(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    install_workspace(session)
    session.run("mypy")


@nox.session
def sdk(session: nox.Session) -> None:
    install_package(session, "corral-sdk")
    session.run(*PYTEST, "sdk/tests", *session.posargs, env={"CORRAL_STRICT_PLUGINS": "1"})


@nox.session
@nox.parametrize("mode", MODES)
def core(session: nox.Session, mode: str) -> None:
    install_package(session, "corral-core")
    session.run(*PYTEST, *PARALLEL, "core/tests", *session.posargs, env=mode_env(session, mode))


@nox.session
@nox.parametrize("mode", MODES)
def api(session: nox.Session, mode: str) -> None:
    install_package(session, "corral-api")
    session.run(*PYTEST, *PARALLEL, "api/tests", *session.posargs, env=mode_env(session, mode))


@nox.session
@nox.parametrize("plugin", PLUGINS)
def plugins(session: nox.Session, plugin: str) -> None:
    """Each plugin alone with the SDK (its conformance suite runs against transcripts)."""
    install_package(session, f"corral-{plugin}")
    session.run(
        *PYTEST, f"plugins/{plugin}/tests", *session.posargs, env={"CORRAL_STRICT_PLUGINS": "1"}
    )


BACKEND_INDEPENDENT = [
    "tests/test_sessions_lab.py",
    "tests/test_slurm_conformance_lab.py",
    "tests/test_docs.py",
    "tests/test_plugin_discovery.py",
    "tests/test_aws_cloud.py",
    "tests/test_storage_buckets.py",
    "tests/test_cli_marketplace.py",
]
"""Cross-package tests whose subject does not change with the database and broker (sessions in
a browser over SSH, the Slurm plugin against the lab, the docs, plugin discovery, the AWS plugin
on its EC2 stand-in, bucket copies with the CLI, the marketplace CLI; the kernel's reconcilers
they drive run in both modes in core/, api/ and the local cloud's tests): run in the embedded
mode only, which keeps CI under its 40 minutes on 2 cores."""


@nox.session
@nox.parametrize("mode", MODES)
def integration(session: nox.Session, mode: str) -> None:
    install_workspace(session)
    skipped = [f"--ignore={path}" for path in BACKEND_INDEPENDENT] if mode == "distributed" else []
    session.run(
        *PYTEST, "tests", "--durations=15", *skipped, *session.posargs, env=mode_env(session, mode)
    )


@nox.session
def docs(session: nox.Session) -> None:
    install_workspace(session)
    session.run("python", "docs/gen_reference.py", "--check")
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / ".nox" / "site"))


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    install_workspace(session)
    session.run("python", "bench/run.py", *session.posargs)
