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
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

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


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """One POST on a kept-alive HTTP/1.1 connection: the status and the body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _through_api(server: LabServer) -> float:
    """16 clients, each on its own kept-alive connection. They speak HTTP/1.1 over asyncio
    streams rather than through httpx: the clients share the machine's two cores with Corral,
    sshd and Slurm, and httpx's own CPU time (about 3 ms a request) would be counted against
    Corral."""
    path = "/api/clusters/alice/lab/jobs"
    body = json.dumps({"script": "#!/bin/bash\ntrue\n", "name": "bench"}).encode()
    url = urllib.parse.urlsplit(server.url)
    headers = "".join(f"{name}: {value}\r\n" for name, value in server.users["alice"].items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n{headers}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    remaining = JOBS
    failures: list[str] = []

    async def client() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            while remaining > 0:
                remaining -= 1
                status, answer = await _post(reader, writer, request)
                if status != 201:
                    failures.append(answer.decode(errors="replace"))
        finally:
            writer.close()

    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    status, answer = await _post(reader, writer, request)  # the SSH connection warmed up
    writer.close()
    assert status == 201, answer
    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
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
