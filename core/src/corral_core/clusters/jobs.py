"""Batch jobs on clusters: submit, follow, cancel, read their output.

Job states come from polls: one scheduler call (``squeue``, ``qstat``) for all of a cluster's
unfinished jobs. The cluster's reconciler polls every ``job_poll_interval`` while jobs are
unfinished; a user asking for a job's state joins the next poll of its cluster, so any number of
concurrent requests costs one or two scheduler calls, never one per request.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import func
from sqlmodel import Session, col, select

from corral_core.clusters.models import ClusterJob
from corral_core.clusters.service import ClusterService
from corral_core.db import utcnow
from corral_core.events.models import EventRecord
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.resources.access import OWNER
from corral_core.resources.models import Resource
from corral_sdk.errors import Conflict, CorralError, NotFound, Timeout, TransportError
from corral_sdk.features import SchedulerFeature
from corral_sdk.providers.scheduler import JobSpec, JobState, JobStatus, Scheduler, SubmittedJob
from corral_sdk.wire import JobSubmit

__all__ = ["JobService", "PollCoalescer"]

log = logging.getLogger("corral.clusters.jobs")

JOB_DIRECTORY = ".corral/jobs"
"""Under the user's home on the cluster: job scripts and output files Corral names."""


class _Poll:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()


