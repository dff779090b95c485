"""An elastic cluster on the local cloud: time from start to active, and from a job's submission
to a powered-down node running it (node resume), each the median of 5, beside the same host
work done directly in the same run.

- start to active: ``POST .../start`` until the cluster is ``active`` (controller host created,
  its bootstrap configures sshd, munge and slurmctld and reports back, health check over SSH);
- node resume: a one-node job submitted through the API until it is ``running`` (Slurm's
  ResumeProgram calls Corral, which creates the node's host; slurmd registers);
- the baseline: one local host created and its init booted (``LocalHosts.create``) and deleted,
  with no Corral in between: what the provider itself costs.

Targets: active under 30 s, node resume under 15 s. Needs root (hosts are network namespaces)
and Slurm (``contrib/lab/slurm.sh up`` installs it).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from run import Figure

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from corral_local.hosts import LocalHosts  # noqa: E402

from tests.lab import LabServer, corral_server  # noqa: E402

RUNS = 5
SUBNET, GATEWAY, BRIDGE = "10.85.0.0/24", "10.85.0.1", "crlbench0"


def _wait(what: str, check: Any, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise SystemExit(f"{what} did not happen within {timeout}s")


def _status(server: LabServer, name: str) -> dict[str, Any]:
    with server.client("alice") as http:
        return dict(http.get(f"/api/clusters/alice/{name}").json())


def _cluster_runs(server: LabServer) -> tuple[list[float], list[float]]:
    starts, resumes = [], []
    with server.client("alice") as http:
        body = {
            "name": "bench",
            "type": "cloud",
            "cloud": {
                "cloud_account": "bench",
                "controller": {"instance_type": "local.small"},
                "partitions": [{"name": "compute", "instance_type": "local.nano", "max_nodes": 2}],
                "advanced": {"suspend_time": 600},
            },
        }
        assert http.post("/api/clusters", json=body).status_code == 201
        for _ in range(RUNS):
            began = time.perf_counter()
            assert http.post("/api/clusters/alice/bench/start").status_code == 202
            done = _wait(
                "active", lambda: _status(server, "bench")["status"] in ("active", "failed")
            )
            assert done and _status(server, "bench")["status"] == "active", _status(server, "bench")
            starts.append(time.perf_counter() - began)

            began = time.perf_counter()
            submitted = http.post(
                "/api/clusters/alice/bench/jobs", json={"script": "#!/bin/sh\nsleep 30\n"}
            )
            assert submitted.status_code == 201, submitted.text
            path = f"/api/clusters/alice/bench/jobs/{submitted.json()['id']}"
            _wait("the job runs", lambda path=path: http.get(path).json()["state"] == "running")
            resumes.append(time.perf_counter() - began)

            assert http.post("/api/clusters/alice/bench/destroy").status_code == 202
            _wait("off", lambda: _status(server, "bench")["status"] == "off", timeout=120)
    return starts, resumes


def _bare_hosts(root: Path) -> list[float]:
    hosts = LocalHosts(root / "bare", "10.86.0.0/24", "crlbench1")
    samples = []
    for index in range(RUNS):
        began = time.perf_counter()
        made = hosts.create(
            names=(f"bare-{index}",), instance_type="local.nano", image="host", vcpus=1,
            memory_mib=512, user_data="", tags={}, idempotency_key=uuid.uuid4().hex,
        )  # fmt: skip
        samples.append(time.perf_counter() - began)
        hosts.delete([r.id for r in made])
    return samples


def run() -> list[Figure]:
    root = Path("/var/lib/corral-local-bench") / uuid.uuid4().hex[:8]
    try:
        with tempfile.TemporaryDirectory() as tmp:

            def settings(port: int) -> dict[str, str]:
                return {"CORRAL_CLUSTERS_CALLBACK_URL": f"http://{GATEWAY}:{port}"}

            for server in corral_server(Path(tmp), settings):
                created = httpx.post(
                    f"{server.url}/api/cloud-accounts",
                    json={
                        "name": "bench",
                        "provider": "local",
                        "settings": {"root": str(root), "subnet": SUBNET, "bridge": BRIDGE},
                    },
                    headers=server.admin,
                    timeout=60,
                )
                assert created.status_code == 201, created.text
                try:
                    starts, resumes = _cluster_runs(server)
                except AssertionError:  # what the server said, before its directory goes
                    print((server.deployment.tmp / "up.log").read_text()[-6000:], file=sys.stderr)
                    raise
        bare = statistics.median(_bare_hosts(root))
    finally:
        for sub in (root, root / "bare"):
            for subnet, bridge in ((SUBNET, BRIDGE), ("10.86.0.0/24", "crlbench1")):
                hosts = LocalHosts(sub, subnet, bridge)
                hosts.delete([r.id for r in hosts.records()])
        shutil.rmtree(root, ignore_errors=True)
    return [
        Figure(
            f"start to active (median of {RUNS})",
            statistics.median(starts),
            "s",
            "one bare local host booted",
            bare,
            "< 30 s",
        ),
        Figure(
            f"node resume: submission to running (median of {RUNS})",
            statistics.median(resumes),
            "s",
            "one bare local host booted",
            bare,
            "< 15 s",
        ),
    ]
