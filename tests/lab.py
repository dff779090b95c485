"""The Slurm lab (contrib/lab/slurm.sh) and a Corral server its hosts can reach, for the tests.

The lab is a real Slurm 22.05 (controller ``ctl`` and nodes ``n1``, ``n2`` in network
namespaces), munge and OpenSSH servers on the login node and a jump host, with Unix users
``alice`` and ``bob``. Its sshd asks Corral for users' keys (``AuthorizedKeysCommand`` calling
``GET /api/users/<user>/ssh-public-keys``), so Corral must listen where the namespaces reach it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from corral_core.testing import (
    CorralProcess,
    TestDeployment,
    api_key,
    free_port,
)

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "contrib" / "lab" / "slurm.sh"
USER_PASSWORD = "Cluster-tests-Passw0rd!"


@dataclass(frozen=True)
class SlurmLab:
    login_host: str
    login_port: int
    jump_host: str
    host_address: str
    partitions: tuple[str, ...]
    nodes: tuple[str, ...]
    platform_url_file: Path

    @classmethod
    def up(cls) -> SlurmLab:
        if os.geteuid() != 0:
            raise AssertionError(
                "the cluster tests need the Slurm lab, which needs root: run them as root "
                "(CI does), or run `sudo bash contrib/lab/slurm.sh up` first and these as root"
            )
        done = subprocess.run(
            ["bash", str(LAB), "up"], capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"the Slurm lab did not start:\n{done.stderr[-4000:]}")
        env = dict(line.split("=", 1) for line in done.stdout.split())
        return cls(
            login_host=env["CORRAL_LAB_LOGIN_HOST"],
            login_port=int(env["CORRAL_LAB_LOGIN_PORT"]),
            jump_host=env["CORRAL_LAB_JUMP_HOST"],
            host_address=env["CORRAL_LAB_HOST_ADDRESS"],
            partitions=tuple(env["CORRAL_LAB_PARTITIONS"].split(",")),
            nodes=tuple(env["CORRAL_LAB_NODES"].split(",")),
            platform_url_file=Path(env["CORRAL_LAB_PLATFORM_URL_FILE"]),
        )

    def run(self, *args: str, timeout: float = 120) -> str:
        """``slurm.sh <args>`` (``exec squeue``, ``restart-sshd``...); its standard output."""
        done = subprocess.run(
            ["bash", str(LAB), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, f"slurm.sh {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    def sshd_log(self, host: str = "ctl") -> str:
        return Path(f"/var/log/corral-lab/sshd-{host}.log").read_text(errors="replace")


@dataclass
class LabServer:
    """``corral up`` listening where the lab reaches it, with users alice and bob."""

    lab: SlurmLab | None
    deployment: TestDeployment
    url: str
    admin: dict[str, str]
    process: CorralProcess | None = None
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def restart(self) -> None:
        """SIGKILL ``corral up`` (no cleanup runs) and start it again on the same data."""
        assert self.process is not None
        self.process.kill()
        self.process = CorralProcess(
            ["up", "--host", "0.0.0.0", "--port", str(self.port)],
            self.env,
            self.deployment.tmp / "up-restarted.log",
        )
        self.process.wait_http(f"{self.url}/api/health", timeout=60)

    users: dict[str, dict[str, str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.users[user], timeout=60)

    def cli_env(self, user: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "PW_"))}
        env.update(PW_PLATFORM_HOST=self.url, PW_API_KEY=self.keys[user])
        env["PW_CONFIG_DIR"] = str(self.deployment.tmp / f"cli-{user}")
        return env

    def corral(self, user: str, *args: str, input: str | None = None, timeout: float = 120) -> Any:
        import sys

        return subprocess.run(
            [sys.executable, "-m", "corral_sdk.cli.main", *args],
            env=self.cli_env(user),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run_workflow(
        self, user: str, tmp: Path, name: str, yaml: str, *inputs: str
    ) -> tuple[int, str, dict[str, Any]]:
        """Create workflow ``name`` as ``user``, run it with ``-i`` ``inputs`` and wait: the
        CLI's exit code, what it printed, and the run's view (jobs and steps)."""
        path = tmp / f"{name}.yaml"
        path.write_text(yaml)
        made = self.corral(user, "workflows", "create", name, "--yaml", str(path))
        assert made.returncode == 0, made.stderr
        args = [arg for value in inputs for arg in ("-i", value)]
        done = self.corral(user, "workflows", "run", name, *args, "--wait", timeout=300)
        listed = self.corral(user, "workflows", "runs", "list", "--workflow", name, "-o", "json")
        assert listed.returncode == 0, listed.stderr
        run = json.loads(listed.stdout)[0]
        view = self.corral(user, "workflows", "runs", "view", str(run["id"]), "-o", "json")
        return done.returncode, done.stdout + done.stderr, json.loads(view.stdout)


def corral_server(
    tmp: Path, settings: Callable[[int], dict[str, str]] | None = None, lab: SlurmLab | None = None
) -> Iterator[LabServer]:
    """``corral up`` on all addresses (so network namespaces reach it) with users alice and bob;
    ``settings(port)`` adds environment settings that depend on the port it listens on."""
    deployment = TestDeployment(tmp)
    port = free_port()
    env = {
        "CORRAL_CLUSTERS_HEALTH_INTERVAL": "2",
        "CORRAL_CLUSTERS_JOB_POLL_INTERVAL": "0.5",
        "CORRAL_SSH_CONNECT_TIMEOUT": "5",
        **(settings(port) if settings else {}),
    }
    process_env = deployment.process_env(env)
    proc = CorralProcess(
        ["up", "--host", "0.0.0.0", "--port", str(port)], process_env, deployment.tmp / "up.log"
    )
    url = f"http://127.0.0.1:{port}"
    server = LabServer(lab, deployment, url, {}, process=proc, port=port, env=process_env)
    try:
        proc.wait_http(f"{url}/api/health", timeout=60)
        server.admin.update(Authorization=f"Bearer {api_key(url)}")
        for user in ("alice", "bob"):
            created = httpx.post(
                f"{url}/api/users",
                json={"username": user, "password": USER_PASSWORD},
                headers=server.admin,
                timeout=30,
            )
            assert created.status_code == 201, created.text
            secret = api_key(url, user, USER_PASSWORD)
            server.keys[user] = secret
            server.users[user] = {"Authorization": f"Bearer {secret}"}
        yield server
    finally:
        assert server.process is not None
        code = server.process.stop()
        deployment.close()
        assert code == 0, f"corral up exited {code}:\n{server.process.output()[-4000:]}"


def lab_server(tmp: Path, lab: SlurmLab, **settings: str) -> Iterator[LabServer]:
    for server in corral_server(tmp, lambda port: dict(settings), lab):
        lab.platform_url_file.write_text(f"http://{lab.host_address}:{server.port}\n")
        lab.platform_url_file.chmod(0o644)
        try:
            yield server
        finally:
            lab.platform_url_file.unlink(missing_ok=True)
