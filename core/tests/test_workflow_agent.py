"""``scheduler-agent`` and ``wait-for-agent`` (spec §8.4) against a fake scheduler, in a real
workspace directory: the script submitted with the flags and headers, the outputs, ``wait:
false``, failing fast when the job ends first, the host key trusted, the job cancelled on
release. The fake stands where the scheduler daemons would (none run in core's tests); the
lab tests run the agent for real on Slurm and sign in to its sshd through the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from corral_core.plugins import builtin, load_kernel
from corral_core.workflows import agent
from corral_core.workflows.agent import SchedulerAgentInputs, WaitForAgentInputs
from corral_core.workflows.local_runner import LocalRunner
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.scheduler import JobSpec, JobState, JobStatus, SubmittedJob
from corral_sdk.records import WorkflowActionRecord
from corral_sdk.testing.conformance import WorkflowActionConformance
from corral_sdk.testing.recording import RecordingActionContext

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMq5cO2m0mbE0tyA7Fc0S6mXf1mP1Hd0sKzB3tJ8mD1H"
USER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv2ZbD7Fh6Y0lQ9oJ9cN6c8q3mZ0bP4vXfT0rK1l7Zc user"


def _write(path: Path, text: str) -> None:
    path.write_text(text)


class FakeScheduler:
    """Records submissions; its job "starts" an agent by writing the agent's ready file and
    host key into the job's working directory, unless ``ends_as`` makes it end first."""

    def __init__(self, *, starts: bool = True, ends_as: JobState | None = None) -> None:
        self.submitted: list[JobSpec] = []
        self.cancelled: list[str] = []
        self.starts = starts
        self.ends_as = ends_as

    async def submit(self, job: JobSpec) -> SubmittedJob:
        self.submitted.append(job)
        if self.starts and self.ends_as is None:
            where = Path(job.working_directory or "")
            _write(where / "host_key.pub", HOST_KEY + "\n")
            _write(where / "ready", "10.1.2.3 40123\n")
        if self.ends_as is not None:
            _write(Path(job.output_path or ""), "corral agent: sshd did not start on n1\n")
        return SubmittedJob(job_id=str(100 + len(self.submitted)))

    async def status(self, job_ids: Sequence[str]) -> Mapping[str, JobStatus]:
        state = self.ends_as or JobState.RUNNING
        return {
            job_id: JobStatus(
                job_id=job_id,
                state=JobState.CANCELLED if job_id in self.cancelled else state,
            )
            for job_id in job_ids
        }

    async def cancel(self, job_ids: Sequence[str]) -> None:
        self.cancelled.extend(job_ids)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def runner(home: Path) -> LocalRunner:
    return LocalRunner(home, {"PATH": "/usr/bin:/bin"})


def context(runner: LocalRunner, scheduler: FakeScheduler) -> RecordingActionContext:
    return RecordingActionContext(
        runner=runner, scheduler=scheduler, ssh_public_key=USER_KEY, run_id="r1"
    )


class TestSchedulerAgentConformance(WorkflowActionConformance):
    @pytest.fixture
    def plugin(self) -> object:
        return builtin

    @pytest.fixture
    def record(self) -> WorkflowActionRecord:
        return load_kernel().workflow_actions()["scheduler-agent"]

    @pytest.fixture
    def provider(self, record: WorkflowActionRecord) -> Any:
        return record.create()

    @pytest.fixture
    def inputs(self) -> SchedulerAgentInputs:
        return SchedulerAgentInputs(scheduler_flags={"partition": "debug"})

    @pytest.fixture
    def invalid_inputs(self) -> SchedulerAgentInputs:
        return SchedulerAgentInputs(scheduler_flags={"--evil x": "1"})

    @pytest.fixture
    def scheduler(self) -> FakeScheduler:
        return FakeScheduler()

    @pytest.fixture
    def runner(self, home: Path) -> LocalRunner:
        return LocalRunner(home, {"PATH": "/usr/bin:/bin"})


