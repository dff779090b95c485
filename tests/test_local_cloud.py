"""Elastic Slurm clusters on the local cloud, for real (as root): ``corral up`` in a subprocess,
hosts in network namespaces with their own munge, slurmctld or slurmd and sshd, Slurm's resume
and suspend programs calling Corral back over HTTP, jobs and ``corral ssh`` through the platform.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corral_local.hosts import LocalHosts

from tests.lab import LabServer, corral_server

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("slurmctld"),
    reason="local cloud hosts are network namespaces (root) running Slurm (contrib/lab/slurm.sh "
    "installs it)",
)

SUBNET, GATEWAY, BRIDGE = "10.84.0.0/24", "10.84.0.1", "crltest3"


@pytest.fixture(scope="module")
def cloud_root() -> Iterator[Path]:
    root = Path("/var/lib/corral-local-tests") / uuid.uuid4().hex[:8]
    yield root
    hosts = LocalHosts(root, SUBNET, BRIDGE)  # whatever a failed test left running
    hosts.delete([record.id for record in hosts.records()])
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cloud_root: Path) -> Iterator[LabServer]:
    def settings(port: int) -> dict[str, str]:
        return {
            "CORRAL_CLUSTERS_CALLBACK_URL": f"http://{GATEWAY}:{port}",
            # a killed process's reconcile leases expire soon, and the sweep finds them
            "CORRAL_RECONCILE_LEASE_SECONDS": "10",
            "CORRAL_RECONCILE_SWEEP_INTERVAL": "2",
        }

    for server in corral_server(tmp_path_factory.mktemp("local-cloud"), settings):
        created = _post(
            server,
            "/api/cloud-accounts",
            {
                "name": "local1",
                "provider": "local",
                "settings": {"root": str(cloud_root), "subnet": SUBNET, "bridge": BRIDGE},
            },
            headers=server.admin,
        )
        assert created["permissions"] in ("checking", "sufficient"), created

        def validated(server: LabServer = server) -> Any:  # validation is a background job
            account = _get(server, "/api/cloud-accounts/local1")
            return account if account["permissions"] != "checking" else None

        checked = wait_until("the cloud account's validation", validated, timeout=60)
        assert checked["permissions"] == "sufficient", checked
        yield server


_ANY = -1


def _post(server: LabServer, path: str, body: Any = None, *, user: str = "alice",
          headers: dict[str, str] | None = None, expect: int | None = _ANY) -> Any:  # fmt: skip
    """POST; ``expect``: the status it must answer (any success by default; ``None``: whatever
    it answers, giving the body only on success)."""
    import httpx

    response = httpx.post(
        f"{server.url}{path}", json=body, headers=headers or server.users[user], timeout=60
    )
    if expect is None:
        return response.json() if response.status_code < 300 else None
    if expect != _ANY:
        assert response.status_code == expect, response.text
    else:
        assert response.status_code < 300, response.text
    return response.json() if response.content else None


def _patch(server: LabServer, path: str, body: Any, expect: int) -> Any:
    with server.client("alice") as client:
        response = client.patch(path, json=body)
    assert response.status_code == expect, response.text
    return response.json()


def _get(server: LabServer, path: str, user: str = "alice") -> Any:
    with server.client(user) as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(
    what: str, check: Any, timeout: float = 120.0, every: float = 0.5, diagnose: Any = None
) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    said = f"\n{diagnose()}" if diagnose is not None else ""
    raise AssertionError(f"{what} did not happen within {timeout}s (last: {last!r}){said}")


def definition(**advanced: Any) -> dict[str, Any]:
    return {
        "cloud_account": "local1",
        "controller": {"instance_type": "local.small"},
        "partitions": [{"name": "compute", "instance_type": "local.nano", "max_nodes": 3}],
        "advanced": {"suspend_time": 15, "suspend_timeout": 10, "resume_timeout": 180, **advanced},
    }


def create(server: LabServer, name: str, **advanced: Any) -> dict[str, Any]:
    body = {"name": name, "type": "cloud", "cloud": definition(**advanced)}
    return dict(_post(server, "/api/clusters", body, expect=201))


def status_of(server: LabServer, name: str, *states: str) -> dict[str, Any] | None:
    found = _get(server, f"/api/clusters/alice/{name}")
    return found if found["status"] in states else None


def leftovers(root: Path) -> dict[str, list[str]]:
    """Everything a local cloud host could leave behind: namespaces, veths, processes in them,
    instance directories, mounts of the cloud's root."""
    netns = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True)
    links = subprocess.run(["ip", "-o", "link"], check=True, capture_output=True, text=True)
    mounts = Path("/proc/self/mountinfo").read_text()
    instances = root / "instances"
    return {
        "namespaces": [n.split()[0] for n in netns.stdout.splitlines() if "corral-lh-" in n],
        "veths": [n.split(":")[1].strip() for n in links.stdout.splitlines() if ": crlh" in n],
        "instances": sorted(p.name for p in instances.iterdir()) if instances.is_dir() else [],
        "mounts": [line for line in mounts.splitlines() if str(root) in line],
    }


