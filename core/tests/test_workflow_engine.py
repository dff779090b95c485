"""The workflow engine running the spec's examples in a real workspace (steps are real
processes): statuses, what printed, which steps ran, timeouts, retries, cleanups, outputs,
matrices, cancel, and a worker that dies in the middle of a run."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from corral_core.db import utcnow
from corral_core.identity.models import User
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.migrations import upgrade
from corral_core.plugins import load_kernel
from corral_core.runtime import Runtime
from corral_core.testing import ADMIN_PASSWORD, TestDeployment
from corral_core.workflows.engine import RunEngine
from corral_core.workflows.executors import WorkspaceExecutor
from corral_core.workflows.models import RunJob, RunLogLine, RunStep, WorkflowRun
from corral_core.workflows.runs import RunService
from corral_sdk.errors import Invalid
from corral_sdk.wire import WorkflowCreate

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).parent / "workflows"


@dataclass
class Finished:
    run: WorkflowRun
    jobs: dict[str, RunJob]
    steps: dict[str, list[RunStep]]
    lines: list[str]

    def printed(self, job: str) -> list[str]:
        """What the job's steps printed (not the engine's own lines, which start with '[')."""
        return [line for line in self.job_lines(job) if not line.startswith("[")]

    def job_lines(self, job: str) -> list[str]:
        return [line for line in self.lines if line.startswith(f"{job}\t")] and [
            line.split("\t", 1)[1] for line in self.lines if line.startswith(f"{job}\t")
        ]


class Lab:
    def __init__(self, runtime: Runtime, principal: Principal, root: Path) -> None:
        self.runtime = runtime
        self.principal = principal
        self.root = root
        self.executors: dict[str, WorkspaceExecutor] = {}
        self.runs = RunService(runtime.db, runtime.workflows, runtime.secrets, self._enqueue)
        self.engine = self.new_engine()

    async def _enqueue(self, run_id: int) -> None:
        return None

    async def executor(self, run: WorkflowRun, target: Any) -> WorkspaceExecutor:
        if run.username not in self.executors:
            self.executors[run.username] = WorkspaceExecutor(
                self.root / run.username, kill_grace=1.0
            )
        return self.executors[run.username]

    def new_engine(self) -> RunEngine:
        return RunEngine(self.runtime.db, self.executor, self._enqueue, self.runtime.secrets)

    async def start(self, yaml: str, inputs: dict[str, Any] | None = None) -> WorkflowRun:
        name = f"w{uuid.uuid4().hex[:8]}"
        await self.runtime.workflows.create(self.principal, WorkflowCreate(name=name, yaml=yaml))
        return await self.runs.start(
            self.principal, ResourceRef(self.principal.username, name), inputs or {}
        )

    async def finish(self, run_id: int, timeout: float = 60) -> Finished:
        deadline = time.monotonic() + timeout
        while not await self.engine.tick(run_id, budget=2):
            assert time.monotonic() < deadline, "the run did not finish"
            await asyncio.sleep(0)
        return await self.result(run_id)

    async def result(self, run_id: int) -> Finished:
        async with self.runtime.db.session() as session:
            run = await session.get(WorkflowRun, run_id)
            assert run is not None
            jobs = list(await session.exec(select(RunJob).where(col(RunJob.run_id) == run_id)))
            steps = list(
                await session.exec(
                    select(RunStep)
                    .where(col(RunStep.run_id) == run_id)
                    .order_by(col(RunStep.run_job_id), col(RunStep.position))
                )
            )
            lines = list(
                await session.exec(
                    select(RunLogLine)
                    .where(col(RunLogLine.run_id) == run_id)
                    .order_by(col(RunLogLine.offset))
                )
            )
        by_id = {j.id: j.name for j in jobs}
        grouped: dict[str, list[RunStep]] = {}
        for step in steps:
            grouped.setdefault(by_id[step.run_job_id], []).append(step)
        assert [line.offset for line in lines] == list(range(len(lines)))
        return Finished(
            run, {j.name: j for j in jobs}, grouped, [f"{x.job}\t{x.line}" for x in lines]
        )

    async def run(self, yaml: str, inputs: dict[str, Any] | None = None) -> Finished:
        return await self.finish((await self.start(yaml, inputs)).id or 0)


@pytest.fixture
async def lab(deployment: TestDeployment, tmp_path: Path) -> AsyncIterator[Lab]:
    runtime = Runtime(deployment.settings(), load_kernel(), "all")
    upgrade(runtime.db)
    await runtime.identity.bootstrap("default", "root", ADMIN_PASSWORD)
    async with runtime.db.session() as session:
        user = (await session.exec(select(User).where(col(User.username) == "root"))).one()
    principal = await runtime.authn.principal(user)
    try:
        yield Lab(runtime, principal, tmp_path / "workspaces")
    finally:
        await runtime.close()


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


async def test_env_precedence_step_over_job_over_workflow(lab: Lab) -> None:
    done = await lab.run(example("env_precedence.yaml"))
    assert done.run.status == "completed"
    assert done.printed("job-name") == ["c"]
    without_step = example("env_precedence.yaml").replace("        env:\n          foo: c\n", "")
    assert (await lab.run(without_step)).printed("job-name") == ["b"]
    global_only = without_step.replace("    env:\n      foo: b\n", "")
    assert (await lab.run(global_only)).printed("job-name") == ["a"]


async def test_needs_orders_jobs_and_a_failure_skips_dependents(lab: Lab) -> None:
    done = await lab.run(example("needs_order.yaml"))
    assert done.run.status == "completed"
    first, second = done.jobs["first"], done.jobs["second"]
    assert first.finished_at is not None and second.started_at is not None
    assert second.started_at >= first.finished_at
    failing = example("needs_order.yaml").replace("echo runs first", "exit 4")
    done = await lab.run(failing)
    assert (done.run.status, done.jobs["first"].status, done.jobs["second"].status) == (
        "error", "error", "skipped"
    )  # fmt: skip


async def test_jobs_without_needs_run_together(lab: Lab) -> None:
    yaml = "jobs:\n" + "".join(f"  j{i}:\n    steps:\n      - run: sleep 1\n" for i in range(2))
    done = await lab.run(yaml)
    a, b = done.jobs["j0"], done.jobs["j1"]
    assert a.started_at and b.started_at and a.finished_at and b.finished_at
    assert a.started_at < b.finished_at and b.started_at < a.finished_at


async def test_cleanups_run_in_reverse_after_a_failure(lab: Lab) -> None:
    done = await lab.run(example("cleanup_order.yaml"))
    assert done.run.status == "error"
    printed = done.printed("main")
    assert printed[-5:] == ["first", "second", "third", "fourth", "fifth"], done.lines
    statuses = [(s.kind, s.status) for s in done.steps["main"]]
    assert statuses[0] == ("step", "error")


async def test_ignore_errors_keeps_the_job_successful(lab: Lab) -> None:
    yaml = "jobs:\n  a:\n    steps:\n      - run: exit 3\n        ignore-errors: true\n"
    done = await lab.run(yaml)
    assert done.run.status == "completed" and done.steps["a"][0].exit_status == 3


async def test_conditions_from_inputs(lab: Lab) -> None:
    on = await lab.run(example("conditionals.yaml"), {"should-run": True})
    assert on.jobs["extra"].status == "completed"
    assert on.printed("main") == ["hello world", "This ran because of an input!"]
    off = await lab.run(example("conditionals.yaml"), {"should-run": False})
    assert off.jobs["extra"].status == "skipped" and off.run.status == "completed"
    assert off.printed("main") == ["hello world"]


async def test_matrix_instances_and_max_parallel(lab: Lab, tmp_path: Path) -> None:
    done = await lab.run(example("matrix.yaml"))
    printed = sorted(line for job in done.jobs for line in done.printed(job))
    assert printed == sorted(f"{os} v{v}" for os in ("ubuntu", "centos") for v in (1, 2, 3))
    seen = tmp_path / "concurrency"
    yaml = f"""jobs:
  deploy:
    strategy:
      max-parallel: 2
      matrix:
        n: [1, 2, 3, 4, 5]
    steps:
      - run: |
          echo start >> {seen}; sleep 0.6; echo end >> {seen}