@pytest.mark.anyio
async def test_the_agent_is_submitted_with_flags_and_headers_and_reports_where_it_serves(
    runner: LocalRunner, home: Path
) -> None:
    scheduler = FakeScheduler()
    ctx = context(runner, scheduler)
    inputs = SchedulerAgentInputs(
        scheduler_flags={"partition": "gpu", "time": "00:30:00", "exclusive": True, "x": False},
        script_headers="#SBATCH --constraint=ib\n#SBATCH --comment=agent",
    )
    result = await agent.SchedulerAgent().run(inputs, ctx)
    (job,) = scheduler.submitted
    assert job.flags == {"partition": "gpu", "time": "00:30:00", "exclusive": None}
    assert job.script_headers == inputs.script_headers
    assert job.script.startswith("#!/bin/bash\n") and "agent.sh" in job.script
    agent_id = result.outputs["agentId"]
    directory = home / ".corral" / "agents" / agent_id
    assert job.working_directory == str(directory)
    assert result.outputs == {
        "agentId": agent_id, "schedulerJobId": "101", "remoteHost": "10.1.2.3", "sshPort": "40123"
    }  # fmt: skip
    # only the user's platform key opens the agent; its sshd's key is trusted, nothing else
    assert (directory / "authorized_keys").read_text() == USER_KEY + "\n"
    assert (directory / "authorized_keys").stat().st_mode & 0o077 == 0
    assert ctx.trusted == {("10.1.2.3", 40123): HOST_KEY}
    assert (directory / "job").read_text().strip() == "101"
    assert (home / ".corral" / "bin" / "pw").stat().st_mode & 0o111

    # run again (a worker died while it waited): the same job, not a second one
    again = await agent.SchedulerAgent().run(inputs, ctx)
    assert again.outputs == result.outputs and len(scheduler.submitted) == 1

    await agent.SchedulerAgent().release(result.outputs, ctx)
    assert scheduler.cancelled == ["101"] and not directory.exists()


@pytest.mark.anyio
async def test_wait_false_returns_the_agent_id_at_once_and_wait_for_agent_waits(
    runner: LocalRunner, home: Path
) -> None:
    scheduler = FakeScheduler(starts=False)
    ctx = context(runner, scheduler)
    started = await agent.SchedulerAgent().run(SchedulerAgentInputs(wait=False), ctx)
    assert set(started.outputs) == {"agentId", "schedulerJobId"}
    directory = home / ".corral" / "agents" / started.outputs["agentId"]

    waiting = asyncio.create_task(
        agent.WaitForAgent().run(WaitForAgentInputs(agent_id=started.outputs["agentId"]), ctx)
    )
    await asyncio.sleep(1.5)
    assert not waiting.done()  # nothing is ready yet
    (directory / "host_key.pub").write_text(HOST_KEY + "\n")
    (directory / "ready").write_text("node7 2222\n")
    done = await asyncio.wait_for(waiting, 10)
    assert done.outputs == {"remoteHost": "node7", "sshPort": "2222"}
    assert ctx.trusted[("node7", 2222)] == HOST_KEY


@pytest.mark.anyio
async def test_waiting_fails_as_soon_as_the_agents_job_ends(runner: LocalRunner) -> None:
    scheduler = FakeScheduler(ends_as=JobState.CANCELLED)
    ctx = context(runner, scheduler)
    with pytest.raises(ProviderError) as failed:
        await asyncio.wait_for(agent.SchedulerAgent().run(SchedulerAgentInputs(), ctx), 10)
    assert "ended (cancelled)" in failed.value.message
    assert "sshd did not start on n1" in failed.value.message  # the end of its output
    assert ctx.outputs["schedulerJobId"] == "101"  # published first: released after a failure


@pytest.mark.anyio
async def test_agents_need_a_cluster_and_a_real_agent_id(runner: LocalRunner) -> None:
    with pytest.raises(Invalid) as no_cluster:
        await agent.SchedulerAgent().run(SchedulerAgentInputs(), RecordingActionContext())
    assert no_cluster.value.field == "ssh"
    with pytest.raises(Invalid) as bad_id:
        await agent.WaitForAgent().validate(WaitForAgentInputs(agent_id="../../etc"))
    assert bad_id.value.field == "with.agentId"
    ctx = context(runner, FakeScheduler())
    with pytest.raises(ProviderError, match="no agent agent-x"):
        await agent.WaitForAgent().run(WaitForAgentInputs(agent_id="agent-x"), ctx)
