"""`corral up`, `serve`, `worker`, `migrate` and settings errors, as real processes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from corral_core.testing import CorralProcess, TestDeployment, api_key, free_port


def corral(deployment: TestDeployment, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral_sdk.cli.main", *args],
        env=deployment.process_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_up_serves_health_and_says_where_it_listens(deployment: TestDeployment) -> None:
    port = free_port()
    proc = CorralProcess(
        ["up", "--port", str(port)], deployment.process_env(), deployment.tmp / "up.log"
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/api/health", timeout=60)
        health = httpx.get(f"http://127.0.0.1:{port}/api/health").json()
        assert health["status"] == "ok"
        assert health["mode"] == deployment.mode
        assert health["checks"] == {"database": "ok"}
        output = proc.output()
        assert f"listening on http://127.0.0.1:{port}" in output
        assert f"data:     {deployment.data_dir}" in output
    finally:
        assert proc.stop() == 0


def test_unknown_key_in_settings_file_stops_startup_with_exit_2(
    deployment: TestDeployment, tmp_path: Path
) -> None:
    config = tmp_path / "corral.toml"
    config.write_text('[database]\nuri = "sqlite:///x.db"\n')
    result = corral(deployment, "up", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert "unknown key database.uri" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_value_and_bad_toml_name_the_key_or_line(
    deployment: TestDeployment, tmp_path: Path
) -> None:
    config = tmp_path / "corral.toml"
    config.write_text('[server]\nport = "eighty"\n')
    result = corral(deployment, "migrate", "--config", str(config))
    assert result.returncode == 2
    assert "server.port: expected `int`, got `str`" in result.stderr
    config.write_text("[server\nport = 1\n")
    result = corral(deployment, "migrate", "--config", str(config))
    assert result.returncode == 2
    assert "line 1" in result.stderr
    result = corral(deployment, "migrate", CORRAL_SERVR_PORT="1")
    assert result.returncode == 2
    assert "unknown environment variable CORRAL_SERVR_PORT" in result.stderr


def test_serve_and_worker_share_the_database_and_broker(deployment: TestDeployment) -> None:
    """Distributed pieces: in embedded settings they refuse clearly; in distributed they run."""
    migrate = corral(deployment, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert "migrated from empty to" in migrate.stdout
    check = corral(deployment, "migrate", "--check")
    assert check.returncode == 0, check.stderr
    if deployment.mode == "embedded":
        result = corral(deployment, "serve")
        assert result.returncode == 2
        assert "corral serve needs a shared broker" in result.stderr
        result = corral(deployment, "worker")
        assert result.returncode == 2
        assert "corral worker needs a shared broker" in result.stderr
        return
    ports = [free_port(), free_port()]
    procs = [
        CorralProcess(
            ["serve", "--port", str(port)],
            deployment.process_env(),
            deployment.tmp / f"s{port}.log",
        )
        for port in ports
    ] + [
        CorralProcess(["worker"], deployment.process_env(), deployment.tmp / f"w{i}.log")
        for i in range(2)
    ]
    try:
        for port in ports:
            procs[0].wait_http(f"http://127.0.0.1:{port}/api/health", timeout=30)
            assert httpx.get(f"http://127.0.0.1:{port}/api/health").json()["mode"] == "distributed"
        for worker in procs[2:]:
            worker.wait_output("worker", timeout=30)
    finally:
        for proc in procs:
            assert proc.stop() == 0, proc.output()


def test_serve_refuses_an_unmigrated_database(deployment: TestDeployment) -> None:
    result = corral(deployment, "worker" if deployment.mode == "distributed" else "up", "--help")
    assert result.returncode == 0
    if deployment.mode == "distributed":
        result = corral(deployment, "serve")
        assert result.returncode == 1
        assert "run `corral migrate`" in result.stderr


def test_first_start_creates_the_admin_with_a_password_printed_once(
    deployment: TestDeployment,
) -> None:
    port = free_port()
    env = deployment.process_env({"CORRAL_BOOTSTRAP_ADMIN_PASSWORD": ""})
    proc = CorralProcess(["up", "--port", str(port)], env, deployment.tmp / "first.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/api/health", timeout=60)
        output = proc.output()
        match = re.search(r"with the password:\n\n    (\S+)\n", output)
        assert match, output
        key = api_key(f"http://127.0.0.1:{port}", "admin", match.group(1))
        me = httpx.get(
            f"http://127.0.0.1:{port}/api/auth/whoami", headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert me["org"] == "default" and "platform:admin" in me["roles"]
    finally:
        assert proc.stop() == 0
    again = CorralProcess(["up", "--port", str(port)], env, deployment.tmp / "again.log")
    try:
        again.wait_http(f"http://127.0.0.1:{port}/api/health", timeout=60)
        assert "with the password" not in again.output()
    finally:
        assert again.stop() == 0
