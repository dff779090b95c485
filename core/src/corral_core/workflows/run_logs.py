"""Reading a run's log: lines from an offset with filters (a job, a step, failed steps, the
last lines of each step), and the failures of a run with the end of their logs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func
from sqlmodel import col, select

from corral_core.db import Database
from corral_core.workflows.models import RunJob, RunLogLine, RunStep, WorkflowRun
from corral_sdk.errors import Invalid
from corral_sdk.wire import RunError

__all__ = ["MAX_LOG_LINES", "LogFilter", "failures", "read_lines", "resolve_step"]

MAX_LOG_LINES = 5000
"""The most lines one read returns (and the most ``tail`` lines of a step)."""


@dataclass(frozen=True)
class LogFilter:
    job: str | None = None
    """Only this job's lines (a matrix instance's full name)."""
    step: int | None = None
    """Only this step's lines (its index in the job; its cleanup's too); needs ``job``."""
    failed: bool = False
    """Only the lines of steps that ended ``error``."""
    tail: int = 0
    """Only the last ``tail`` lines of each step (0: every line)."""

    @property
    def narrowed(self) -> bool:
        return bool(self.job or self.step is not None or self.failed or self.tail)


async def resolve_step(db: Database, run: WorkflowRun, job: str | None, step: str) -> int:
    """The index of the step ``step`` (its name, or its index) of ``job`` in ``run``."""
    if not job:
        raise Invalid("step: name the job too (job=...)", field="step")
    async with db.session() as session:
        row = (
            await session.exec(
                select(RunJob).where(col(RunJob.run_id) == run.id).where(col(RunJob.name) == job)
            )
        ).first()
        if row is None:
            raise Invalid(f"job: run {run.slug} has no job {job!r}", field="job")
        steps = list(
            await session.exec(
                select(RunStep)
                .where(col(RunStep.run_job_id) == row.id)
                .order_by(col(RunStep.position))
            )
        )
    for candidate in steps:
        if candidate.name and candidate.name == step:
            return candidate.index
    if step.isascii() and step.isdigit() and any(s.index == int(step) for s in steps):
        return int(step)
    raise Invalid(f"step: job {job} of run {run.slug} has no step {step!r}", field="step")


def _conditions(run: WorkflowRun, where: LogFilter) -> list[Any]:
    conditions: list[Any] = [col(RunLogLine.run_id) == run.id]
    if where.job:
        conditions.append(col(RunLogLine.job) == where.job)
    if where.step is not None:
        conditions.append(col(RunLogLine.step) == where.step)
    if where.failed:
        conditions.append(
            exists(
                select(RunStep.id)
                .join(RunJob, col(RunJob.id) == col(RunStep.run_job_id))
                .where(col(RunStep.run_id) == run.id)
                .where(col(RunStep.status) == "error")
                .where(col(RunStep.index) == col(RunLogLine.step))
                .where(col(RunJob.name) == col(RunLogLine.job))
            )
        )
    return conditions


def _last_per_group(conditions: Iterable[Any], tail: int, *group: Any) -> Any:
    """The ids of the last ``tail`` lines of each group (by ``group`` columns) among the
    lines meeting ``conditions``."""
    number = (
        func.row_number()
        .over(partition_by=group, order_by=col(RunLogLine.offset).desc())
        .label("number")
    )
    ranked = select(col(RunLogLine.id).label("id"), number).where(*conditions).subquery()
    return select(ranked.c.id).where(ranked.c.number <= tail)


async def read_lines(
    db: Database, run: WorkflowRun, offset: int, limit: int, where: LogFilter = LogFilter()
) -> list[RunLogLine]:
    """At most ``limit`` lines of ``run`` from ``offset`` meeting ``where``, in order."""
    conditions = _conditions(run, where)
    query: Any = select(RunLogLine).where(
        col(RunLogLine.run_id) == run.id, col(RunLogLine.offset) >= offset
    )
    if where.tail:
        last = _last_per_group(conditions, where.tail, col(RunLogLine.job), col(RunLogLine.step))
        query = query.where(col(RunLogLine.id).in_(last))
    else:
        query = query.where(*conditions)
    async with db.session() as session:
        return list(await session.exec(query.order_by(col(RunLogLine.offset)).limit(limit)))


async def failures(
    db: Database, run: WorkflowRun, jobs: list[RunJob], steps: list[RunStep], tail: int
) -> list[RunError]:
    """Each step of ``run`` that ended ``error``, each job that ended ``error`` without one,
    and the run when it ended ``error`` without either, with their last ``tail`` lines."""
    failed: list[tuple[RunJob | None, RunStep | None]] = []
    for row in jobs:
        own = [s for s in steps if s.run_job_id == row.id and s.status == "error"]
        failed += [(row, s) for s in own]
        if row.status == "error" and not own:
            failed.append((row, None))
    if run.status == "error" and not failed:
        failed.append((None, None))
    step_lines: dict[tuple[str, int | None], list[str]] = {}
    job_lines: dict[str, list[str]] = {}
    run_lines: list[str] = []
    async with db.session() as session:
        step_jobs = {job.name for job, step in failed if job is not None and step is not None}
        if step_jobs:
            where = [col(RunLogLine.run_id) == run.id, col(RunLogLine.job).in_(step_jobs)]
            last = _last_per_group(where, tail, col(RunLogLine.job), col(RunLogLine.step))
            for line in await session.exec(
                select(RunLogLine)
                .where(col(RunLogLine.id).in_(last))
                .order_by(col(RunLogLine.offset))
            ):
                step_lines.setdefault((line.job, line.step), []).append(line.line)
        whole_jobs = {job.name for job, step in failed if job is not None and step is None}
        if whole_jobs:
            where = [col(RunLogLine.run_id) == run.id, col(RunLogLine.job).in_(whole_jobs)]
            last = _last_per_group(where, tail, col(RunLogLine.job))
            for line in await session.exec(
                select(RunLogLine)
                .where(col(RunLogLine.id).in_(last))
                .order_by(col(RunLogLine.offset))
            ):
                job_lines.setdefault(line.job, []).append(line.line)
        if failed and failed[0][0] is None:
            newest = await session.exec(
                select(RunLogLine.line)
                .where(col(RunLogLine.run_id) == run.id)
                .order_by(col(RunLogLine.offset).desc())
                .limit(tail)
            )
            run_lines = list(newest)[::-1]
    found: list[RunError] = []
    for job, step in failed:
        if job is None:
            found.append(
                RunError(
                    job="", kind="run", status=run.status, reason=run.reason, log_tail=run_lines
                )
            )
        elif step is None:
            found.append(
                RunError(
                    job=job.name,
                    kind="job",
                    status=job.status,
                    reason=job.reason,
                    log_tail=job_lines.get(job.name, []),
                )
            )
        else:
            found.append(
                RunError(
                    job=job.name,
                    step=step.index,
                    name=step.name,
                    kind=step.kind,
                    status=step.status,
                    exit_status=step.exit_status,
                    reason=step.reason,
                    log_tail=step_lines.get((job.name, step.index), []),
                )
            )
    return found
