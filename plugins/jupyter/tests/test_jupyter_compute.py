"""``placement="compute"``: the ``jupyter`` type submits its server as a batch job through the
scheduler it is given. Here the scheduler is a stand-in that runs the job's script for real on
this machine (the lab's tests use Slurm): the job waits pending with the scheduler's reason,
then runs a real JupyterLab listening on the node's address with the token (a kernel runs
``1+1``), the job's request carries the options (partition, time, CPUs, memory, GPUs, account,
QoS, extra options), stop cancels the job and nothing of it is left; a job that ends is
``failed`` with its output; a refused submission is the scheduler's error; bad options are
refused naming their field."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from corral_jupyter.compute import job_spec
from corral_jupyter.jupyter import Jupyter
from corral_jupyter.options import (
    JupyterOptions,
    parse_memory_mb,
    parse_scheduler_options,
    parse_time_limit,
)
from jupyter_stand_in_scheduler import StandInScheduler
from test_jupyter import BASE, command_line, execute, kill_leftovers, new_kernel

from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.session import (
    ScheduledSessionType,
    SessionSpec,
    SessionState,
    SessionStatus,
    SessionTarget,
    SessionType,
    TargetKind,
)
from corral_sdk.testing import RecordingLog
from corral_sdk.testing.shell import ShellRunner, shell_runner


def spec(session_id: str, kind: TargetKind = TargetKind.CLUSTER, **options: Any) -> SessionSpec:
    return SessionSpec(
        name="nb",
        session_id=session_id,
        user="alice",
        target=SessionTarget(kind=kind, name="" if kind is TargetKind.WORKSPACE else "hpc"),
        options=JupyterOptions(placement="compute", **options),
        base_path=BASE,
    )


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[ShellRunner]:
    runner = shell_runner("/bin/sh", tmp_path, {})
    yield runner
    kill_leftovers(runner.home)


@pytest.fixture
def scheduler(runner: ShellRunner) -> Iterator[StandInScheduler]:
    scheduler = StandInScheduler(runner)
    yield scheduler
    scheduler.kill_all()


async def until(
    jupyter: Jupyter,
    session: SessionSpec,
    data: dict[str, str],
    runner: ShellRunner,
    scheduler: StandInScheduler,
    *states: SessionState,
) -> SessionStatus:
    deadline = time.monotonic() + 60
    while True:
        status = await jupyter.status(session, data, runner=runner, scheduler=scheduler)
        if status.state in states:
            return status
        assert status.state is SessionState.STARTING, status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.5)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_jupyter_is_a_scheduled_session_type() -> None:
    assert isinstance(Jupyter(), ScheduledSessionType) and isinstance(Jupyter(), SessionType)


@pytest.mark.anyio
async def test_a_job_pends_then_serves_a_kernel_on_the_node_and_stop_cancels_it(
    runner: ShellRunner, scheduler: StandInScheduler
) -> None:
    jupyter = Jupyter()
    session = spec(
        f"j{uuid.uuid4().hex[:8]}",
        partition="long",
        time_limit="1h30m",
        cpus=2,
        memory="2G",
        account="physics",
        scheduler_options="--constraint=ib --exclusive",
        directory="~/work",
    )
    scheduler.pending_reason = "Resources"
    log = RecordingLog()
    started = await jupyter.start(session, runner=runner, log=log, scheduler=scheduler)
    assert started.state is SessionState.STARTING, started
    assert started.message == "waiting for the scheduler: job 100 is PENDING (Resources)"
    assert started.data == {"placement": "compute", "job": "100"}
    assert any("submitted Jupyter's job 100" in line for line in log.lines), log.lines
    job = scheduler.jobs["100"]
    directory = runner.home / ".corral" / "sessions" / session.session_id
    assert (job.partition, job.time_limit_seconds, job.cpus_per_task, job.memory_mb) == (
        "long", 5400, 2, 2048
    )  # fmt: skip
    assert (job.account, job.nodes, job.ntasks, job.gpus_per_node) == ("physics", 1, 1, None)
    assert job.flags == {"constraint": "ib", "exclusive": None}
    assert job.output_path == f"{directory}/log" and job.working_directory == str(directory)
    token = (directory / "token").read_text()
    assert len(token) == 64 and token not in job.script  # the scheduler keeps scripts
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "token").stat().st_mode & 0o777 == 0o600

    again = await jupyter.start(session, runner=runner, log=RecordingLog(), scheduler=scheduler)
    assert again.data["job"] == "100" and list(scheduler.jobs) == ["100"]  # idempotent

    scheduler.release()
    running = await until(
        jupyter, session, dict(started.data), runner, scheduler, SessionState.RUNNING
    )
    endpoint = running.endpoint
    assert endpoint is not None and endpoint.path == BASE and running.open_path == "lab"
    node = (directory / "node").read_text().split()
    assert endpoint.host in node and endpoint.host != "127.0.0.1", (endpoint.host, node)
    assert running.data["node"] == socket.gethostname() == node[0]
    assert running.data["port"] == str(endpoint.port) and running.data["job"] == "100"
    assert endpoint.headers == {"Authorization": f"token {token}"}
    assert token not in json.dumps(running.data)
    assert (runner.home / "work").is_dir()
    server_pid = scheduler.processes["100"].pid  # the job is the server (exec)
    assert token.encode() not in command_line(str(server_pid))
    assert b"--ServerApp.ip=0.0.0.0" in command_line(str(server_pid))  # the node's addresses

    host, port = endpoint.host, endpoint.port
    async with httpx.AsyncClient(trust_env=False) as client:
        refused = await client.get(f"http://{host}:{port}{BASE}api/kernels")
        assert refused.status_code == 403  # others on the cluster network: not without the token
    kernel_id = await new_kernel(port, endpoint.headers, host)
    assert await execute(port, endpoint.headers, kernel_id, "1+1", host) == "2"
    kernel_pid = int(
        await execute(port, endpoint.headers, kernel_id, "__import__('os').getpid()", host)
    )
    assert alive(kernel_pid)

    await jupyter.stop(session, running.data, runner=runner, scheduler=scheduler)
    assert scheduler.cancel_calls == [["100"]]
    assert (await scheduler.status(["100"]))["100"].state.value == "cancelled"
    assert not directory.exists()
    for pid in (server_pid, kernel_pid):  # the server and its kernel ended with the job
        assert not alive(pid), pid
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.get(f"http://{host}:{port}{BASE}api/status")
    gone = await jupyter.status(session, running.data, runner=runner, scheduler=scheduler)
    assert gone.state is SessionState.STOPPED
    await jupyter.stop(session, running.data, runner=runner, scheduler=scheduler)  # idempotent


@pytest.mark.anyio
async def test_stop_cancels_a_pending_job_and_one_whose_start_was_interrupted(
    runner: ShellRunner, scheduler: StandInScheduler
) -> None:
    scheduler.pending_reason = "Priority"
    session = spec("j2")
    started = await Jupyter().start(session, runner=runner, log=RecordingLog(), scheduler=scheduler)
    assert "PENDING (Priority)" in started.message
    # the kernel lost what start returned: stop finds the job in the session's directory
    await Jupyter().stop(session, {}, runner=runner, scheduler=scheduler)
    assert scheduler.cancel_calls == [["100"]] and "100" in scheduler.cancelled
    assert not (runner.home / ".corral" / "sessions" / "j2").exists()


@pytest.mark.anyio
async def test_a_job_that_ends_fails_with_its_output(
    runner: ShellRunner, scheduler: StandInScheduler
) -> None:
    session = spec("j3", command="no-such-jupyter")
    started = await Jupyter().start(session, runner=runner, log=RecordingLog(), scheduler=scheduler)
    failed = await until(
        Jupyter(), session, dict(started.data), runner, scheduler, SessionState.FAILED
    )
    assert failed.message.startswith("Jupyter's job 100 ended: FAILED (NonZeroExitCode)"), failed
    assert "exit code 1" in failed.message
    assert "no-such-jupyter" in failed.message and "install JupyterLab" in failed.message


@pytest.mark.anyio
async def test_a_refused_submission_is_the_schedulers_error(
    runner: ShellRunner, scheduler: StandInScheduler
) -> None:
    with pytest.raises(ProviderError) as refused:
        await Jupyter().start(
            spec("j4", partition="nosuch"), runner=runner, log=RecordingLog(), scheduler=scheduler
        )
    assert "Invalid partition name specified" in refused.value.message
    with pytest.raises(Invalid) as bad:
        await Jupyter().start(
            spec("j5", scheduler_options="--frobnicate=3"),
            runner=runner,
            log=RecordingLog(),
            scheduler=scheduler,
        )
    assert bad.value.field == "scheduler_options" and "frobnicate" in bad.value.message
    assert not scheduler.jobs


@pytest.mark.anyio
async def test_compute_placement_needs_a_cluster(runner: ShellRunner) -> None:
    session = spec("j6", TargetKind.WORKSPACE)
    with pytest.raises(Invalid) as refused:
        await Jupyter().start(session, runner=runner, log=RecordingLog())
    assert refused.value.field == "placement" and "cluster" in refused.value.message


def test_the_job_carries_gpus_and_qos_and_leaves_unset_options_to_the_scheduler() -> None:
    options = JupyterOptions(placement="compute", gpus="a100:2", qos="debug", interface="notebook")
    session = SessionSpec(
        name="nb",
        session_id="s7",
        user="alice",
        target=SessionTarget(kind=TargetKind.CLUSTER, name="hpc"),
        options=options,
        base_path=BASE,
    )
    job = job_spec(session, options, "/home/alice/.corral/sessions/s7")
    assert (job.gpus_per_node, job.qos, job.name) == ("a100:2", "debug", "corral-jupyter-nb")
    assert job.partition is job.time_limit_seconds is job.memory_mb is job.cpus_per_task is None
    assert job.flags == {} and job.script.startswith("#!/bin/sh\n")
    assert "SESSION=s7\n" in job.script and "APP=notebook\n" in job.script


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("4h", 14400), ("90m", 5400), ("1h30m", 5400), ("2d", 172800), ("1:30:00", 5400),
     ("2-00:00", 172800), ("0:45", 2700), ("1-2:03:04", 93784)],
)  # fmt: skip
def test_time_limits(text: str, seconds: int) -> None:
    assert parse_time_limit(text) == seconds


@pytest.mark.parametrize(
    ("text", "megabytes"),
    [("4G", 4096), ("512M", 512), ("1.5GB", 1536), ("1T", 1048576), ("2000", 2000),
     ("4gib", 4096)],
)  # fmt: skip
def test_memory(text: str, megabytes: int) -> None:
    assert parse_memory_mb(text) == megabytes


def test_scheduler_options() -> None:
    assert parse_scheduler_options("--constraint=ib --exclusive --reservation maint") == {
        "constraint": "ib",
        "exclusive": None,
        "reservation": "maint",
    }
    assert parse_scheduler_options("--comment='two words'") == {"comment": "two words"}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"placement": "login", "partition": "debug"}, "partition"),
        ({"cpus": 4}, "cpus"),  # placement login, the default
        ({"placement": "compute", "time_limit": "90"}, "time_limit"),
        ({"placement": "compute", "time_limit": "1:75:00"}, "time_limit"),
        ({"placement": "compute", "time_limit": "0m"}, "time_limit"),
        ({"placement": "compute", "memory": "lots"}, "memory"),
        ({"placement": "compute", "gpus": "two"}, "gpus"),
        ({"placement": "compute", "cpus": 0}, "cpus"),
        ({"placement": "compute", "partition": "a b"}, "partition"),
        ({"placement": "compute", "account": "x;rm"}, "account"),
        ({"placement": "compute", "scheduler_options": "-C ib"}, "scheduler_options"),
        ({"placement": "compute", "scheduler_options": "--a='open"}, "scheduler_options"),
        ({"placement": "compute", "scheduler_options": "--Bad=1"}, "scheduler_options"),
    ],
)
def test_bad_scheduler_options_name_their_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as bad:
        JupyterOptions(**options)
    assert bad.value.field == field, bad.value.message
    assert field in bad.value.message


def test_options_typed_on_the_command_line_are_text() -> None:
    """``corral sessions create --option cpus=4`` sends text; the kernel converts it loosely
    (``strict=False``), as here."""
    options = msgspec.convert(
        {"placement": "compute", "cpus": "4", "partition": "debug"}, JupyterOptions, strict=False
    )
    assert options.cpus == 4
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"placement": "compute", "cpus": "four"}, JupyterOptions, strict=False)
