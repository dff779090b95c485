"""Workflows whose steps run on the lab's real Slurm cluster over SSH (through Corral's pooled
connections, as the run's user), and a Corral killed in the middle of a run on the cluster and
in the workspace."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab import LabServer, SlurmLab, lab_server

SBATCH = """jobs:
  slurm:
    ssh:
      remoteHost: ${{ inputs.cluster.ip }}
    steps:
      - name: Run a batch job and wait for it
        run: |
          sbatch --wait --output=job.out --wrap 'echo job says hello from $(hostname)'
          cat job.out
      - name: Back in the workspace
        ssh: null
        run: echo "workspace $HOME"
'on':
  execute:
    inputs:
      cluster:
        type: compute-clusters
        optional: false
"""

MATRIX = """jobs:
  fan:
    strategy:
      max-parallel: 2
      matrix:
        n: [1, 2, 3, 4, 5, 6]
    ssh:
      remoteHost: ${{ inputs.cluster.ip }}
    steps:
      - run: |
          echo "start $(date +%s.%N)" >> ~/matrix-${{ inputs.tag }}.log
          sleep 1
          echo "end $(date +%s.%N)" >> ~/matrix-${{ inputs.tag }}.log
'on':
  execute:
    inputs:
      cluster:
        type: compute-clusters
      tag:
        type: string
"""


@pytest.fixture(scope="module")
def lab() -> SlurmLab:
    return SlurmLab.up()


@pytest.fixture(scope="module")
def server(lab: SlurmLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    yield from lab_server(tmp_path_factory.mktemp("workflows"), lab)


@pytest.fixture(scope="module")
def cluster(server: LabServer) -> str:
    assert server.lab is not None
    done = server.corral(
        "alice", "cluster", "create", "hpc", "--host", server.lab.login_host, "--start"
    )
    assert done.returncode == 0, done.stderr
    return "pw://alice/hpc"


def remote_file(server: LabServer, cluster: str, name: str) -> str:
    """A file of alice's home on the cluster, read through ``corral ssh``."""
    done = server.corral("alice", "ssh", cluster, f"cat ~/{name} 2>/dev/null || true")
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def test_a_step_runs_sbatch_wait_on_the_cluster(
    server: LabServer, cluster: str, tmp_path: Path
) -> None:
    code, output, run = server.run_workflow(
        "alice", tmp_path, "sbatch", SBATCH, f"cluster={cluster}"
    )
    assert code == 0, output
    assert "job says hello from" in output, output
    assert "workspace " in output and "/workspaces/alice" in output, output
    assert [s["status"] for s in run["jobs"][0]["steps"]] == ["completed", "completed"]


def test_a_matrix_on_the_cluster_respects_max_parallel(
    server: LabServer, cluster: str, tmp_path: Path
) -> None:
    tag = str(int(time.time()))
    code, output, run = server.run_workflow(
        "alice", tmp_path, "fan", MATRIX, f"cluster={cluster}", f"tag={tag}"
    )
    assert code == 0, output
    assert len(run["jobs"]) == 6 and {j["status"] for j in run["jobs"]} == {"completed"}
    text = remote_file(server, cluster, f"matrix-{tag}.log")
    events = sorted(
        (float(stamp), 1 if kind == "start" else -1)
        for kind, stamp in (line.split() for line in text.splitlines())
    )
    level = peak = 0
    for _, change in events:
        level += change
        peak = max(peak, level)
    assert peak == 2, text


def test_a_host_that_is_not_a_cluster_of_the_user_is_refused(
    server: LabServer, cluster: str, tmp_path: Path
) -> None:
    yaml = "jobs:\n  a:\n    ssh:\n      remoteHost: 10.77.0.250\n    steps:\n      - run: true\n"
    code, _, run = server.run_workflow("alice", tmp_path, "elsewhere", yaml)
    assert code == 1
    assert "not a cluster alice can log in to" in run["jobs"][0]["steps"][0]["reason"], run


