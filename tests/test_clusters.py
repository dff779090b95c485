"""Existing clusters against the real Slurm lab: register, start, jobs, SSH through the platform.

Everything here is real: ``corral up`` in a subprocess, the ``corral`` CLI, OpenSSH's sshd and
Slurm 22.05 in network namespaces (contrib/lab/slurm.sh), reached over real SSH connections.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.lab import LabServer, SlurmLab, lab_server

TERMINAL = {"completed", "failed", "cancelled", "timeout", "out_of_memory", "node_fail"}


@pytest.fixture(scope="module")
def lab() -> SlurmLab:
    return SlurmLab.up()


@pytest.fixture(scope="module")
def server(lab: SlurmLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    yield from lab_server(tmp_path_factory.mktemp("clusters"), lab)


def wait_until(what: str, check: Any, timeout: float = 60.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout}s (last: {last!r})")


def finished(job: dict[str, Any]) -> dict[str, Any] | None:
    return job if job["state"] in TERMINAL else None


def cluster(server: LabServer, user: str, name: str) -> dict[str, Any]:
    owner = "alice"
    with server.client(user) as client:
        response = client.get(f"/api/clusters/{owner}/{name}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def settled(server: LabServer, name: str) -> dict[str, Any] | None:
    found = cluster(server, "alice", name)
    return found if found["status"] in {"active", "failed"} else None


def create(server: LabServer, name: str, *extra: str, start: bool = True) -> dict[str, Any]:
    args = ["cluster", "create", name, "--host", server.lab.login_host, *extra]
    done = server.corral("alice", *args, *(["--start"] if start else []), "-o", "json")
    assert done.returncode == 0, done.stderr
    if not start:
        return dict(json.loads(done.stdout))
    return dict(wait_until(f"{name} settles", lambda: settled(server, name), timeout=30))


def submit(server: LabServer, cluster_name: str, command: str) -> tuple[dict[str, Any], str]:
    """Submit ``command`` as alice through the CLI: the job, and its API path."""
    done = server.corral(
        "alice", "cluster", "submit", cluster_name, "--wrap", command, "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    return job, f"/api/clusters/alice/{cluster_name}/jobs/{job['id']}"


def scontrol_state(lab: SlurmLab, job_id: str) -> str:
    shown = lab.run("exec", "scontrol", "show", "job", job_id)
    match = re.search(r"JobState=(\S+)", shown)
    assert match, shown
    return match.group(1)


@pytest.fixture(scope="module")
def active(server: LabServer) -> str:
    """Alice's cluster ``lab``, registered through the CLI and started."""
    found = create(server, "lab")
    assert found["status"] == "active", found["reason"]
    return "lab"


def test_register_and_start_shows_partitions_and_nodes(
    server: LabServer, active: str, lab: SlurmLab
) -> None:
    found = cluster(server, "alice", active)
    assert found["type_label"] == "Slurm existing cluster"
    partitions = {p["name"]: p for p in found["partitions"]}
    assert set(partitions) == set(lab.partitions)
    assert partitions["debug"]["default"] is True
    assert partitions["debug"]["nodes_total"] == len(lab.nodes)
    assert {n["name"] for n in found["nodes"]} == set(lab.nodes)
    listed = server.corral("alice", "cluster", "ls", "--status", "on")
    assert listed.returncode == 0, listed.stderr
    assert "pw://alice/lab" in listed.stdout and "active" in listed.stdout
    assert "debug*" in listed.stdout


def test_job_goes_pending_running_completed_and_its_output_is_readable(
    server: LabServer, active: str, lab: SlurmLab
) -> None:
    # A job holding both nodes whole keeps the next one pending for a few seconds.
    with server.client("alice") as client:
        blocker = client.post(
            f"/api/clusters/alice/{active}/jobs",
            json={"script": "#!/bin/bash\nsleep 4\n", "nodes": 2, "exclusive": True},
        )
        assert blocker.status_code == 201, blocker.text
    submitted = server.corral(
        "alice", "cluster", "submit", active, "--wrap", "hostname; sleep 3", "-o", "json"
    )
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    seen: list[str] = []
    with server.client("alice") as client:

        def finished() -> bool:
            state = client.get(f"/api/clusters/alice/{active}/jobs/{job['id']}").json()["state"]
            if not seen or seen[-1] != state:
                seen.append(state)
            return state in TERMINAL

        wait_until("the job finishes", finished, timeout=60, every=0.2)
    assert seen[0] == "pending" and "running" in seen and seen[-1] == "completed", seen
    output = server.corral("alice", "cluster", "output", active, str(job["id"]))
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip() in set(lab.nodes), output.stdout
    shown = server.corral("alice", "cluster", "job", active, str(job["id"]), "-o", "json")
    assert json.loads(shown.stdout)["exit_code"] == 0