class PollCoalescer:
    """Runs one poll per cluster at a time; callers that arrive meanwhile share the next one."""

    def __init__(self) -> None:
        self._next: dict[tuple[int, int], _Poll] = {}
        self._draining: set[tuple[int, int]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def poll(self, cluster_id: int, run: Any) -> None:
        loop = asyncio.get_running_loop()
        key = (id(loop), cluster_id)
        waiting = self._next.get(key)
        if waiting is None:
            waiting = self._next[key] = _Poll(loop)
        if key not in self._draining:
            self._draining.add(key)
            task = loop.create_task(self._drain(key, run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.shield(waiting.done)

    async def _drain(self, key: tuple[int, int], run: Any) -> None:
        try:
            while (poll := self._next.pop(key, None)) is not None:
                try:
                    await run()
                except BaseException as exc:
                    poll.done.set_exception(exc)
                    poll.done.exception()  # retrieved: a caller that went away must not warn
                else:
                    poll.done.set_result(None)
        finally:
            self._draining.discard(key)


class _Submission:
    def __init__(self, spec: JobSpec, loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self.done: asyncio.Future[SubmittedJob | CorralError] = loop.create_future()


class SubmitBatcher:
    """Submissions to one cluster as one user: up to :attr:`LANES` submit commands at a time.
    With a scheduler that has ``BATCH_SUBMIT``, jobs that arrive while every lane is busy go
    together in the next free one, up to :attr:`BATCH` per command (``submit_many``): a lone
    job is one command, a burst costs the login node one SSH session per batch, not per job."""

    LANES = 2
    BATCH = 50

    def __init__(self) -> None:
        self._waiting: dict[tuple[int, Any], list[_Submission]] = {}
        self._busy: dict[tuple[int, Any], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self, key: Any, spec: JobSpec, scheduler: Scheduler, *, batch: bool
    ) -> SubmittedJob:
        """Submit ``spec`` with the jobs of the same ``key`` (cluster, user, cluster version)
        that are waiting for a lane; raises what submitting this job alone would raise."""
        loop = asyncio.get_running_loop()
        lane = (id(loop), key)
        submission = _Submission(spec, loop)
        waiting = self._waiting.setdefault(lane, [])
        waiting.append(submission)
        if self._busy.get(lane, 0) < self.LANES:
            self._busy[lane] = self._busy.get(lane, 0) + 1
            task = loop.create_task(self._drain(lane, scheduler, self.BATCH if batch else 1))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            result = await asyncio.shield(submission.done)
        except asyncio.CancelledError:
            if submission in self._waiting.get(lane, ()):
                self._waiting[lane].remove(submission)  # not sent yet: it never will be
            raise
        if isinstance(result, CorralError):
            raise result
        return result

    async def _drain(self, lane: tuple[int, Any], scheduler: Scheduler, size: int) -> None:
        try:
            while waiting := self._waiting.get(lane):
                batch, waiting[:] = waiting[:size], waiting[size:]
                try:
                    results = await self._submit(scheduler, [item.spec for item in batch])
                except BaseException as exc:
                    for item in batch:
                        if not item.done.done():
                            item.done.set_exception(exc)
                            item.done.exception()  # retrieved: a caller that left must not warn
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for item, result in zip(batch, results, strict=True):
                    if not item.done.done():
                        item.done.set_result(result)
        finally:
            self._busy[lane] -= 1
            if not self._busy[lane]:
                del self._busy[lane]
                if not self._waiting.get(lane):
                    self._waiting.pop(lane, None)

    @staticmethod
    async def _submit(
        scheduler: Scheduler, specs: list[JobSpec]
    ) -> Sequence[SubmittedJob | CorralError]:
        if len(specs) > 1:
            return await scheduler.submit_many(specs)
        try:
            return [await scheduler.submit(specs[0])]
        except (TransportError, Timeout):
            raise
        except CorralError as exc:
            return [exc]


class JobService:
    def __init__(self, clusters: ClusterService) -> None:
        self.clusters = clusters
        self.db = clusters.db
        self.events = clusters.events
        self._coalescer = PollCoalescer()
        self._submits = SubmitBatcher()

    # --- submit ---------------------------------------------------------------------------------

    async def submit(self, principal: Principal, ref: ResourceRef, data: JobSubmit) -> ClusterJob:
        resource = await self.clusters.require(principal, ref, "login")
        assert resource.id is not None
        if resource.observed_state != "active":
            raise Conflict(
                f"{ref.uri} is {resource.observed_state}: start it before submitting jobs",
                reason="cluster-not-active",
            )
        runner = await self.clusters.runner(resource, principal.username)
        home = await runner.home()
        key = uuid.uuid4().hex[:16]
        output_path = posixpath.join(home, JOB_DIRECTORY, f"{key}.out")
        options = msgspec.structs.asdict(data)
        options["depends_on"] = tuple(data.depends_on)
        working_directory = data.working_directory or self.clusters.spec_of(
            resource
        ).working_directory_for(principal.username)
        spec = JobSpec(
            **{
                **options,
                "working_directory": working_directory or None,
                "output_path": output_path,
                "name": data.name or "corral-job",
            }
        )
        submitted = await self._submits.submit(
            (resource.id, principal.username, resource.generation),
            spec,
            self.clusters.scheduler(resource, runner),
            batch=self.clusters.supports(resource, SchedulerFeature.BATCH_SUBMIT),
        )
        now = utcnow()
        row = ClusterJob(
            resource_id=resource.id,
            user_id=principal.user_id,
            username=principal.username,
            job_id=submitted.job_id,
            session=int(resource.status.get("session") or 0),
            name=spec.name,
            partition=spec.partition or "",
            output_path=output_path,
            spec={k: v for k, v in msgspec.to_builtins(spec).items() if k != "script"},
            # given, not defaulted: a model's default factories are inspected on every call
            nodes=[],
            submitted_at=now,
            updated_at=now,
        )

        def record(session: Session) -> tuple[bool, EventRecord]:
            polling = (
                session.exec(
                    select(ClusterJob.id)
                    .where(col(ClusterJob.resource_id) == resource.id)
                    .where(col(ClusterJob.finished).is_(False))
                    .limit(1)
                ).first()
                is not None
            )
            session.add(row)
            event = self.events.add(
                session,
                "cluster.job.submitted",
                subject=f"resource:{resource.id}",
                org=resource.org,
                actor=principal.username,
                data={"job_id": submitted.job_id, "cluster": ref.uri, "user": principal.username},
            )
            session.flush()  # assigns the ids; the rows keep their attributes after the commit
            return polling, event

        polling, event = await self.db.transaction(record)
        assert event.id is not None
        await self.events.announce(event.id)
        if not polling:  # the cluster's reconcile polls while it has unfinished jobs
            await self.clusters.enqueue(resource.id)
        return row

    # --- read -----------------------------------------------------------------------------------

    async def _visible_jobs(self, principal: Principal, ref: ResourceRef) -> tuple[Resource, Any]:
        resource = await self.clusters.require(principal, ref, "login")
        query = select(ClusterJob).where(col(ClusterJob.resource_id) == resource.id)
        level = await self.clusters.access.level(principal, resource)
        if level not in (OWNER, "admin"):
            query = query.where(col(ClusterJob.user_id) == principal.user_id)
        return resource, query

    async def list_jobs(
        self,
        principal: Principal,
        ref: ResourceRef,
        *,
        states: Sequence[str] = (),
        limit: int = 50,
        offset: int = 0,
        refresh: bool = False,
    ) -> tuple[list[ClusterJob], int]:
        resource, query = await self._visible_jobs(principal, ref)
        if refresh and resource.observed_state == "active":
            await self.refresh(resource)
        if states:
            query = query.where(col(ClusterJob.state).in_(list(states)))
        async with self.db.session() as session:
            total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
            rows = await session.exec(
                query.order_by(col(ClusterJob.id).desc()).limit(limit).offset(offset)
            )
            return list(rows), total

    async def get(
        self, principal: Principal, ref: ResourceRef, job: int, *, refresh: bool = True
    ) -> ClusterJob:
        resource, query = await self._visible_jobs(principal, ref)
        row = await self._one(query, job, ref)
        if refresh and not row.finished and resource.observed_state == "active":
            await self.refresh(resource)
            row = await self._one(query, job, ref)
        return row

    async def _one(self, query: Any, job: int, ref: ResourceRef) -> ClusterJob:
        async with self.db.session() as session:
            row = (await session.exec(query.where(col(ClusterJob.id) == job))).first()
        if row is None:
            raise NotFound(f"job {job} not found on {ref.uri}", reason="job-not-found")
        assert isinstance(row, ClusterJob)
        return row

    async def cancel(self, principal: Principal, ref: ResourceRef, job: int) -> ClusterJob:
        resource, query = await self._visible_jobs(principal, ref)
        row = await self._one(query, job, ref)
        if not row.finished:
            runner = await self.clusters.runner(resource, row.username)
            await self.clusters.scheduler(resource, runner).cancel([row.job_id])
            await self.events.emit(
                "cluster.job.cancel_requested",
                subject=f"resource:{resource.id}",
                org=resource.org,
                actor=principal.username,
                data={"job_id": row.job_id, "cluster": ref.uri},
            )
            await self.refresh(resource)
            row = await self._one(query, job, ref)
        return row

    async def output(
        self, principal: Principal, ref: ResourceRef, job: int, *, offset: int = 0
    ) -> bytes:
        """The job's output file from ``offset`` (empty while the job has written nothing)."""
        resource, query = await self._visible_jobs(principal, ref)
        row = await self._one(query, job, ref)
        runner = await self.clusters.runner(resource, row.username)
        try:
            data = await runner.get(row.output_path)
        except NotFound:
            if row.state in (JobState.PENDING, JobState.HELD):
                return b""
            raise NotFound(
                f"the output of job {row.job_id} ({row.output_path}) is not on {ref.uri}; "
                "it may have been removed",
                reason="output-not-found",
            ) from None
        return data[offset:]

    # --- polling --------------------------------------------------------------------------------

    async def refresh(self, resource: Resource | Any) -> None:
        """Bring the cluster's unfinished jobs up to date (joining a poll in flight)."""
        assert resource.id is not None
        await self._coalescer.poll(resource.id, lambda: self.poll(resource))

    async def live_job_ids(self, resource_id: int) -> list[str]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(ClusterJob.job_id)
                .where(col(ClusterJob.resource_id) == resource_id)
                .where(col(ClusterJob.finished).is_(False))
            )
            return list(rows)

    async def poll(self, resource: Resource | Any) -> int:
        """One scheduler call for every unfinished job of the cluster; returns how many remain
        unfinished."""
        assert resource.id is not None
        live = await self.live_job_ids(resource.id)
        if not live:
            return 0
        runner = await self.clusters.runner(resource, resource.owner)
        statuses = await self.clusters.scheduler(resource, runner).status(live)
        return await self._record(resource, statuses)

    async def _record(self, resource: Resource | Any, statuses: Mapping[str, JobStatus]) -> int:
        changes: list[dict[str, Any]] = []
        remaining = 0
        async with self.db.session() as session:
            rows = await session.exec(
                select(ClusterJob)
                .where(col(ClusterJob.resource_id) == resource.id)
                .where(col(ClusterJob.job_id).in_(list(statuses)))
                .where(col(ClusterJob.finished).is_(False))
            )
            now = utcnow()
            for row in rows:
                status = statuses[row.job_id]
                if status.state is JobState.UNKNOWN and row.state != JobState.UNKNOWN:
                    # Left the queue with no accounting to say how it ended.
                    status = msgspec.structs.replace(
                        status, reason=status.reason or "the scheduler no longer knows this job"
                    )
                before = (row.state, row.native_state)
                if _unchanged(row, status):
                    remaining += 1
                    continue  # no write: a poll of many quiet jobs costs no transaction rows
                row.state = status.state.value
                row.native_state = status.native_state
                row.reason = status.reason
                row.exit_code = status.exit_code
                row.partition = status.partition or row.partition
                row.nodes = list(status.nodes) or row.nodes
                row.started_at = status.start_time or row.started_at
                row.ended_at = status.end_time or row.ended_at
                row.finished = status.state.terminal or status.state is JobState.UNKNOWN
                if row.finished and row.ended_at is None:
                    row.ended_at = now
                row.updated_at = now
                session.add(row)
                if not row.finished:
                    remaining += 1
                if before != (row.state, row.native_state):
                    changes.append(
                        {
                            "job_id": row.job_id,
                            "user": row.username,
                            "from": before[0],
                            "to": row.state,
                            "native_state": row.native_state,
                            "exit_code": row.exit_code,
                        }
                    )
            events = [
                self.events.add(
                    session,
                    "cluster.job.state_changed",
                    subject=f"resource:{resource.id}",
                    org=resource.org,
                    data=change,
                )
                for change in changes
            ]
            await session.commit()
        for event in events:
            assert event.id is not None
            await self.events.announce(event.id)
        return remaining


def _unchanged(row: ClusterJob, status: JobStatus) -> bool:
    return (
        not (status.state.terminal or status.state is JobState.UNKNOWN)
        and row.state == status.state.value
        and row.native_state == status.native_state
        and row.reason == status.reason
        and row.exit_code == status.exit_code
        and (not status.nodes or list(status.nodes) == row.nodes)
        and (status.start_time is None or row.started_at is not None)
    )