def host_report(root: Path) -> str:
    """What each host of the cloud says about itself: for a failure's message."""
    lines = []
    for directory in sorted((root / "instances").glob("*")):
        record = json.loads((directory / "instance.json").read_text())
        lines.append(
            f"== {record['name']} {record['address']} ({directory.name}, {record['state']})"
        )
        for name in (
            "user-data.status", "console.log", "user-data.log", "boot.log",
            "root/var/log/corral/bootstrap.log", "root/var/log/slurm/slurmd.log",
            "root/var/log/slurm/slurmctld.log", "root/var/log/munge/munged.log",
        ):  # fmt: skip
            path = directory / name
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-25:]
                lines += [f"-- {name}", *tail]
        keys = sorted((directory / "root/etc/ssh").glob("ssh_host_*key.pub"))
        for key in keys:
            lines.append(f"-- {key.name}: {key.read_text().split()[1][-20:]}")
    return "\n".join(lines)


def test_an_elastic_cluster_runs_a_three_node_job_and_powers_down_and_leaves_nothing(
    server: LabServer, cloud_root: Path
) -> None:
    before = leftovers(cloud_root)
    created = create(server, "elastic")
    assert created["status"] == "off" and created["cloud"]["partitions"][0]["max_nodes"] == 3

    estimate = _get(server, "/api/clusters/alice/elastic/estimate")
    lines = {item["item"]: item for item in estimate["items"]}
    assert lines["Partition compute"]["instance_type"] == "local.nano"
    unit = float(lines["Partition compute"]["unit_cost"])
    assert float(lines["Partition compute"]["max_cost"]) == pytest.approx(unit * 3)

    _post(server, "/api/clusters/alice/elastic/start", expect=202)
    active = wait_until(
        "the cluster is active", lambda: status_of(server, "elastic", "active", "failed")
    )
    assert active["status"] == "active", active["reason"]
    assert active["session"] == 1
    logs = _get(server, "/api/clusters/alice/elastic/logs")
    steps = {s["name"]: s["state"] for s in logs["steps"] if s["log"] == "provision"}
    assert steps["Collecting cluster variables"] == "completed"
    assert steps["Controller node alice-elastic-00001-mgmt"] == "completed"
    assert steps["Controller node health check"] == "completed"

    done = server.corral("alice", "ssh", "pw://alice/elastic", "sinfo -h -N -o '%N %t'")
    assert done.returncode == 0, done.stderr
    nodes = dict(line.split() for line in done.stdout.split("\n") if line.strip())
    assert sorted(nodes) == [f"alice-elastic-00001-1-000{i}" for i in (1, 2, 3)], done.stdout
    assert all(state.startswith("idle~") or state == "idle~" for state in nodes.values()), nodes

    done = server.corral(
        "alice", "cluster", "submit", "elastic", "--nodes", "3", "--wrap",
        "srun hostname | sort", "-o", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    path = f"/api/clusters/alice/elastic/jobs/{job['id']}"
    finished = wait_until(
        "the three-node job finishes",
        lambda: (j := _get(server, path))["state"] in ("completed", "failed", "node_fail") and j,
        timeout=180,
        diagnose=lambda: host_report(cloud_root),
    )
    assert finished["state"] == "completed", finished
    with server.client("alice") as client:
        output = client.get(f"{path}/output").text
    assert sorted(output.split()) == [f"alice-elastic-00001-1-000{i}" for i in (1, 2, 3)]
    scheduler_steps = [
        s for s in _get(server, "/api/clusters/alice/elastic/logs")["steps"]
        if s["log"] == "scheduler"
    ]  # fmt: skip
    assert any(s["name"].startswith("Compute nodes") for s in scheduler_steps)

    refused = _post(server, "/api/clusters/alice/elastic/stop", expect=409)
    assert refused["reason"] == "compute-nodes-active"

    # after Suspend Time, Slurm lets the nodes go and Corral deletes their hosts
    def powered_down() -> bool:
        return len(leftovers(cloud_root)["instances"]) == 1  # the controller's alone

    wait_until("the idle nodes are powered down", powered_down, timeout=120, every=1)
    wait_until(
        "Corral sees the nodes gone",
        lambda: _post(server, "/api/clusters/alice/elastic/stop", expect=None),
        timeout=30,
    )

    # stopped: the controller's processes are gone, its disk stays; start resumes it
    wait_until("the cluster stops", lambda: status_of(server, "elastic", "stopped"), timeout=60)
    assert leftovers(cloud_root)["namespaces"] == before["namespaces"]
    _post(server, "/api/clusters/alice/elastic/start", expect=202)
    resumed = wait_until(
        "the cluster resumes", lambda: status_of(server, "elastic", "active", "failed")
    )
    assert resumed["status"] == "active" and resumed["session"] == 1, resumed["reason"]

    _post(server, "/api/clusters/alice/elastic/destroy", expect=202)
    wait_until("the cluster is off", lambda: status_of(server, "elastic", "off"), timeout=60)
    assert leftovers(cloud_root) == before


def test_a_failing_bootstrap_fails_the_start_with_its_output_and_debug_mode_keeps_the_hosts(
    server: LabServer, cloud_root: Path
) -> None:
    before = leftovers(cloud_root)
    script = "echo checking the licence server; echo no licence >&2; exit 7"
    create(server, "broken", user_bootstrap=script, bootstrap_controller=True)
    _post(server, "/api/clusters/alice/broken/start", expect=202)
    failed = wait_until("the start fails", lambda: status_of(server, "broken", "failed", "active"))
    assert failed["status"] == "failed"
    assert "exited 7" in failed["reason"] and "no licence" in failed["reason"]
    logs = _get(server, "/api/clusters/alice/broken/logs")
    assert "checking the licence server" in logs["lines"]
    states = {s["name"]: s["state"] for s in logs["steps"]}
    assert states["Controller node configuration"] == "failed"
    assert leftovers(cloud_root) == before  # cleaned up without debug mode

    create(server, "debugged", user_bootstrap=script, bootstrap_controller=True, debug_mode=True)
    _post(server, "/api/clusters/alice/debugged/start", expect=202)
    failed = wait_until("the start fails", lambda: status_of(server, "debugged", "failed"))
    kept = leftovers(cloud_root)
    assert len(kept["instances"]) == len(before["instances"]) + 1, kept
    _post(server, "/api/clusters/alice/debugged/destroy", expect=202)
    wait_until("the cluster is off", lambda: status_of(server, "debugged", "off"), timeout=60)
    assert leftovers(cloud_root) == before


def test_killing_corral_while_a_cluster_provisions_neither_loses_it_nor_doubles_its_hosts(
    server: LabServer, cloud_root: Path
) -> None:
    before = leftovers(cloud_root)
    create(server, "killed")
    _post(server, "/api/clusters/alice/killed/start", expect=202)

    def controller_made() -> bool:
        steps = _get(server, "/api/clusters/alice/killed/logs")["steps"]
        return any(s["name"].startswith("Controller node alice") for s in steps)

    wait_until("the controller is being made", controller_made, timeout=60, every=0.1)
    server.restart()  # SIGKILL every Corral process, start again
    active = wait_until(
        "the cluster settles after the restart",
        lambda: status_of(server, "killed", "active", "failed"),
        timeout=180,
    )
    assert active["status"] == "active", f"{active['reason']}\n{host_report(cloud_root)}"
    hosts = leftovers(cloud_root)
    assert len(hosts["instances"]) == len(before["instances"]) + 1, hosts  # one controller

    # a live edit: partitions and Slurm timings change on the running controller
    edited = definition(suspend_time=40)
    edited["partitions"] = [
        {"name": "compute", "instance_type": "local.nano", "max_nodes": 4, "default": True},
        {"name": "big", "instance_type": "local.small", "max_nodes": 2},
    ]
    _patch(server, "/api/clusters/alice/killed", {"cloud": edited}, 200)

    def updates(count: int) -> Any:
        steps = _get(server, "/api/clusters/alice/killed/logs")["steps"]
        found = [
            s for s in steps
            if s["name"].startswith("Configuration update") and s["state"] != "running"
        ]  # fmt: skip
        return found if len(found) >= count else None

    [update] = wait_until("the edit is applied", lambda: updates(1), timeout=90)
    assert update["state"] == "completed", update
    assert status_of(server, "killed", "active")
    done = server.corral(
        "alice", "ssh", "pw://alice/killed",
        "sinfo -h -o '%P %D'; scontrol show config | grep -E '^SuspendTime '",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "compute* 4" in done.stdout and "big 2" in done.stdout, done.stdout
    assert "40 sec" in done.stdout, done.stdout
    assert "slurmctld restarted" in update["detail"], update  # nodes were added
    timings = {**edited, "advanced": {**edited["advanced"], "suspend_time": 50}}
    _patch(server, "/api/clusters/alice/killed", {"cloud": timings}, 200)
    update = wait_until("the second edit is applied", lambda: updates(2), timeout=90)[-1]
    assert update["state"] == "completed" and "re-read" in update["detail"], update
    done = server.corral(
        "alice", "ssh", "pw://alice/killed", "scontrol show config | grep -E '^SuspendTime '"
    )
    assert "50 sec" in done.stdout, done.stdout
    # what made the controller cannot change while it runs
    moved = {**edited, "controller": {"instance_type": "local.medium"}}
    refused = _patch(server, "/api/clusters/alice/killed", {"cloud": moved}, 409)
    assert "cloud.controller.instance_type" in refused["detail"], refused
    _post(server, "/api/clusters/alice/killed/destroy", expect=202)
    wait_until("the cluster is off", lambda: status_of(server, "killed", "off"), timeout=60)
    assert leftovers(cloud_root) == before


TWO_CLUSTERS = """jobs:
  fan:
    strategy:
      max-parallel: 2
      matrix:
        host: ["${{ inputs.first.ip }}", "${{ inputs.second.ip }}"]
        n: [1, 2, 3]
    ssh:
      remoteHost: ${{ matrix.host }}
    steps:
      - run: |
          echo "start $(date +%s.%N) $(hostname)"
          sleep 2
          echo "end $(date +%s.%N) $(hostname)"
'on':
  execute:
    inputs:
      first:
        type: compute-clusters
      second:
        type: compute-clusters
"""


def test_a_workflow_matrix_over_two_clusters_respects_max_parallel(
    server: LabServer, tmp_path: Path
) -> None:
    for name in ("east", "west"):
        create(server, name)
        _post(server, f"/api/clusters/alice/{name}/start", expect=202)
    for name in ("east", "west"):
        active = wait_until(
            f"{name} is active", lambda name=name: status_of(server, name, "active", "failed")
        )
        assert active["status"] == "active", active["reason"]
    code, output, run = server.run_workflow(
        "alice", tmp_path, "two_clusters", TWO_CLUSTERS,
        "first=pw://alice/east", "second=pw://alice/west",
    )  # fmt: skip
    assert code == 0, output
    assert len(run["jobs"]) == 6 and {j["status"] for j in run["jobs"]} == {"completed"}, run
    logs = server.corral("alice", "workflows", "runs", "logs", str(run["id"]))
    assert logs.returncode == 0, logs.stderr
    events = [
        line.split()[-3:] for line in logs.stdout.splitlines()
        if line.split()[-3:-2] and line.split()[-3] in ("start", "end")
    ]  # fmt: skip
    hosts = {host for kind, _, host in events if kind == "start"}
    assert hosts == {"alice-east-00001-mgmt", "alice-west-00001-mgmt"}, logs.stdout
    assert sum(1 for kind, _, _ in events if kind == "start") == 6, logs.stdout
    level = peak = 0
    for _, change in sorted((float(at), 1 if kind == "start" else -1) for kind, at, _ in events):
        level += change
        peak = max(peak, level)
    assert peak == 2, logs.stdout
    for name in ("east", "west"):
        _post(server, f"/api/clusters/alice/{name}/destroy", expect=202)
    for name in ("east", "west"):
        wait_until(f"{name} is off", lambda name=name: status_of(server, name, "off"), timeout=60)