def test_cancelled_job_is_cancelled_in_slurm(server: LabServer, active: str, lab: SlurmLab) -> None:
    job, _ = submit(server, active, "sleep 300")
    with server.client("alice") as client:
        wait_until(
            "the long job runs",
            lambda: (
                client.get(f"/api/clusters/alice/{active}/jobs/{job['id']}").json()["state"]
                == "running"
            ),
        )
    cancelled = server.corral("alice", "cluster", "cancel", active, str(job["id"]), "-o", "json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert wait_until("Slurm cancels it", lambda: scontrol_state(lab, job["job_id"]) == "CANCELLED")
    with server.client("alice") as client:
        wait_until(
            "Corral sees it cancelled",
            lambda: (
                client.get(f"/api/clusters/alice/{active}/jobs/{job['id']}").json()["state"]
                == "cancelled"
            ),
        )


def pool(server: LabServer) -> dict[str, int]:
    response = httpx.get(f"{server.url}/api/ssh/pool", headers=server.admin, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def sessions_started(lab: SlurmLab) -> int:
    return lab.sshd_log().count("Starting session: command for alice")


def test_concurrent_status_requests_share_one_connection_and_few_polls(
    server: LabServer, active: str, lab: SlurmLab
) -> None:
    _, url = submit(server, active, "sleep 30")
    with server.client("alice") as client:
        assert client.get(url).status_code == 200  # the connection is open now
    before, sessions_before = pool(server), sessions_started(lab)

    async def hundred() -> list[int]:
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.users["alice"], timeout=60
        ) as client:
            responses = await asyncio.gather(*(client.get(url) for _ in range(100)))
        return [r.status_code for r in responses]

    assert asyncio.run(hundred()) == [200] * 100
    after, sessions_after = pool(server), sessions_started(lab)
    assert after["connections_opened"] == before["connections_opened"], (before, after)
    # One squeue per poll; the background poll of the cluster may add a few.
    polls = sessions_after - sessions_before
    assert polls <= 10, f"sshd saw {polls} commands for 100 status requests"
    with server.client("alice") as client:
        client.post(f"{url}/cancel")


def test_a_burst_of_submissions_shares_ssh_sessions_and_every_job_runs(
    server: LabServer, active: str, lab: SlurmLab
) -> None:
    url = f"/api/clusters/alice/{active}/jobs"
    with server.client("alice") as client:  # the connection is open now
        assert client.get(url).status_code == 200
    sessions_before = sessions_started(lab)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.users["alice"], timeout=60
        ) as client:
            return await asyncio.gather(
                *(
                    client.post(url, json={"script": f"#!/bin/bash\necho burst-{i}\n"})
                    for i in range(40)
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [201] * 40, [r.text for r in responses]
    sessions = sessions_started(lab) - sessions_before
    assert sessions < 40, f"sshd saw {sessions} commands for 40 submissions: none went together"
    jobs = [r.json() for r in responses]
    assert len({job["job_id"] for job in jobs}) == 40, "each submission is its own Slurm job"
    with server.client("alice") as client:
        for i, job in enumerate(jobs):
            job_url = f"{url}/{job['id']}"
            shown = wait_until(
                f"job {job['job_id']} finished",
                lambda u=job_url: finished(client.get(u).json()),
                timeout=120,
            )
            assert shown["state"] == "completed", shown
            output = client.get(f"{job_url}/output").text
            assert output == f"burst-{i}\n", f"job {i} printed {output!r}: its own script"


def test_sshd_restart_reconnects_and_a_job_submitted_before_completes(
    server: LabServer, active: str, lab: SlurmLab
) -> None:
    _, url = submit(server, active, "sleep 5; echo done")
    before = pool(server)
    with server.client("alice") as client:
        assert client.get(url).status_code == 200
        lab.run("restart-sshd")
        # The next calls go over a new connection (the first may still meet the dead one).
        codes = [client.get(url).status_code for _ in range(5)]
        assert codes[-3:] == [200, 200, 200], codes
        state = wait_until(
            "the job completes",
            lambda: (s := client.get(url).json()["state"]) in TERMINAL and s,
            timeout=60,
        )
    assert state == "completed"
    assert pool(server)["connections_opened"] > before["connections_opened"]


def test_unreachable_wrong_user_and_bad_jump_each_fail_with_their_reason(
    server: LabServer, lab: SlurmLab
) -> None:
    cases = {
        "nohost": (["--host", "10.77.0.99"], "cannot reach alice@10.77.0.99:22"),
        "nouser": (["--host", lab.login_host, "--user", "nosuchuser"], "refused to let"),
        "nojump": (
            ["--host", lab.login_host, "--jump", "alice@10.77.0.98"],
            "through the jump host alice@10.77.0.98",
        ),
    }
    for name, (args, _) in cases.items():
        done = server.corral("alice", "cluster", "create", name, *args, "--start")
        assert done.returncode == 0, done.stderr
    for name, (_, reason) in cases.items():
        found = wait_until(f"{name} settles", lambda n=name: settled(server, n), timeout=30)
        assert found["status"] == "failed", found
        assert reason in found["reason"], found["reason"]
    via_jump = create(server, "viajump", "--jump", f"alice@{lab.jump_host}")
    assert via_jump["status"] == "active", via_jump["reason"]


def test_corral_ssh_runs_commands_with_their_exit_status(server: LabServer, active: str) -> None:
    done = server.corral("alice", "ssh", active, "hostname")
    assert (done.returncode, done.stdout.strip()) == (0, "ctl"), done.stderr
    done = server.corral("alice", "ssh", active, "echo oops >&2; exit 3")
    assert done.returncode == 3 and done.stderr.strip() == "oops"
    done = server.corral("alice", "ssh", active, "cat", input="through stdin\n")
    assert done.stdout == "through stdin\n"


def test_proxy_command_from_stock_openssh_and_refusal_without_grant(
    server: LabServer, active: str, tmp_path: Path
) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with server.client("alice") as client:
        added = client.post(
            "/api/ssh-keys", json={"name": "laptop", "key": key.with_suffix(".pub").read_text()}
        )
        assert added.status_code == 201, added.text
    proxy = f"{sys.executable} -m corral_sdk.cli.main ssh --proxy-command %h"
    command = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
        "-o",
        f"ProxyCommand={proxy}",
        f"alice@{active}",
        "hostname",
    ]
    done = subprocess.run(
        command,
        env=server.cli_env("alice"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ctl"), done.stderr
    payload = tmp_path / "payload.txt"
    payload.write_text("copied through Corral\n")
    options = command[1:-2]  # the same flags; scp takes them as ssh does
    copied = subprocess.run(
        ["scp", "-O", *options, str(payload), f"alice@{active}:payload.txt"],
        env=server.cli_env("alice"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert copied.returncode == 0, copied.stderr
    shown = server.corral("alice", "ssh", active, "cat payload.txt; rm payload.txt")
    assert shown.stdout == "copied through Corral\n", shown.stderr
    refused = subprocess.run(
        [*command[:-2], "alice@alice/lab", "hostname"],
        check=False,
        env=server.cli_env("bob"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 255
    assert "not found: pw://alice/lab" in refused.stderr, refused.stderr


def test_relay_needs_credentials_and_hides_clusters_of_others(
    server: LabServer, active: str
) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = server.url.replace("http://", "ws://") + "/api/ssh/connect?target=pw://alice/lab"
    with pytest.raises(InvalidStatus) as refused:
        connect(url)
    # The handshake is refused before the WebSocket opens; uvicorn answers such refusals 403.
    assert refused.value.response.status_code in {401, 403}
    with connect(url, additional_headers=server.users["bob"]) as ws:
        message = json.loads(ws.recv(timeout=30))
    assert message["type"] == "error" and message["status"] == 404


def test_changed_host_key_is_refused_until_an_admin_accepts_it(
    server: LabServer, active: str, lab: SlurmLab
) -> None:
    keys = httpx.get(f"{server.url}/api/ssh/host-keys", headers=server.admin).json()
    pinned = [k for k in keys if k["host"] == lab.login_host and k["trusted"]]
    assert len(pinned) == 1
    lab.run("rekey")
    found = wait_until(
        "the cluster fails on the new key",
        # rekey restarts sshd, so a check may first fail on the dropped connection
        lambda: (
            (c := cluster(server, "alice", active))["status"] == "failed"
            and "host key" in c["reason"]
            and c
        ),
        timeout=30,
    )
    offered = [
        k
        for k in httpx.get(f"{server.url}/api/ssh/host-keys", headers=server.admin).json()
        if k["host"] == lab.login_host and not k["trusted"]
    ]
    assert len(offered) == 1
    assert lab.login_host in found["reason"]
    assert pinned[0]["fingerprint"] in found["reason"]
    assert offered[0]["fingerprint"] in found["reason"]
    accepted = httpx.post(
        f"{server.url}/api/ssh/host-keys/accept",
        json={"host": lab.login_host, "fingerprint": offered[0]["fingerprint"]},
        headers=server.admin,
    )
    assert accepted.status_code == 200, accepted.text
    wait_until(
        "the cluster recovers",
        lambda: cluster(server, "alice", active)["status"] == "active",
        timeout=30,
    )


def test_stop_then_delete(server: LabServer) -> None:
    create(server, "shortlived")
    with server.client("alice") as client:
        refused = client.delete("/api/clusters/alice/shortlived")
        assert refused.status_code == 409
        assert client.post("/api/clusters/alice/shortlived/stop").status_code == 202
        wait_until(
            "it stops",
            lambda: client.get("/api/clusters/alice/shortlived").json()["status"] == "off",
        )
        assert client.delete("/api/clusters/alice/shortlived").status_code == 204
        assert client.get("/api/clusters/alice/shortlived").status_code == 404