"""
    assert (await lab.run(yaml)).run.status == "completed"
    level = peak = 0
    for event in seen.read_text().split():
        level += 1 if event == "start" else -1
        peak = max(peak, level)
    assert peak == 2


async def test_outputs_auto_published_and_named(lab: Lab) -> None:
    done = await lab.run(example("outputs_auto.yaml"))
    assert done.printed("job1") == ["3001"] and done.printed("job2") == ["3001"]
    named = await lab.run(example("outputs_named.yaml"))
    assert named.jobs["build"].outputs == {
        "version": "1.2.3",
        "artifact_url": "https://example.com/artifact.zip",
    }


async def test_step_and_workflow_timeouts(lab: Lab) -> None:
    yaml = "jobs:\n  main:\n    steps:\n      - run: sleep 30\n        timeout: 1s\n"
    began = time.monotonic()
    done = await lab.run(yaml)
    assert done.run.status == "error" and time.monotonic() - began < 15
    assert "timed out" in done.steps["main"][0].reason
    began = time.monotonic()
    done = await lab.run("timeout: 2s\njobs:\n  main:\n    steps:\n      - run: sleep 30\n")
    assert done.run.status == "error" and "timed out after 2s" in done.run.reason
    assert time.monotonic() - began < 15


async def test_retries(lab: Lab, tmp_path: Path) -> None:
    count = tmp_path / "attempts"
    yaml = f"""jobs:
  main:
    steps:
      - run: |
          echo x >> {count}
          [ "$(wc -l < {count})" -ge 3 ]
        retry:
          max-retries: 3
          interval: 100ms
