"""Workflow runs: start one, list a workflow's, read the run graph and the log from an offset,
cancel."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlmodel import col, func, select

from corral_api.params import Limit, Offset, RowId
from corral_api.security import Caller, RuntimeDep
from corral_core.identity.names import ResourceRef
from corral_core.workflows.models import RunJob, RunLogLine, RunStep, WorkflowRun
from corral_sdk.wire import (
    RunInfo,
    RunJobInfo,
    RunList,
    RunLogLineInfo,
    RunLogs,
    RunStart,
    RunStepInfo,
)

__all__ = ["RunController", "WorkflowRunController", "run_info"]

MAX_LOG_LINES = 5000


def run_info(
    run: WorkflowRun,
    workflow: str,
    jobs: list[RunJob] | None = None,
    steps: list[RunStep] | None = None,
) -> RunInfo:
    runtime = None
    if run.started_at is not None and run.finished_at is not None:
        runtime = (run.finished_at - run.started_at).total_seconds()
    by_job: dict[int, list[RunStepInfo]] = {}
    for step in steps or []:
        by_job.setdefault(step.run_job_id, []).append(
            RunStepInfo(
                index=step.index,
                kind=step.kind,
                name=step.name,
                status=step.status,
                attempt=step.attempt,
                exit_status=step.exit_status,
                reason=step.reason,
                outputs=dict(step.outputs),
                started_at=step.started_at,
                finished_at=step.finished_at,
            )
        )
    return RunInfo(
        id=run.id or 0,
        number=run.number,
        slug=run.slug,
        workflow=workflow,
        username=run.username,
        status=run.status,
        reason=run.reason,
        version=run.version,
        inputs=dict(run.inputs),
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        runtime_seconds=runtime,
        jobs=[
            RunJobInfo(
                name=j.name,
                job=j.job,
                status=j.status,
                reason=j.reason,
                matrix=dict(j.matrix),
                needs=list(j.needs),
                outputs=dict(j.outputs),
                started_at=j.started_at,
                finished_at=j.finished_at,
                steps=by_job.get(j.id or 0, []),
            )
            for j in jobs or []
        ],
    )


def _workflow_uri(run: WorkflowRun) -> str:
    return str(run.plan.get("workflow_uri", ""))


class WorkflowRunController(Controller):
    path = "/api/workflows/{owner:str}/{name:str}/runs"
    tags = ["workflows"]

    @post("/", summary="Run a workflow; bad input values are refused (422) naming the input",
          status_code=201)  # fmt: skip
    async def start_run(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        data: JSONBody[RunStart],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> RunInfo:
        run = await runtime.runs.start(
            principal,
            ResourceRef(owner, name),
            data.inputs,
            configuration=data.configuration,
            resolve=runtime.targets.resolver(principal),
        )
        return run_info(run, ResourceRef(owner, name).uri)

    @get("/", summary="Your runs of a workflow, newest first")
    async def list_runs(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> RunList:
        resource = await runtime.workflows.get(principal, ResourceRef(owner, name))
        query = select(WorkflowRun).where(col(WorkflowRun.resource_id) == resource.id)
        if not principal.platform_admin:
            query = query.where(col(WorkflowRun.username) == principal.username)
        async with runtime.db.session() as session:
            total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
            rows = list(
                await session.exec(
                    query.order_by(col(WorkflowRun.number).desc()).limit(limit).offset(offset)
                )
            )
        uri = ResourceRef(owner, name).uri
        return RunList(
            items=[run_info(r, uri) for r in rows], total=total, limit=limit, offset=offset
        )


class RunController(Controller):
    path = "/api/runs"
    tags = ["workflows"]

    @get("/{run_id:int}", summary="A run with its jobs and steps (status and timing)")
    async def get_run(self, run_id: RowId, principal: Caller, runtime: RuntimeDep) -> RunInfo:
        run = await runtime.runs.get(principal, run_id)
        jobs, steps = await runtime.runs.graph(run)
        return run_info(run, _workflow_uri(run), jobs, steps)

    @post("/{run_id:int}/cancel", summary="Cancel a run (its cleanups still run)",
          status_code=202)  # fmt: skip
    async def cancel_run(self, run_id: RowId, principal: Caller, runtime: RuntimeDep) -> RunInfo:
        run = await runtime.runs.get(principal, run_id)
        await runtime.engine.cancel(run.id or 0)
        return run_info(await runtime.runs.get(principal, run_id), _workflow_uri(run))

    @get("/{run_id:int}/logs", summary="The run's log from an offset (every line once, in order)")
    async def run_logs(
        self,
        run_id: RowId,
        principal: Caller,
        runtime: RuntimeDep,
        offset: Offset = 0,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=MAX_LOG_LINES)] = 1000,
        job: Annotated[str | None, QueryParameter(name="job", max_length=255)] = None,
    ) -> RunLogs:
        run = await runtime.runs.get(principal, run_id)
        query: Any = (
            select(RunLogLine)
            .where(col(RunLogLine.run_id) == run.id)
            .where(col(RunLogLine.offset) >= offset)
        )
        if job:
            query = query.where(col(RunLogLine.job) == job)
        async with runtime.db.session() as session:
            rows = list(await session.exec(query.order_by(col(RunLogLine.offset)).limit(limit)))
        next_offset = rows[-1].offset + 1 if rows else offset
        return RunLogs(
            lines=[
                RunLogLineInfo(offset=r.offset, job=r.job, step=r.step, at=r.at, line=r.line)
                for r in rows
            ],
            next_offset=next_offset,
            status=run.status,
            finished=run.finished
            and (next_offset >= run.log_count or (job is not None and len(rows) < limit)),
        )