KILLED = """jobs:
  on-cluster:
    ssh:
      remoteHost: ${{ inputs.cluster.ip }}
    steps:
      - run: |
          echo started >> ~/killed-${{ inputs.tag }}.log
          sleep 60
          echo cluster finished
  in-workspace:
    steps:
      - run: |
          echo started >> ${{ inputs.mark }}
          sleep 60
          echo workspace finished
'on':
  execute:
    inputs:
      cluster:
        type: compute-clusters
      tag:
        type: string
      mark:
        type: string
"""


def test_killing_corral_mid_run_neither_loses_nor_repeats_a_step(
    server: LabServer, cluster: str, tmp_path: Path
) -> None:
    tag, mark = str(int(time.time())), tmp_path / "workspace-starts"
    path = tmp_path / "killed.yaml"
    path.write_text(KILLED)
    assert (
        server.corral("alice", "workflows", "create", "killed", "--yaml", str(path)).returncode == 0
    )
    started = server.corral(
        "alice", "workflows", "run", "killed", "-i", f"cluster={cluster}", "-i", f"tag={tag}",
        "-i", f"mark={mark}", "-o", "json",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]
    deadline = time.monotonic() + 60
    while not (remote_file(server, cluster, f"killed-{tag}.log") and mark.exists()):
        assert time.monotonic() < deadline, "the steps did not start"
        time.sleep(0.5)
    server.restart()  # SIGKILL every Corral process while both steps run, start again
    done = server.corral("alice", "workflows", "runs", "logs", "-f", str(run_id), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cluster finished" in done.stdout and "workspace finished" in done.stdout
    assert remote_file(server, cluster, f"killed-{tag}.log") == "started\n"
    assert mark.read_text() == "started\n"
    view = json.loads(
        server.corral("alice", "workflows", "runs", "view", str(run_id), "-o", "json").stdout
    )
    assert view["status"] == "completed"
    assert [s["attempt"] for j in view["jobs"] for s in j["steps"]] == [0, 0]


AGENT = """permissions:
  - '*'
sessions:
  session:
jobs:
  main:
    ssh:
      remoteHost: ${ inputs.resource.ip }
    steps:
      - uses: parallelworks/scheduler-agent
        id: slurmstep
        with:
          wait: false
          scheduler-flags:
            time: "00:10:00"
          script-headers: "#SBATCH --comment=corral-agent-test"
      - run: echo "Perform some other operations here"
      - uses: parallelworks/wait-for-agent
        id: waitstep
        with:
          agentId: ${ needs.main.steps.slurmstep.outputs.agentId }
      - name: Get open port
        ssh:
          jumpNodeHost: ${ inputs.resource.ip }
          remoteHost: AGENT_HOST_PORT
        run: |
          echo sessionPort="$(pw agent open-port)" >> $OUTPUTS
          echo "agent step on $(hostname)"
          cat $OUTPUTS
      - uses: parallelworks/update-session
        with:
          status: running
          name: ${ sessions.session }
          target: ${ inputs.resource.id }
          remoteHost: ${ needs.main.steps.waitstep.outputs.remoteHost }
          remotePort: ${ needs.main.outputs.sessionPort }
      - name: Serve port
        run: |
          timeout 3 python3 -m http.server ${ needs.main.outputs.sessionPort } || true
          echo "served on $(hostname)"
        ssh:
          jumpNodeHost: ${ inputs.resource.ip }
          remoteHost: AGENT_HOST_PORT
'on':
  execute:
    inputs:
      resource:
        label: Resource Target
        type: compute-clusters
        autoselect: true
        optional: false
""".replace(
    "AGENT_HOST_PORT",
    "${ needs.main.steps.waitstep.outputs.remoteHost }:"
    "${ needs.main.steps.waitstep.outputs.sshPort }",
)


def test_the_scheduler_agent_example_serves_steps_on_a_node_through_the_cluster(
    server: LabServer, cluster: str, tmp_path: Path
) -> None:
    """§8.4 as written: an agent's sshd on a Slurm node, reached through the cluster's login
    (``jumpNodeHost``) under the host key the action read; its job carries the flags and
    headers, and is cancelled when the run ends."""
    assert server.lab is not None
    code, output, run = server.run_workflow(
        "alice", tmp_path, "agent", AGENT, f"resource={cluster}"
    )
    assert code == 0, output
    nodes = server.lab.nodes
    assert any(f"agent step on {node}" in output for node in nodes), output
    assert any(f"served on {node}" in output for node in nodes), output
    steps = run["jobs"][0]["steps"]
    assert [s["status"] for s in steps] == ["completed"] * 6, steps
    agent_id = steps[0]["outputs"]["agentId"]
    job_id = steps[0]["outputs"]["schedulerJobId"]
    assert steps[2]["outputs"]["remoteHost"] and steps[2]["outputs"]["sshPort"].isdigit()
    assert int(steps[3]["outputs"]["sessionPort"]) > 0
    shown = server.corral("alice", "ssh", cluster, f"scontrol show job {job_id}")
    assert "Comment=corral-agent-test" in shown.stdout, shown.stdout + shown.stderr
    assert "JobState=CANCELLED" in shown.stdout, shown.stdout  # released when the run ended
    assert remote_file(server, cluster, f".corral/agents/{agent_id}/job") == ""


JUMP = """jobs:
  echo_on_remote:
    ssh:
      remoteHost: ${ inputs.resource1.ip }
      jumpNodeHost: ${ inputs.resource2.ip }
    steps:
      - run: echo This is executed on the remote host $(hostname)!
      - run: echo This is executed on the jump node $(hostname)!
        ssh:
          remoteHost: ${ inputs.resource2.ip }
      - run: echo This is executed in the user workspace $HOME!
        ssh: null
on:
  execute:
    inputs:
      resource1:
        label: Resource 1
        type: compute-clusters
        optional: false
      resource2:
        label: Resource 2
        type: compute-clusters
"""


def test_the_ssh_example_reaches_a_host_through_a_jump_node(
    server: LabServer, cluster: str, tmp_path: Path
) -> None:
    """§4.3 (its step-level ``ssh`` indented as meant): the job's host reached through the jump
    node, a step on the jump node itself, one back in the workspace."""
    code, output, run = server.run_workflow(
        "alice", tmp_path, "jump", JUMP, f"resource1={cluster}", f"resource2={cluster}"
    )
    assert code == 0, output
    assert "This is executed on the remote host " in output, output
    assert "This is executed on the jump node " in output, output
    assert "This is executed in the user workspace " in output and "/workspaces/alice" in output
    assert [s["status"] for s in run["jobs"][0]["steps"]] == ["completed"] * 3


SERVE = """sessions:
  expose:
    prompt-for-name:
      default: 'mysession'
jobs:
  main:
    ssh:
      remoteHost: ${{ inputs.target.ip }}
    steps:
      - name: Expose port
        uses: parallelworks/update-session
        with:
          remotePort: '${{ inputs.port }}'
          name: '${{ sessions.expose }}'
          status: running
          target: '${{ inputs.target.id }}'
      - name: Run a server
        run: |
          mkdir -p site-${{ inputs.port }} && cd site-${{ inputs.port }}
          echo "Hello from the cluster $(hostname)" > index.html
          exec python3 -m http.server ${{ inputs.port }} --bind 127.0.0.1
'on':
  execute:
    inputs:
      target:
        type: compute-clusters
      port:
        type: number
"""


def wait_session(client: Any, name: str, *states: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while True:
        found = client.get(f"/api/sessions/alice/{name}")
        if found.status_code == 200 and found.json()["status"] in states:
            return dict(found.json())
        assert time.monotonic() < deadline, found.text
        time.sleep(0.5)


def test_a_workflow_session_on_the_cluster_is_served_through_the_platform(
    server: LabServer, cluster: str, tmp_path: Path
) -> None:
    """§7.2: update-session on a cluster target: the session runs once the app answers through
    the tunnel, its URL returns the app's page; cancelling the run removes the session."""
    path = tmp_path / "serve.yaml"
    path.write_text(SERVE)
    assert (
        server.corral("alice", "workflows", "create", "serve", "--yaml", str(path)).returncode == 0
    )
    port = 30000 + int(time.time()) % 5000
    started = server.corral(
        "alice", "workflows", "run", "serve", "-i", f"target={cluster}", "-i", f"port={port}",
        "-o", "json",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]
    with server.client("alice") as client:
        session = wait_session(client, "mysession", "running", "failed")
        assert session["status"] == "running", session
        page = client.get("/sessions/alice/mysession/")
        assert page.status_code == 200 and "Hello from the cluster" in page.text, page.text
        assert server.corral("alice", "workflows", "runs", "cancel", str(run_id)).returncode == 0
        deadline = time.monotonic() + 60
        while client.get("/api/sessions/alice/mysession").status_code != 404:
            assert time.monotonic() < deadline, "the run's session outlived it"
            time.sleep(0.5)


def test_a_manual_tunnel_to_a_cluster_fails_with_the_reason_when_its_app_dies(
    server: LabServer, cluster: str
) -> None:
    port = 35000 + int(time.time()) % 5000
    start = (
        f"mkdir -p ~/manual-{port} && cd ~/manual-{port} && echo manual > index.html && "
        f"(setsid nohup python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 & "
        f"echo $! > ~/manual-{port}.pid)"
    )
    assert server.corral("alice", "ssh", cluster, start).returncode == 0
    with server.client("alice") as client:
        made = client.post(
            "/api/sessions",
            json={"name": "manual1", "type": "tunnel", "target": cluster, "remote_port": port},
        )
        assert made.status_code == 201, made.text
        assert wait_session(client, "manual1", "running", "failed")["status"] == "running"
        assert client.get("/sessions/alice/manual1/").text.strip() == "manual"
        killed = server.corral("alice", "ssh", cluster, f"kill $(cat ~/manual-{port}.pid)")
        assert killed.returncode == 0, killed.stderr
        failed = wait_session(client, "manual1", "failed")
        assert "stopped answering" in failed["reason"], failed
        assert client.get("/sessions/alice/manual1/").status_code == 503
        assert client.delete("/api/sessions/alice/manual1").status_code == 204


def test_corral_forward_keeps_its_port_across_an_sshd_restart(
    server: LabServer, lab: SlurmLab, cluster: str, tmp_path: Path
) -> None:
    """``corral forward -L``: a local port reaching a server on the cluster's login host; the
    cluster's sshd restarts (every SSH connection dropped); the same port serves again."""
    import socket
    import subprocess
    import sys

    import httpx

    from corral_core.testing import free_port

    port, local = 37000 + int(time.time()) % 3000, free_port()
    start = (
        f"mkdir -p ~/fwd-{port} && cd ~/fwd-{port} && echo forwarded > index.html && "
        f"(setsid nohup python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 &)"
    )
    assert server.corral("alice", "ssh", cluster, start).returncode == 0
    forward = subprocess.Popen(
        [sys.executable, "-m", "corral_sdk.cli.main", "forward", "-L",
         f"{local}:localhost:{port}", cluster],
        env=server.cli_env("alice"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert forward.stdout is not None
        assert f"127.0.0.1:{local}" in forward.stdout.readline()

        def fetch() -> str:
            deadline = time.monotonic() + 60
            while True:
                try:
                    return httpx.get(f"http://127.0.0.1:{local}/", timeout=10).text
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "the forward did not serve again"
                    time.sleep(1)

        assert fetch().strip() == "forwarded"
        lab.run("restart-sshd")
        with socket.create_connection(("127.0.0.1", local), timeout=5):
            pass  # the local port never closed
        assert fetch().strip() == "forwarded"
        assert forward.poll() is None
    finally:
        forward.terminate()
        forward.communicate(timeout=10)
        server.corral("alice", "ssh", cluster, f"pkill -f 'http.server {port}' || true")
