"""The workflow lab of the kernel's tests: a runtime on a test deployment, its admin, a real
workspace, and an engine driven tick by tick (with the runs of sub-workflows) until a run ends."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

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
from corral_core.workflows.runs import Parent, RunService
from corral_sdk.wire import WorkflowCreate

__all__ = ["Finished", "Lab", "lab"]


PLATFORM_URL = "http://corral.test:8080"
"""What the lab's workspace steps are told Corral's URL is (``PW_PLATFORM_HOST``)."""


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
        self.runs = RunService(
            runtime.db,
            runtime.workflows,
            runtime.secrets,
            self._enqueue,
            sources=runtime.runs.sources,
        )
        self.engine = self.new_engine()

    async def _enqueue(self, run_id: int) -> None:
        return None

    async def executor(self, run: WorkflowRun, target: Any) -> WorkspaceExecutor:
        if run.username not in self.executors:
            self.executors[run.username] = WorkspaceExecutor(
                self.root / run.username, kill_grace=1.0, platform_url=PLATFORM_URL
            )
        return self.executors[run.username]

    def new_engine(self) -> RunEngine:
        return RunEngine(
            self.runtime.db,
            self.executor,
            self._enqueue,
            self.runtime.secrets,
            actions=self.runtime.kernel.workflow_actions().get,
            start_subrun=self.start_subrun,
            sessions=self.runtime.run_sessions,
            tokens=self.runtime.authn,
        )

    async def start_subrun(
        self, parent: WorkflowRun, step: RunStep, uses: str, inputs: dict[str, Any]
    ) -> int:
        run = await self.runs.start_uses(self.principal, uses, inputs, parent=Parent(parent, step))
        return run.id or 0

    async def create(self, name: str, yaml: str) -> None:
        await self.runtime.workflows.create(self.principal, WorkflowCreate(name=name, yaml=yaml))

    async def start(self, yaml: str, inputs: dict[str, Any] | None = None) -> WorkflowRun:
        name = f"w{uuid.uuid4().hex[:8]}"
        await self.runtime.workflows.create(self.principal, WorkflowCreate(name=name, yaml=yaml))
        return await self.runs.start(
            self.principal, ResourceRef(self.principal.username, name), inputs or {}
        )

    async def finish(self, run_id: int, timeout: float = 60) -> Finished:
        """Tick the run, and every other unfinished run (its sub-workflows' runs), until it is
        finished."""
        deadline = time.monotonic() + timeout
        while not await self.engine.tick(run_id, budget=1):
            assert time.monotonic() < deadline, "the run did not finish"
            async with self.runtime.db.session() as session:
                others = list(
                    await session.exec(
                        select(WorkflowRun.id)
                        .where(col(WorkflowRun.finished).is_(False))
                        .where(col(WorkflowRun.id) != run_id)
                    )
                )
            for other in others:
                await self.engine.tick(other or 0, budget=0.2)
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