"""
    done = await lab.run(yaml)
    assert done.run.status == "completed" and done.steps["main"][0].attempt == 2
    assert count.read_text().count("x") == 3
    always = (
        "jobs:\n  main:\n    steps:\n      - run: exit 1\n"
        "        retry:\n          interval: 10ms\n"
    )
    done = await lab.run(always)
    assert done.run.status == "error" and done.steps["main"][0].attempt == 10  # 11 attempts


async def test_the_default_working_directory(lab: Lab) -> None:
    done = await lab.run("jobs:\n  main:\n    steps:\n      - run: pwd\n")
    workflow = done.run.plan["workflow"]
    assert done.printed("main") == [str(lab.root / "root" / "pw/jobs" / workflow / "00001")]


async def test_cancel_still_runs_cleanups(lab: Lab, tmp_path: Path) -> None:
    mark = tmp_path / "cleaned"
    yaml = f"jobs:\n  main:\n    steps:\n      - run: sleep 60\n        cleanup: touch {mark}\n"
    run = await lab.start(yaml)
    assert not await lab.engine.tick(run.id or 0, budget=1)
    await lab.engine.cancel(run.id or 0)
    done = await lab.finish(run.id or 0, timeout=30)
    assert done.run.status == "canceled" and mark.exists()
    assert done.steps["main"][0].status == "canceled"


async def test_bad_inputs_are_refused_naming_the_input(lab: Lab) -> None:
    with pytest.raises(Invalid) as caught:
        await lab.start(example("conditionals.yaml"), {"should-run": "perhaps"})
    assert caught.value.field == "inputs.should-run"


async def test_a_worker_that_dies_mid_run_neither_loses_nor_repeats_a_step(
    lab: Lab, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    yaml = (
        f"jobs:\n  main:\n    steps:\n      - run: echo once >> {ran}; sleep 2\n"
        "      - run: echo two\n"
    )
    run = await lab.start(yaml)
    assert not await lab.engine.tick(run.id or 0, budget=0.5)
    # a new process: another engine, other executors, the old lease left to expire
    async with lab.runtime.db.session() as session:
        row = await session.get(WorkflowRun, run.id)
        assert row is not None
        row.lease_owner = "dead-worker"
        row.lease_until = utcnow() - timedelta(seconds=1)
        session.add(row)
        await session.commit()
    lab.executors.clear()
    lab.engine = lab.new_engine()
    done = await lab.finish(run.id or 0)
    assert done.run.status == "completed"
    assert ran.read_text() == "once\n"
    assert done.printed("main") == ["two"]


async def test_passwords_reach_the_step_but_are_not_stored_in_clear(lab: Lab) -> None:
    yaml = """jobs:
  main:
    steps:
      - run: test "${{ inputs.secret }}" = hunter2 && echo matched
on:
  execute:
    inputs:
      secret:
        type: password
"""
    done = await lab.run(yaml, {"secret": "hunter2"})
    assert done.run.status == "completed" and done.printed("main") == ["matched"]
    assert done.run.inputs == {"secret": "********"}
    assert "hunter2" not in done.run.secret_inputs
