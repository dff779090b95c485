"""Submitting 500 one-line jobs to the lab's Slurm through Corral's API, beside two baselines.

- through the API: `POST /api/clusters/alice/lab/jobs` from 16 concurrent clients, `corral up`
  in its own process (embedded mode), over its pooled SSH connection to the login node;
- the baseline users have without Corral: one `ssh alice@login sbatch --wrap true` per job
  (OpenSSH, a key in `~/.ssh/authorized_keys`, a new connection each time);
- the limit: `sbatch --wrap true` in a loop on the login node itself, as alice.

Targets: at least 10 times the per-job ssh rate, and at least half the direct rate. Needs root
(the lab, contrib/lab/slurm.sh, starts Slurm in network namespaces).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from run import Figure

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab import LabServer, SlurmLab, lab_server  # noqa: E402

JOBS = 500
SSH_JOBS = 50  # the per-job ssh baseline is slow; its rate is measured on fewer jobs
CLIENTS = 16


def _cancel_all(lab: SlurmLab) -> None:
    lab.run("exec", "scancel", "--user", "alice")


def _direct(lab: SlurmLab) -> float:
    loop = f"for i in $(seq {JOBS}); do sbatch --parsable --wrap true >/dev/null || exit 1; done"
    start = time.perf_counter()
    subprocess.run(
        [
            "nsenter",
            "--net=/run/netns/crl-ctl",
            "runuser",
            "-u",
            "alice",
            "--",
            "bash",
            "-lc",
            loop,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return JOBS / (time.perf_counter() - start)


def _per_job_ssh(lab: SlurmLab, tmp: Path) -> float:
    key = tmp / "bench_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    alice = pwd.getpwnam("alice")
    ssh_dir = Path(alice.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    for path in (ssh_dir, authorized):
        os.chown(path, alice.pw_uid, alice.pw_gid)
    authorized.chmod(0o600)
    command = [
        "ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o",
        "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
        f"UserKnownHostsFile={tmp / 'known_hosts'}", f"alice@{lab.login_host}",
        "sbatch --parsable --wrap true",
    ]  # fmt: skip
    try:
        start = time.perf_counter()
        for _ in range(SSH_JOBS):
            subprocess.run(command, check=True, capture_output=True, timeout=60)
        return SSH_JOBS / (time.perf_counter() - start)
    finally:
        authorized.unlink(missing_ok=True)


async def _through_api(server: LabServer) -> float:
    url = "/api/clusters/alice/lab/jobs"
    body = {"script": "#!/bin/bash\ntrue\n", "name": "bench"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(JOBS):
        queue.put_nowait(i)
    failures: list[str] = []

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            response = await http.post(url, json=body)
            if response.status_code != 201:
                failures.append(response.text)

    async with httpx.AsyncClient(
        base_url=server.url, headers=server.users["alice"], timeout=120
    ) as http:
        assert (await http.post(url, json=body)).status_code == 201  # connection warmed up
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} submissions failed, e.g. {failures[0]}")
    return JOBS / elapsed


def run() -> list[Figure]:
    lab = SlurmLab.up()
    with tempfile.TemporaryDirectory(prefix="corral-bench-jobs-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "server").mkdir()
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(
                contextlib.contextmanager(lab_server)(
                    tmp / "server",
                    lab,
                    CORRAL_LOGGING_LEVEL="warning",
                    # Corral's defaults, not the tests' quick polls
                    CORRAL_CLUSTERS_JOB_POLL_INTERVAL="5",
                    CORRAL_CLUSTERS_HEALTH_INTERVAL="60",
                )
            )
            with server.client("alice") as http:
                created = http.post(
                    "/api/clusters", json={"name": "lab", "login_host": lab.login_host}
                )
                assert created.status_code == 201, created.text
                http.post("/api/clusters/alice/lab/start")
                deadline = time.monotonic() + 60
                while http.get("/api/clusters/alice/lab").json()["status"] != "active":
                    assert time.monotonic() < deadline, "the lab cluster did not start"
                    time.sleep(0.5)
            _cancel_all(lab)
            api = asyncio.run(_through_api(server))
            _cancel_all(lab)
        ssh = _per_job_ssh(lab, tmp)
        _cancel_all(lab)
        direct = _direct(lab)
        _cancel_all(lab)
    return [
        Figure(
            f"{JOBS} jobs through the API ({CLIENTS} clients)",
            api,
            "jobs/s",
            "one ssh + sbatch per job",
            ssh,
            ">= 10x",
        ),
        Figure(
            f"{JOBS} jobs through the API ({CLIENTS} clients)",
            api,
            "jobs/s",
            "sbatch in a loop on the login node",
            direct,
            ">= 0.5x",
        ),
    ]
