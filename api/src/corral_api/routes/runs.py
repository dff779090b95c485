"""Workflow runs: start one, list a workflow's or all of yours, read the run graph, the log (from
an offset, filtered, or streamed as Server-Sent Events) and the failures, cancel, run again,
clean up. A run is named by its id or its slug (``alice.flow.00001``) alike."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, TypeAlias

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlmodel import col, func, select

from corral_api.params import MAX_OFFSET, Limit, Offset
from corral_api.routes.sessions import session_info
from corral_api.security import Caller, RuntimeDep
from corral_core.db import Database
from corral_core.identity.names import ResourceRef
from corral_core.workflows.models import RunJob, RunLogLine, RunStep, WorkflowRun
from corral_core.workflows.run_logs import (
    MAX_LOG_LINES,
    LogFilter,
    failures,
    read_lines,
    resolve_step,
)
from corral_sdk.errors import Invalid, NotFound
from corral_sdk.wire import (
    RunClean,
    RunCleaned,
    RunError,
    RunInfo,
    RunJobInfo,
    RunList,
    RunLogEnd,
    RunLogLineInfo,
    RunLogs,
    RunStart,
    RunStepInfo,
    SessionInfo,
)

__all__ = ["RunController", "WorkflowRunController", "run_info"]

RunRef: TypeAlias = Annotated[
    str,
    PathParameter(
        min_length=1, max_length=255, description="the run's id or slug (alice.flow.00001)"
    ),
]
JobName: TypeAlias = Annotated[
    str | None, QueryParameter(max_length=255, description="only this job's lines")
]
StepName: TypeAlias = Annotated[
    str | None,
    QueryParameter(
        max_length=255, description="only this step's lines (its name or index); needs job"
    ),
]
STREAM_POLL_SECONDS = 0.25
"""How often a log stream looks for new lines while there are none."""
STREAM_BATCH = 500
STREAM_KEEPALIVE_SECONDS = 15.0
"""An idle stream sends a comment this often, so proxies keep the connection open."""


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

    @get("/", summary="Your runs of every workflow, newest first")
    async def list_all_runs(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        status: Annotated[
            Literal["queued", "running", "completed", "error", "canceled"] | None,
            QueryParameter(description="only runs with this status"),
        ] = None,
        workflow: Annotated[
            str | None,
            QueryParameter(max_length=600, description="only runs of this workflow (name)"),
        ] = None,
        search: Annotated[
            str | None,
            QueryParameter(
                max_length=255, description="a part of the workflow's name or the run's slug"
            ),
        ] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> RunList:
        rows, total = await runtime.runs.list_runs(
            principal, status=status, workflow=workflow, search=search, limit=limit,
            offset=offset,
        )  # fmt: skip
        return RunList(
            items=[run_info(run, uri) for run, uri in rows], total=total, limit=limit, offset=offset
        )

    @post("/clean", summary="Delete your finished runs matching every filter given",
          status_code=200)  # fmt: skip
    async def clean_runs(
        self, data: JSONBody[RunClean], principal: Caller, runtime: RuntimeDep
    ) -> RunCleaned:
        deleted = await runtime.runs.clean(
            principal, older_than_days=data.older_than_days, slugs=data.slugs, status=data.status
        )
        gone = set(deleted)
        return RunCleaned(
            deleted=deleted,
            skipped=sorted({slug for slug in data.slugs or [] if slug not in gone}),
        )

    @get("/{ref:str}", summary="A run with its jobs and steps (status and timing)")
    async def get_run(self, ref: RunRef, principal: Caller, runtime: RuntimeDep) -> RunInfo:
        run = await runtime.runs.find(principal, ref)
        jobs, steps = await runtime.runs.graph(run)
        return run_info(run, _workflow_uri(run), jobs, steps)

    @get("/{ref:str}/session", summary="The run's interactive session (legacy service.json)")
    async def run_session(self, ref: RunRef, principal: Caller, runtime: RuntimeDep) -> SessionInfo:
        """A run whose steps wrote ``service.json`` in its directory (in the workspace) gets a
        session serving what it describes (spec §10); 404 while there is none."""
        run = await runtime.runs.find(principal, ref)
        directory = f"~/pw/jobs/{run.plan.get('workflow', 'run')}/{run.number:05d}"
        found = runtime.targets.workspace(run.username) / directory[2:] / "service.json"
        if not await asyncio.to_thread(found.is_file):
            raise NotFound(
                f"run {run.number:05d} has no interactive session: no service.json in {directory}",
                reason="no-session",
            )
        row = await runtime.run_sessions.ensure_legacy(run, directory)
        return session_info(runtime, row)

    @post("/{ref:str}/cancel", summary="Cancel a run (its cleanups still run)",
          status_code=202)  # fmt: skip
    async def cancel_run(self, ref: RunRef, principal: Caller, runtime: RuntimeDep) -> RunInfo:
        run = await runtime.runs.find(principal, ref)
        await runtime.engine.cancel(run.id or 0)
        return run_info(await runtime.runs.find(principal, ref), _workflow_uri(run))

    @post("/{ref:str}/rerun", summary="Run a run's workflow again: same YAML, version and inputs",
          status_code=201)  # fmt: skip
    async def rerun(self, ref: RunRef, principal: Caller, runtime: RuntimeDep) -> RunInfo:
        run = await runtime.runs.rerun(principal, ref)
        return run_info(run, _workflow_uri(run))

    @get("/{ref:str}/logs", summary="The run's log from an offset (every line once, in order)")
    async def run_logs(
        self,
        ref: RunRef,
        principal: Caller,
        runtime: RuntimeDep,
        offset: Offset = 0,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=MAX_LOG_LINES)] = 1000,
        job: JobName = None,
        step: StepName = None,
        failed: Annotated[
            bool, QueryParameter(description="only the lines of steps that ended error")
        ] = False,
        tail: Annotated[
            int,
            QueryParameter(
                ge=0, le=MAX_LOG_LINES, description="only the last N lines of each step (0: all)"
            ),
        ] = 0,
    ) -> RunLogs:
        run = await runtime.runs.find(principal, ref)
        where = LogFilter(
            job=job or None,
            step=await resolve_step(runtime.db, run, job, step) if step else None,
            failed=failed,
            tail=tail,
        )
        rows = await read_lines(runtime.db, run, offset, limit, where)
        next_offset = rows[-1].offset + 1 if rows else offset
        return RunLogs(
            lines=[_line(r) for r in rows],
            next_offset=next_offset,
            status=run.status,
            finished=run.finished
            and (next_offset >= run.log_count or (where.narrowed and len(rows) < limit)),
        )

    @get("/{ref:str}/logs/stream", summary="The run's log as Server-Sent Events, as it is written")
    async def stream_logs(
        self,
        ref: RunRef,
        principal: Caller,
        runtime: RuntimeDep,
        request: Request[Any, Any, Any],
        offset: Offset = 0,
        job: JobName = None,
        step: StepName = None,
        last_event_id: Annotated[
            str | None,
            HeaderParameter(
                name="Last-Event-ID",
                max_length=20,
                description="the id of the last event received: resume after it",
            ),
        ] = None,
    ) -> ServerSentEvent:
        """Each line is an event whose ``id`` is its offset + 1 and whose data is the line as
        JSON (:class:`RunLogLineInfo`); reconnecting with ``Last-Event-ID`` (or ``offset``)
        loses and repeats none. When the run is finished and every line was sent, a last event
        ``end`` carries :class:`RunLogEnd`."""
        run = await runtime.runs.find(principal, ref)
        where = LogFilter(
            job=job or None,
            step=await resolve_step(runtime.db, run, job, step) if step else None,
        )
        start = offset
        if last_event_id is not None:
            text = last_event_id.strip()
            if not (text.isascii() and text.isdigit() and int(text) <= MAX_OFFSET):
                raise Invalid(
                    f"Last-Event-ID: {last_event_id!r} is not an event id of this stream",
                    field="Last-Event-ID",
                )
            start = int(text)
        closing: threading.Event | None = getattr(request.app.state, "closing", None)
        return ServerSentEvent(_stream(runtime.db, run.id or 0, start, where, closing))

    @get("/{ref:str}/errors", summary="The run's failed steps and jobs with the end of their logs")
    async def run_errors(
        self,
        ref: RunRef,
        principal: Caller,
        runtime: RuntimeDep,
        tail: Annotated[
            int,
            QueryParameter(
                ge=0, le=MAX_LOG_LINES, description="log lines per failure (0: up to 5000)"
            ),
        ] = 50,
    ) -> list[RunError]:
        run = await runtime.runs.find(principal, ref)
        jobs, steps = await runtime.runs.graph(run)
        return await failures(runtime.db, run, jobs, steps, tail or MAX_LOG_LINES)


def _line(row: RunLogLine) -> RunLogLineInfo:
    return RunLogLineInfo(offset=row.offset, job=row.job, step=row.step, at=row.at, line=row.line)


async def _stream(
    db: Database, run_id: int, offset: int, where: LogFilter, closing: threading.Event | None
) -> AsyncIterator[ServerSentEventMessage]:
    """Lines from ``offset`` as they are written, then ``end`` once the run is finished; a
    client that goes away cancels this (Litestar listens for the disconnect), and a server
    shutting down (``closing``) ends it so the client reconnects to another one."""
    idle = 0.0
    while True:
        async with db.session() as session:
            run = await session.get(WorkflowRun, run_id)
        if run is None:  # deleted meanwhile
            return
        rows = await read_lines(db, run, offset, STREAM_BATCH, where)
        for row in rows:
            data = msgspec.json.encode(_line(row)).decode()
            yield ServerSentEventMessage(data=data, id=row.offset + 1)
        if rows:
            offset, idle = rows[-1].offset + 1, 0.0
        if run.finished and len(rows) < STREAM_BATCH:
            end = RunLogEnd(status=run.status, reason=run.reason,
                            next_offset=max(offset, run.log_count))  # fmt: skip
            yield ServerSentEventMessage(data=msgspec.json.encode(end).decode(), event="end")
            return
        if closing is not None and closing.is_set():
            return
        if not rows:
            await asyncio.sleep(STREAM_POLL_SECONDS)
            idle += STREAM_POLL_SECONDS
            if idle >= STREAM_KEEPALIVE_SECONDS:
                idle = 0.0
                yield ServerSentEventMessage(data=None, comment="keep-alive")
