"""The workflow engine: drives a run's jobs and steps to the end, durably.

A run is advanced by ticks (the ``corral.workflow_runs`` actor) under a lease on its row: a tick
loads the run, its jobs and steps, makes every decision it can (start a job whose needs are met,
skip, launch the next step of a running job, read finished steps, run cleanups, finish the job,
finish the run), writes them, and sleeps briefly while steps run. Steps run detached on their
target (:mod:`~corral_core.workflows.executors`), one directory per attempt, so a worker killed
in the middle of a run leaves its steps running; the next tick (after the lease expires, the
sweep enqueues the run again) reads their exit status instead of starting them twice.

Semantics (spec §3-4): jobs in parallel unless ``needs`` orders them (a job whose needs did not
all complete is skipped, unless its ``if`` uses ``always``); steps in order, the first failure
fails the job and skips the rest unless their ``if`` uses ``always``; ``ignore-errors``; retries
(``max-retries`` 10, ``interval`` 5 s, ``timeout`` 30 s per attempt when ``retry`` is given);
timeouts of the run, the job and the step, all enforced; cleanups of the steps that ran, at the
end of the job, in reverse order, always (also after a cancel); ``$OUTPUTS`` published to
``needs.<job>.outputs`` (steps without ``id``) or ``needs.<job>.steps.<id>.outputs``, and
``jobs.<j>.outputs``; matrices with ``max-parallel`` and ``fail-fast``; ``early-cancel:
any-job-failed``; cancel.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec
from sqlalchemy import or_, update
from sqlmodel import col, select

from corral_core.db import Database, utcnow
from corral_core.secrets import SecretBox
from corral_core.ssh.pool import SSHEndpoint
from corral_core.ssh.runner import SSHRunner
from corral_core.workflows import expressions
from corral_core.workflows.durations import format_duration, parse_duration
from corral_core.workflows.executors import StepExecutor, StepLaunch, StepStatus
from corral_core.workflows.format import Job, Session, Step, Workflow
from corral_core.workflows.inputs import (
    INPUT_ENV,
    MASK,
    clashing_inputs,
    secret_strings,
    step_environment,
)
from corral_core.workflows.loader import load
from corral_core.workflows.models import RunJob, RunLogLine, RunStep, WorkflowRun
from corral_core.workflows.sources import ACTION_PREFIXES
from corral_sdk.errors import CorralError, Invalid, NotFound, PermissionDenied
from corral_sdk.features import WorkflowActionFeature
from corral_sdk.providers.action import ActionResult, ReleasingAction, WorkflowAction
from corral_sdk.providers.scheduler import Scheduler
from corral_sdk.records import WorkflowActionRecord
from corral_sdk.transport import CommandRunner

__all__ = ["LEASE_SECONDS", "TERMINAL", "RunEngine"]

log = logging.getLogger("corral.workflows")

LEASE_SECONDS = 30.0
TICK_SECONDS = 20.0
TERMINAL = frozenset({"completed", "error", "canceled", "skipped"})
FAILED = frozenset({"error"})
RELEASE_SECONDS = 60.0
"""How long an action's release may take before the run ends without it."""
RUN_TIMED_OUT = "the workflow timed out"
"""How a run's reason starts when its ``timeout`` ended it (an error, not a cancel)."""

ExecutorFor = Callable[[WorkflowRun, dict[str, Any] | None], Awaitable[StepExecutor]]
"""The executor of a step's target: ``None`` for the user's workspace, or the step's rendered
``ssh`` (``remoteHost``, ``remoteUser``, ``jumpNodeHost``, ``jumpNodeUser``); raises
``CorralError`` when the run's user may not reach that host."""
Enqueue = Callable[[int], Awaitable[None]]
ActionLookup = Callable[[str], WorkflowActionRecord | None]
"""The registered action of a name (``checkout``), or ``None``."""
StartSubRun = Callable[[WorkflowRun, RunStep, str, dict[str, Any]], Awaitable[int]]
"""Start (or find, when it was started already) the run of a step's rendered ``uses:``
(``workflow/<name>``, or a workflow source's ``github/o/r@ref``) for a step and attempt, with the
step's rendered ``with:`` as its inputs (:meth:`~corral_core.workflows.runs.RunService.start_uses`);
returns the run's id. Raises ``CorralError`` (recursion, depth, an unknown workflow or source, a
bad input)."""


class RunTokens(Protocol):
    """Tokens lent to a run's steps (``PW_API_KEY``): the authenticator."""

    async def issue_run_token(
        self, username: str, run_id: int, *, everything: bool, expires_at: datetime | None
    ) -> str: ...

    async def revoke_run_token(self, run_id: int) -> None: ...


class RunSessionStore(Protocol):
    """The sessions of runs (:class:`corral_core.sessions.service.RunSessions`)."""

    async def ensure_for_run(
        self, run: WorkflowRun, declared: Mapping[str, Session | None]
    ) -> dict[str, str]: ...

    async def update(
        self, username: str, name: str, changes: Mapping[str, Any], status: str
    ) -> None: ...

    async def remove_ended(self, run_id: int | None = None) -> int: ...


ACTION_HANDLE = "action"
SUBRUN_HANDLE = "run:"


def _seconds(value: str | int | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None


class _Run:
    """What one tick knows of a run."""

    def __init__(
        self,
        row: WorkflowRun,
        jobs: list[RunJob],
        steps: list[RunStep],
        secret_inputs: dict[str, Any],
        input_env: dict[str, dict[str, str]],
    ) -> None:
        self.row = row
        self.inputs = {**row.inputs, **secret_inputs}
        self.input_env = input_env
        """By input name, the environment variables it gives steps (a bucket's credentials)."""
        self.masked = secret_strings(secret_inputs)
        """What no log line shows: secret input values, replaced by the mask."""
        self.workflow: Workflow = load(row.yaml).workflow
        self.jobs = jobs
        self.by_name = {j.name: j for j in jobs}
        self.steps: dict[int, list[RunStep]] = {}
        for step in steps:
            self.steps.setdefault(step.run_job_id, []).append(step)
        self.dirty_jobs: set[int] = set()
        self.dirty_steps: set[int] = set()
        self.new_steps: list[RunStep] = []
        self.lines: list[RunLogLine] = []
        self._needs: dict[str, Any] | None = None
        self.actions: dict[int, tuple[asyncio.Task[ActionResult], _ActionContext]] = {}
        """The actions this tick runs, by step id (a tick ends only once they are done)."""

    def log(self, job: str, step: int | None, text: str) -> None:
        for secret in self.masked:
            text = text.replace(secret, MASK)
        for line in text.split("\n"):
            self.lines.append(
                RunLogLine(
                    run_id=self.row.id or 0,
                    offset=self.row.log_count + len(self.lines),
                    job=job,
                    step=step,
                    line=line,
                )
            )

    def job_of(self, row: RunJob) -> Job:
        return self.workflow.jobs[row.job]

    def outputs_changed(self) -> None:
        self._needs = None

    def contexts(self, job: RunJob) -> dict[str, Any]:
        if self._needs is None:
            self._needs = self._collect_needs()
        return {
            "inputs": self.inputs,
            "org": self.row.plan.get("org", {}),
            "matrix": job.matrix,
            "needs": self._needs,
            "sessions": self.row.plan.get("sessions", {}),
        }

    def _collect_needs(self) -> dict[str, Any]:
        needs: dict[str, Any] = {}
        for other in self.jobs:
            entry = needs.setdefault(other.job, {"outputs": {}, "steps": {}})
            entry["outputs"].update(other.outputs)
            for step in self.steps.get(other.id or 0, []):
                step_id = step.target.get("id")
                if step_id:
                    entry["steps"][step_id] = {"outputs": dict(step.outputs)}
            if other.name != other.job:
                needs[other.name] = entry
        return needs


class _ActionContext:
    """The :class:`~corral_sdk.providers.action.ActionContext` of one action step."""

    def __init__(
        self,
        engine: RunEngine,
        state: _Run,
        job: RunJob,
        step: RunStep,
        *,
        step_id: str,
        workdir: str,
        env: dict[str, str],
        runner: CommandRunner | None,
        scheduler: Scheduler | None,
    ) -> None:
        self._engine = engine
        self._scheduler = scheduler
        self._state = state
        self._job = job
        self._step = step
        self._step_id = step_id
        self._workdir = workdir
        self._env = env
        self._runner = runner
        self.outputs: dict[str, str] = {}

    @property
    def run_id(self) -> str:
        return str(self._state.row.id)

    @property
    def job(self) -> str:
        return self._job.name

    @property
    def step(self) -> str:
        return self._step_id

    @property
    def workdir(self) -> str:
        return self._workdir

    @property
    def env(self) -> dict[str, str]:
        return dict(self._env)

    @property
    def runner(self) -> CommandRunner | None:
        return self._runner

    @property
    def scheduler(self) -> Scheduler | None:
        return self._scheduler

    @property
    def attempt_key(self) -> str:
        run = self._state.row
        uid = run.plan.get("uid") or f"run-{run.id}"
        return f"{uid}-{self._job.id}-{self._step.position}-{self._step.attempt}"

    def _ssh(self) -> SSHRunner:
        if not isinstance(self._runner, SSHRunner):
            raise Invalid(
                f"{self._step.name}: needs a cluster to run on (an `ssh` with remoteHost)",
                field="ssh",
            )
        return self._runner

    @property
    def ssh_public_key(self) -> str:
        return self._ssh().identity.public_key

    async def trust_host_key(self, host: str, port: int, public_key: str) -> None:
        runner = self._ssh()
        endpoint = SSHEndpoint(host, runner.endpoint.username, port, jump=runner.endpoint)
        await runner.pool.call(runner.pool.trust(endpoint, public_key))

    async def log(self, message: str) -> None:
        self._state.log(self._job.name, self._step.index, message)

    async def set_output(self, name: str, value: str) -> None:
        self.outputs[name] = str(value)

    async def cancel_jobs(
        self,
        jobs: Sequence[str] | None = None,
        *,
        slug: str | None = None,
        workflow: str | None = None,
        number: int | None = None,
    ) -> list[str]:
        if slug is None and workflow is None:
            return self._engine.cancel_own_jobs(self._state, self._job, jobs)
        if slug is None:
            if number is None:
                raise Invalid("with.run: the run number is required with 'workflow'", field="run")
            slug = f"{self._state.row.username}.{workflow}.{number:05d}"
        return await self._engine.cancel_jobs_of(self._state.row.username, slug, jobs)

    async def update_session(self, name: str, changes: Mapping[str, Any], *, status: str) -> None:
        state = self._state
        if self._engine.sessions is None:
            raise Invalid("update-session: sessions are not available here", field="with.name")
        own = set(state.row.plan.get("sessions", {}).values())
        if name not in own and "*" not in state.workflow.permissions:
            raise PermissionDenied(
                f"update-session: {name!r} is not a session of this run (it declares "
                f"{', '.join(sorted(own)) or 'none'}; `permissions: ['*']` reaches the others)",
                reason="not-this-runs-session",
            )
        await self._engine.sessions.update(state.row.username, name, changes, status)


class RunEngine:
    def __init__(
        self,
        db: Database,
        executor_for: ExecutorFor,
        enqueue: Enqueue,
        secrets: SecretBox,
        *,
        actions: ActionLookup | None = None,
        start_subrun: StartSubRun | None = None,
        sessions: RunSessionStore | None = None,
        tokens: RunTokens | None = None,
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.secrets = secrets
        self.executor_for = executor_for
        self.enqueue = enqueue
        self.actions = actions
        self.start_subrun = start_subrun
        self.sessions = sessions

    # --- leases and ticks -----------------------------------------------------------------------

    async def _claim(self, run_id: int, token: str) -> bool:
        now = utcnow()
        async with self.db.session() as session:
            result = await session.exec(
                update(WorkflowRun)
                .where(col(WorkflowRun.id) == run_id)
                .where(col(WorkflowRun.finished).is_(False))
                .where(
                    or_(
                        col(WorkflowRun.lease_owner).is_(None),
                        col(WorkflowRun.lease_until).is_(None),
                        col(WorkflowRun.lease_until) < now,
                        col(WorkflowRun.lease_owner) == token,
                    )
                )
                .values(lease_owner=token, lease_until=now + timedelta(seconds=LEASE_SECONDS))
            )
            await session.commit()
            return bool(result.rowcount)

    async def _release(self, run_id: int, token: str, finished: bool) -> None:
        async with self.db.session() as session:
            await session.exec(
                update(WorkflowRun)
                .where(col(WorkflowRun.id) == run_id)
                .where(col(WorkflowRun.lease_owner) == token)
                .values(
                    lease_owner=None,
                    lease_until=None,
                    next_check_at=None if finished else utcnow() + timedelta(seconds=60),
                )
            )
            await session.commit()

    async def due(self) -> list[int]:
        """Unfinished runs nobody is driving (a killed worker's): the sweep enqueues them."""
        now = utcnow()
        async with self.db.session() as session:
            rows = await session.exec(
                select(WorkflowRun.id)
                .where(col(WorkflowRun.finished).is_(False))
                .where(
                    or_(col(WorkflowRun.lease_until).is_(None), col(WorkflowRun.lease_until) < now)
                )
                .where(
                    or_(
                        col(WorkflowRun.next_check_at).is_(None),
                        col(WorkflowRun.next_check_at) <= now,
                    )
                )
            )
            return [r for r in rows if r is not None]

    async def tick(self, run_id: int, *, budget: float = TICK_SECONDS) -> bool:
        """Advance the run for up to ``budget`` seconds; True once it is finished. Safe to call
        from any number of processes at once (one holds the lease, the others return)."""
        token = uuid.uuid4().hex
        if not await self._claim(run_id, token):
            return False
        deadline = time.monotonic() + budget
        pause = 0.02
        finished = False
        state = await self._load(run_id)
        try:
            while True:
                if state is None:
                    return True
                # the lease keeps other engines out: only a cancel can change under us
                await self._read_cancels(state)
                progressed = await self._advance(state)
                await self._save(state)
                finished = state.row.finished
                if finished or (time.monotonic() >= deadline and not state.actions):
                    break
                pause = 0.02 if progressed else min(pause * 1.5, 0.5)
                await asyncio.sleep(pause)
                if not await self._claim(run_id, token):
                    return False
            if finished and self.sessions is not None:
                await self.sessions.remove_ended(run_id)
        finally:
            if state is not None:
                for task, _ in state.actions.values():  # only on an error: the step runs again
                    task.cancel()
            await self._release(run_id, token, finished)
        if not finished:
            await self.enqueue(run_id)
        return finished

    async def _read_cancels(self, state: _Run) -> None:
        """Cancels asked for since the last pass: of the run, and of its jobs (``cancel-jobs``
        from another run)."""
        async with self.db.session() as session:
            found = (
                await session.exec(
                    select(WorkflowRun.cancel_requested).where(col(WorkflowRun.id) == state.row.id)
                )
            ).first()
            jobs = set(
                await session.exec(
                    select(RunJob.id)
                    .where(col(RunJob.run_id) == state.row.id)
                    .where(col(RunJob.cancel_requested).is_(True))
                )
            )
        state.row.cancel_requested = bool(found)
        for job in state.jobs:
            if job.id in jobs and not job.cancel_requested:
                job.cancel_requested = True

    async def _load(self, run_id: int) -> _Run | None:
        async with self.db.session() as session:
            row = await session.get(WorkflowRun, run_id)
            if row is None or row.finished:
                return None
            jobs = list(
                await session.exec(
                    select(RunJob)
                    .where(col(RunJob.run_id) == run_id)
                    .order_by(col(RunJob.position))
                )
            )
            steps = list(
                await session.exec(
                    select(RunStep)
                    .where(col(RunStep.run_id) == run_id)
                    .order_by(col(RunStep.run_job_id), col(RunStep.position))
                )
            )
        hidden = json.loads(self.secrets.decrypt(row.secret_inputs)) if row.secret_inputs else {}
        sealed = row.plan.get(INPUT_ENV)
        input_env = json.loads(self.secrets.decrypt(sealed)) if sealed else {}
        return _Run(row, jobs, steps, hidden, input_env)

    async def _save(self, state: _Run) -> None:
        # taken before the first await: actions running meanwhile log into fresh lists, with
        # offsets after these
        lines, state.lines = state.lines, []
        dirty_jobs, state.dirty_jobs = state.dirty_jobs, set()
        dirty_steps, state.dirty_steps = state.dirty_steps, set()
        state.row.log_count += len(lines)
        async with self.db.session() as session:
            for job in state.jobs:
                if job.id in dirty_jobs:
                    session.add(job)
            for steps in state.steps.values():
                for step in steps:
                    if step.id in dirty_steps or step.id is None:
                        session.add(step)
            for line in lines:
                session.add(line)
            session.add(state.row)
            await session.commit()
            for steps in state.steps.values():
                for step in steps:
                    if step.id is None:
                        await session.refresh(step)

    # --- deciding -------------------------------------------------------------------------------

    def _set_job(self, state: _Run, job: RunJob, status: str, reason: str = "") -> None:
        now = utcnow()
        if status == "running":
            job.started_at = now
        elif status in TERMINAL:
            job.finished_at = now
        job.status, job.reason = status, reason or job.reason
        state.dirty_jobs.add(job.id or 0)
        detail = f" ({reason})" if reason else ""
        state.log(job.name, None, f"[{now.isoformat(timespec='seconds')}] job {job.name}: "
                  f"{status}{detail}")  # fmt: skip

    def _set_step(self, state: _Run, step: RunStep, status: str, reason: str = "") -> None:
        step.status = status
        if reason:
            step.reason = reason
        if status in TERMINAL:
            step.finished_at = utcnow()
        state.dirty_steps.add(step.id or 0)

    async def _advance(self, state: _Run) -> bool:
        run = state.row
        now = utcnow()
        progressed = False
        if run.status == "queued":
            if self.sessions is not None and state.workflow.sessions:
                try:
                    names = await self.sessions.ensure_for_run(run, state.workflow.sessions)
                except CorralError as exc:
                    for job in state.jobs:
                        self._set_job(state, job, "skipped", "the run's sessions could not be made")
                    run.status, run.reason = "error", exc.message
                    run.finished, run.finished_at = True, now
                    state.log("", None, f"run {run.number:05d} error: {exc.message}")
                    return True
                run.plan = {**run.plan, "sessions": names}
            if self.tokens is not None:
                limit = _seconds(state.workflow.timeout)
                token = await self.tokens.issue_run_token(
                    run.username,
                    run.id or 0,
                    everything="*" in state.workflow.permissions,
                    expires_at=now + timedelta(seconds=limit + 3600) if limit else None,
                )
                run.plan = {**run.plan, "token": self.secrets.encrypt(token)}
            run.status, run.started_at = "running", now
            fetched = (
                f" (its YAML fetched at {run.plan['commit']})" if run.plan.get("commit") else ""
            )
            state.log(
                "",
                None,
                f"[{now.isoformat(timespec='seconds')}] run {run.number:05d} started{fetched}",
            )
            clashing = clashing_inputs(state.input_env)
            if clashing:
                named = ", ".join(f"inputs.{name}" for name in clashing)
                state.log("", None, f"{named} set the same environment variables: steps get "
                          "none of them (use each input's credentials explicitly)")  # fmt: skip
            progressed = True
        limit = _seconds(state.workflow.timeout)
        if (
            limit is not None
            and run.started_at
            and not run.cancel_requested
            and (now - run.started_at).total_seconds() > limit
        ):
            run.cancel_requested = True
            run.reason = f"{RUN_TIMED_OUT} after {format_duration(limit)}"
        await self._poll(state)
        await self._let_go(state, ending=False)
        failed_any = any(j.status in FAILED for j in state.jobs)
        for job in state.jobs:
            if job.status == "pending":
                progressed |= self._start_job(state, job)
            if job.status == "running":
                progressed |= await self._advance_job(state, job, failed_any)
        if all(j.status in TERMINAL for j in state.jobs):
            await self._let_go(state, ending=True)
            if self.tokens is not None and run.plan.get("token"):
                await self.tokens.revoke_run_token(run.id or 0)
            if run.cancel_requested and not run.reason.startswith(RUN_TIMED_OUT):
                run.status = "canceled"
            elif any(j.status in FAILED for j in state.jobs) or run.reason:
                run.status = "error"
            else:
                run.status = "completed"
            run.finished, run.finished_at = True, now
            state.log("", None, f"[{now.isoformat(timespec='seconds')}] run {run.number:05d} "
                      f"{run.status}" + (f": {run.reason}" if run.reason else ""))  # fmt: skip
            progressed = True
        return progressed

    def _start_job(self, state: _Run, job: RunJob) -> bool:
        run = state.row
        if run.cancel_requested or job.cancel_requested:
            self._set_job(state, job, "canceled", run.reason if run.cancel_requested else "")
            return True
        needed = [state.by_name[n] for n in job.needs if n in state.by_name]
        if any(n.status not in TERMINAL for n in needed):
            return False
        spec = state.job_of(job)
        condition = spec.if_
        always = isinstance(condition, str) and expressions.uses_always(condition)
        if any(n.status != "completed" for n in needed) and not always:
            self._set_job(state, job, "skipped", "a job it needs did not complete")
            return True
        if condition is not None and not always:
            value = (
                expressions.render(condition, state.contexts(job))
                if isinstance(condition, str)
                else condition
            )
            if not expressions.is_truthy(value):
                self._set_job(state, job, "skipped", "its condition is false")
                return True
        if spec.strategy is not None and spec.strategy.max_parallel is not None:
            running = sum(1 for j in state.jobs if j.job == job.job and j.status == "running")
            if running >= spec.strategy.max_parallel:
                return False
        self._set_job(state, job, "running")
        return True

    @staticmethod
    def _order(steps: Sequence[RunStep]) -> list[RunStep]:
        """The job's steps in order, then its cleanups in reverse order of their steps."""
        main = [s for s in steps if s.kind == "step"]
        cleanups = sorted((s for s in steps if s.kind == "cleanup"), key=lambda s: -s.index)
        return main + cleanups

    async def _advance_job(self, state: _Run, job: RunJob, failed_any: bool) -> bool:
        spec = state.job_of(job)
        steps = state.steps.setdefault(job.id or 0, [])
        progressed = False
        job_limit = _seconds(spec.timeout)
        if (
            job_limit is not None
            and job.started_at is not None
            and (utcnow() - job.started_at).total_seconds() > job_limit
            and not job.reason
        ):
            job.reason = f"the job timed out after {format_duration(job_limit)}"
            state.dirty_jobs.add(job.id or 0)
            await self._kill_running(state, job, kind="step")
        if (state.row.cancel_requested or job.cancel_requested) and not job.reason:
            job.reason = (state.row.reason if state.row.cancel_requested else "") or "canceled"
            state.dirty_jobs.add(job.id or 0)
            await self._kill_running(state, job, kind="step")
        if failed_any:
            for step in steps:
                if step.status == "running" and step.kind == "step":
                    step_spec = spec.steps[step.index]
                    if step_spec.early_cancel == "any-job-failed" and not step.target.get("killed"):
                        await self._kill(state, step, "a job failed (early-cancel)")
        for step in self._order(steps):
            if step.status in TERMINAL:
                continue
            if step.status == "running":
                return progressed
            # pending: decide, then launch
            progressed = True
            if await self._decide(state, job, spec, step, steps):
                return True
        # every step (and cleanup) is done
        failed = any(s.status in FAILED and s.kind == "step" for s in steps) or bool(job.reason)
        job_outputs = self._job_outputs(state, job, spec)
        if job_outputs:
            job.outputs = {**job.outputs, **job_outputs}
            state.outputs_changed()
        if job.cancel_requested or (
            state.row.cancel_requested and not state.row.reason.startswith(RUN_TIMED_OUT)
        ):
            status = "canceled"
        else:
            status = "error" if failed else "completed"
        self._set_job(state, job, status, job.reason)
        if status == "error" and spec.strategy is not None and spec.strategy.fail_fast:
            for sibling in state.jobs:
                if sibling.job == job.job and sibling is not job and sibling.status not in TERMINAL:
                    sibling.reason = f"{job.name} failed (fail-fast)"
                    sibling.cancel_requested = True
                    state.dirty_jobs.add(sibling.id or 0)
                    if sibling.status == "pending":
                        self._set_job(state, sibling, "canceled", sibling.reason)
                    else:
                        await self._kill_running(state, sibling, kind="step")
        return True

    def _job_outputs(self, state: _Run, job: RunJob, spec: Job) -> dict[str, Any]:
        if not spec.outputs:
            return {}
        contexts = state.contexts(job)
        return {
            name: expressions.to_text(expressions.render(value, contexts))
            for name, value in spec.outputs.items()
        }

    async def _decide(
        self, state: _Run, job: RunJob, spec: Job, step: RunStep, steps: list[RunStep]
    ) -> bool:
        """Launch ``step`` or settle it without running; True when it was launched."""
        retry_at = step.target.get("retry_at")
        if retry_at and utcnow() < datetime.fromisoformat(retry_at):
            return True  # waiting for the retry interval: nothing after it may start
        failed = any(s.status in FAILED for s in steps if s.kind == "step") or bool(job.reason)
        if step.kind == "cleanup":
            return await self._launch(state, job, spec, step, spec.steps[step.index].cleanup or "")
        step_spec = spec.steps[step.index]
        condition = step_spec.if_
        always = isinstance(condition, str) and expressions.uses_always(condition)
        canceled = state.row.cancel_requested or job.cancel_requested
        if canceled or (failed and not always):
            reason = "canceled" if canceled else "an earlier step failed"
            self._set_step(state, step, "canceled" if canceled else "skipped", reason)
            return False
        contexts = state.contexts(job)
        if condition is not None and not always:
            value = (
                expressions.render(condition, contexts) if isinstance(condition, str) else condition
            )
            if not expressions.is_truthy(value):
                self._set_step(state, step, "skipped", "its condition is false")
                return False
        if step_spec.cleanup and not any(
            s.kind == "cleanup" and s.index == step.index for s in steps
        ):
            cleanup = RunStep(
                run_id=state.row.id or 0,
                run_job_id=job.id or 0,
                position=max(s.position for s in steps) + 1,
                index=step.index,
                kind="cleanup",
                name=f"cleanup: {step_spec.cleanup.strip().splitlines()[0][:200]}",
            )
            steps.append(cleanup)
        if step_spec.uses is not None:
            return await self._uses(state, job, spec, step, contexts)
        return await self._launch(state, job, spec, step, step_spec.run or "")

    def _fail(self, state: _Run, job: RunJob, step: RunStep, message: str) -> None:
        """A step that cannot start: an error, with the reason in the log."""
        self._set_step(state, step, "error", message)
        state.log(job.name, step.index, f"error: {message}")

    async def _uses(
        self, state: _Run, job: RunJob, spec: Job, step: RunStep, contexts: dict[str, Any]
    ) -> bool:
        """Start a ``uses:`` step: a registered action, or a sub-workflow's run (the user's own
        workflow, or a workflow source's: an unknown source fails the step naming it)."""
        step_spec = spec.steps[step.index]
        uses = expressions.to_text(expressions.render(step_spec.uses or "", contexts)).strip()
        with_values = expressions.render_deep(dict(step_spec.with_), contexts)
        if not isinstance(with_values, dict):
            with_values = {}
        if not step.name:
            step.name = step_spec.name or uses
        for namespace in ACTION_PREFIXES:
            if uses.startswith(namespace):
                return await self._start_action(
                    state, job, spec, step, uses.removeprefix(namespace), with_values, contexts
                )
        return await self._start_subrun(state, job, step, uses, with_values)

    def _started(self, state: _Run, job: RunJob, step: RunStep, detail: str) -> None:
        step.started_at = step.started_at or utcnow()
        self._set_step(state, step, "running")
        label = "cleanup" if step.kind == "cleanup" else f"step {step.index + 1}"
        attempt = f" (attempt {step.attempt + 1})" if step.attempt else ""
        state.log(job.name, step.index, f"[{utcnow().isoformat(timespec='seconds')}] {label}: "
                  f"{step.name}{attempt}{detail}")  # fmt: skip

    async def _start_subrun(
        self, state: _Run, job: RunJob, step: RunStep, uses: str, with_values: dict[str, Any]
    ) -> bool:
        step_spec = state.job_of(job).steps[step.index]
        if self.start_subrun is None:
            self._fail(state, job, step, f"uses {uses}: sub-workflows cannot run here")
            return False
        try:
            child = await self.start_subrun(state.row, step, uses, with_values)
        except CorralError as exc:
            self._fail(state, job, step, f"uses {uses}: {exc.message}")
            return False
        limit = _seconds(step_spec.timeout)
        step.handle = f"{SUBRUN_HANDLE}{child}"
        step.target = {
            **step.target,
            "id": step_spec.id,
            "retry_at": None,
            "offset": 0,
            "ssh": None,
            "deadline": (utcnow() + timedelta(seconds=limit)).isoformat() if limit else None,
        }
        self._started(state, job, step, f" (run {child})")
        return True

    async def _start_action(
        self,
        state: _Run,
        job: RunJob,
        spec: Job,
        step: RunStep,
        name: str,
        with_values: dict[str, Any],
        contexts: dict[str, Any],
    ) -> bool:
        step_spec = spec.steps[step.index]
        record = self.actions(name) if self.actions is not None else None
        if record is None:
            self._fail(state, job, step, f"uses {step_spec.uses}: no action {name!r} is installed")
            return False
        alias = with_values.pop("ssh", None)  # some examples put the step's ssh under with:
        target = self._target(spec, step_spec, contexts)
        if (
            target is None
            and isinstance(alias, dict)
            and isinstance(step_spec.ssh, msgspec.UnsetType)
        ):
            target = {k: expressions.to_text(v) for k, v in alias.items() if v not in ("", None)}
        try:
            inputs: Any = (
                msgspec.convert(with_values, record.config, strict=False)
                if record.config is not None
                else with_values
            )
            action: WorkflowAction = record.create()
            await action.validate(inputs)
            runner, scheduler = None, None
            if WorkflowActionFeature.NEEDS_TARGET in record.features:
                executor = await self.executor_for(state.row, target)
                runner, scheduler = executor.runner, executor.scheduler
        except msgspec.ValidationError as exc:
            self._fail(state, job, step, f"{step_spec.uses}: {_with_message(exc)}")
            return False
        except CorralError as exc:
            self._fail(state, job, step, f"{step_spec.uses}: {exc.message}")
            return False
        ctx = _ActionContext(
            self, state, job, step,
            step_id=step_spec.id or str(step.index + 1),
            workdir=self._workdir(state, spec, step_spec, contexts),
            env=self._environment(state, job, spec, step_spec),
            runner=runner,
            scheduler=scheduler,
        )  # fmt: skip
        timeout = self._timeout(state, job, spec, step_spec)
        task = asyncio.create_task(_perform(action, inputs, ctx, timeout))
        state.actions[step.id or 0] = (task, ctx)
        step.handle = ACTION_HANDLE
        step.target = {
            **step.target, "id": step_spec.id, "retry_at": None, "ssh": target, "action": name,
        }  # fmt: skip
        self._started(state, job, step, "")
        return True

    def _environment(
        self, state: _Run, job: RunJob, spec: Job, step: Step | None
    ) -> dict[str, str]:
        contexts = state.contexts(job)
        merged: dict[str, Any] = {**state.workflow.env, **spec.env, **(step.env if step else {})}
        return {
            name: expressions.to_text(expressions.render(value, contexts))
            if isinstance(value, str)
            else expressions.to_text(value)
            for name, value in merged.items()
        }

    async def _launch(
        self, state: _Run, job: RunJob, spec: Job, step: RunStep, command: str
    ) -> bool:
        run = state.row
        step_spec = spec.steps[step.index]
        contexts = state.contexts(job)
        script = expressions.to_text(expressions.render(command, contexts))
        cwd = self._workdir(state, spec, step_spec, contexts)
        timeout = self._timeout(state, job, spec, step_spec)
        uid = run.plan.get("uid") or f"run-{run.id}"
        directory = f"~/.corral/runs/{uid}/{job.id}-{step.position}-{step.attempt}"
        target = self._target(spec, step_spec, contexts)
        env = self._environment(state, job, spec, step_spec if step.kind == "step" else None)
        try:
            executor = await self.executor_for(run, target)
            env = {
                **self._platform_env(state, executor),
                **step_environment(state.input_env, env),
                **env,
            }
            await executor.launch(
                StepLaunch(
                    directory=directory, script=script, cwd=cwd, env=env, timeout_seconds=timeout
                )
            )
        except CorralError as exc:
            self._set_step(state, step, "error", exc.message)
            state.log(job.name, step.index, f"error: {exc.message}")
            return False
        step.handle = directory
        step.target = {
            **step.target,
            "id": step_spec.id,
            "retry_at": None,
            "ssh": target,
            "limit": timeout,
        }
        if not step.name:
            step.name = step_spec.name or (command.strip().splitlines() or [""])[0][:200]
        self._started(state, job, step, "")
        return True

    def _platform_env(self, state: _Run, executor: StepExecutor) -> dict[str, str]:
        """What lets a step call the platform as its run (``pw``/``corral`` read these): the
        URL through which the step's target reaches Corral, and the run's token."""
        sealed = state.row.plan.get("token")
        if not sealed:
            return {}
        return {
            "PW_PLATFORM_HOST": executor.platform_url,
            "PW_API_KEY": self.secrets.decrypt(sealed),
            "PW_USER": state.row.username,
        }

    @staticmethod
    def _workdir(state: _Run, spec: Job, step: Step, contexts: dict[str, Any]) -> str:
        run = state.row
        default = f"~/pw/jobs/{run.plan.get('workflow', 'run')}/{run.number:05d}"
        value = step.working_directory or spec.working_directory or default
        return expressions.to_text(expressions.render(value, contexts))

    @staticmethod
    def _timeout(state: _Run, job: RunJob, spec: Job, step: Step) -> float | None:
        """The step's time limit: its own, its retry's per attempt, and what the job and the run
        have left."""
        run = state.row
        limits = [_seconds(step.timeout), _seconds(step.retry.timeout) if step.retry else None]
        job_limit = _seconds(spec.timeout)
        if job_limit is not None and job.started_at is not None:
            limits.append(max(job_limit - (utcnow() - job.started_at).total_seconds(), 0.1))
        run_limit = _seconds(state.workflow.timeout)
        if run_limit is not None and run.started_at is not None:
            limits.append(max(run_limit - (utcnow() - run.started_at).total_seconds(), 0.1))
        return min((x for x in limits if x is not None), default=None)

    @staticmethod
    def _target(spec: Job, step: Step, contexts: dict[str, Any]) -> dict[str, Any] | None:
        """The step's rendered ``ssh``: its own, else its job's; ``None``: the workspace."""
        chosen = step.ssh if not isinstance(step.ssh, msgspec.UnsetType) else spec.ssh
        if chosen is None or isinstance(chosen, msgspec.UnsetType):
            return None
        rendered = expressions.render_deep(msgspec.to_builtins(chosen), contexts)
        return {k: expressions.to_text(v) for k, v in rendered.items() if v not in ("", None)}

    async def _executor(self, state: _Run, step: RunStep) -> StepExecutor:
        target: dict[str, Any] | None = step.target.get("ssh")
        return await self.executor_for(state.row, target)

    async def _kill(self, state: _Run, step: RunStep, reason: str) -> None:
        try:
            if step.handle == ACTION_HANDLE:
                running = state.actions.get(step.id or 0)
                if running is not None:
                    running[0].cancel()
            elif step.handle.startswith(SUBRUN_HANDLE):
                await self.cancel(int(step.handle.removeprefix(SUBRUN_HANDLE)))
            else:
                executor = await self._executor(state, step)
                await executor.kill(step.handle)
        except CorralError as exc:
            log.info("run %s: cannot reach a step to cancel it: %s", state.row.id, exc.log_message)
            return
        step.target = {**step.target, "killed": reason}
        state.dirty_steps.add(step.id or 0)

    async def _kill_running(self, state: _Run, job: RunJob, *, kind: str) -> None:
        for step in state.steps.get(job.id or 0, []):
            if step.status == "running" and step.kind == kind and not step.target.get("killed"):
                await self._kill(state, step, job.reason or "canceled")

    async def _poll(self, state: _Run) -> None:
        """Read every running step's new output and, when it ended, its outcome (one status
        call per target)."""
        running = [s for steps in state.steps.values() for s in steps if s.status == "running"]
        if not running:
            return
        by_target: dict[str, list[RunStep]] = {}
        jobs = {j.id: j for j in state.jobs}
        for step in running:
            if step.handle == ACTION_HANDLE:
                self._poll_action(state, jobs[step.run_job_id], step)
            elif step.handle.startswith(SUBRUN_HANDLE):
                await self._poll_subrun(state, jobs[step.run_job_id], step)
            else:
                key = json.dumps(step.target.get("ssh"), sort_keys=True)
                by_target.setdefault(key, []).append(step)
        for steps in by_target.values():
            try:
                executor = await self._executor(state, steps[0])
                statuses = await executor.status([s.handle for s in steps])
            except CorralError as exc:
                # unreachable for now: its steps go on over there; ask again on the next pass
                log.info("run %s: cannot reach a step's host: %s", state.row.id, exc.log_message)
                continue
            for step in steps:
                found = statuses.get(step.handle)
                job = jobs[step.run_job_id]
                await self._read_output(state, executor, job, step)
                if found is None or not found.finished:
                    continue
                await self._finish_step(state, executor, job, step, found)

    async def _read_output(
        self, state: _Run, executor: StepExecutor, job: RunJob, step: RunStep
    ) -> None:
        offset = int(step.target.get("offset", 0))
        data, _ = await executor.read_output(step.handle, offset)
        if not data:
            return
        cut = data.rfind(b"\n")
        if cut < 0:
            return  # a partial line: read it again when it is complete or the step ends
        state.log(job.name, step.index, data[:cut].decode(errors="replace"))
        step.target = {**step.target, "offset": offset + cut + 1}
        state.dirty_steps.add(step.id or 0)

    def _poll_action(self, state: _Run, job: RunJob, step: RunStep) -> None:
        running = state.actions.get(step.id or 0)
        if running is None:  # the process running it died: run it again (actions are idempotent)
            if step.target.get("killed"):
                self._conclude(state, job, step, {}, "canceled")
                return
            step.status = "pending"
            state.dirty_steps.add(step.id or 0)
            state.log(job.name, step.index, "the Corral process running this action stopped; "
                      "running it again")  # fmt: skip
            return
        task, ctx = running
        if not task.done():
            return
        del state.actions[step.id or 0]
        failure: str | None = None
        outputs = dict(ctx.outputs)
        if task.cancelled():
            failure = "canceled"
        elif (error := task.exception()) is not None:
            if isinstance(error, TimeoutError):
                limit = self._timeout(
                    state, job, state.job_of(job), state.job_of(job).steps[step.index]
                )
                failure = f"timed out after {format_duration(limit or 0)}"
            elif isinstance(error, CorralError):
                failure = error.message
            else:
                log.error("run %s: action %s failed", state.row.id, step.name, exc_info=error)
                failure = f"the action failed: {type(error).__name__}: {error}"
        else:
            result = task.result()
            outputs.update({k: str(v) for k, v in result.outputs.items()})
            if result.summary:
                state.log(job.name, step.index, result.summary)
        step.exit_status = 0 if failure is None else 1
        if failure is not None and outputs:  # what a failed attempt holds is let go at once
            step.target = {**step.target, "held": [*step.target.get("held", []), outputs]}
        self._conclude(state, job, step, outputs, failure)

    async def _let_go(self, state: _Run, *, ending: bool) -> None:
        """Release what actions hold (:class:`~corral_sdk.providers.action.ReleasingAction`):
        failed attempts' at once, completed steps' when the run ends."""
        for job in state.jobs:
            for step in state.steps.get(job.id or 0, []):
                name = step.target.get("action")
                held: list[dict[str, str]] = list(step.target.get("held", []))
                if ending and step.status == "completed" and not step.target.get("released"):
                    held.append(dict(step.outputs))
                if not name or not held:
                    continue
                record = self.actions(name) if self.actions is not None else None
                action = record.create() if record is not None else None
                if record is not None and isinstance(action, ReleasingAction):
                    await self._release_step(state, job, step, record, action, held)
                step.target = {
                    **step.target, "held": [],
                    "released": step.target.get("released") or step.status == "completed",
                }  # fmt: skip
                state.dirty_steps.add(step.id or 0)

    async def _release_step(
        self,
        state: _Run,
        job: RunJob,
        step: RunStep,
        record: WorkflowActionRecord,
        action: ReleasingAction,
        held: list[dict[str, str]],
    ) -> None:
        spec = state.job_of(job)
        try:
            runner, scheduler = None, None
            if WorkflowActionFeature.NEEDS_TARGET in record.features:
                executor = await self.executor_for(state.row, step.target.get("ssh"))
                runner, scheduler = executor.runner, executor.scheduler
            ctx = _ActionContext(
                self, state, job, step,
                step_id=str(step.target.get("id") or step.index + 1),
                workdir=self._workdir(state, spec, spec.steps[step.index], state.contexts(job)),
                env=self._environment(state, job, spec, spec.steps[step.index]),
                runner=runner,
                scheduler=scheduler,
            )  # fmt: skip
            for outputs in held:
                await asyncio.wait_for(action.release(outputs, ctx), RELEASE_SECONDS)
        except (CorralError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, CorralError) else "it took too long"
            state.log(job.name, step.index, f"could not release what {step.name} holds: {reason}")
        except Exception as exc:  # a plugin's bug must not stop the run from ending
            log.error("run %s: releasing %s failed", state.row.id, step.name, exc_info=exc)
            state.log(job.name, step.index, f"could not release what {step.name} holds: {exc}")

    async def _poll_subrun(self, state: _Run, job: RunJob, step: RunStep) -> None:
        """Copy a sub-workflow run's new log lines; when it is finished, settle the step."""
        child_id = int(step.handle.removeprefix(SUBRUN_HANDLE))
        offset = int(step.target.get("offset", 0))
        batch = 2000
        async with self.db.session() as session:
            child = await session.get(WorkflowRun, child_id)
            lines = list(
                await session.exec(
                    select(RunLogLine)
                    .where(col(RunLogLine.run_id) == child_id)
                    .where(col(RunLogLine.offset) >= offset)
                    .order_by(col(RunLogLine.offset))
                    .limit(batch)
                )
            )
            outputs: dict[str, Any] = {}
            if child is not None and child.finished and len(lines) < batch:
                for row in await session.exec(
                    select(RunJob)
                    .where(col(RunJob.run_id) == child_id)
                    .order_by(col(RunJob.position))
                ):
                    outputs.update(row.outputs)
        if child is None:
            self._conclude(state, job, step, {}, f"its run {child_id} was deleted")
            return
        workflow = child.plan.get("uses") or child.plan.get("workflow", "")
        for line in lines:
            where = f"{workflow}/{line.job}" if line.job else workflow
            state.log(job.name, step.index, f"[{where}] {line.line}")
        if lines:
            step.target = {**step.target, "offset": lines[-1].offset + 1}
            state.dirty_steps.add(step.id or 0)
        deadline = step.target.get("deadline")
        if (
            deadline
            and not child.finished
            and not step.target.get("timed_out")
            and utcnow() > datetime.fromisoformat(deadline)
        ):
            limit = _seconds(state.job_of(job).steps[step.index].timeout) or 0
            step.target = {**step.target, "timed_out": f"timed out after {format_duration(limit)}"}
            state.dirty_steps.add(step.id or 0)
            await self.cancel(child_id)
        if not child.finished or len(lines) == batch:
            return
        failure: str | None = None
        if step.target.get("timed_out"):
            failure = str(step.target["timed_out"])
        elif child.status != "completed":
            failure = f"run {child.slug} ended {child.status}" + (
                f": {child.reason}" if child.reason else ""
            )
        step.exit_status = 0 if failure is None else 1
        self._conclude(state, job, step, {k: str(v) for k, v in outputs.items()}, failure)

    async def _finish_step(
        self, state: _Run, executor: StepExecutor, job: RunJob, step: RunStep, found: StepStatus
    ) -> None:
        offset = int(step.target.get("offset", 0))
        rest, _ = await executor.read_output(step.handle, offset)
        if rest:
            state.log(job.name, step.index, rest.decode(errors="replace").rstrip("\n"))
        step.exit_status = found.exit_status
        outputs = await executor.read_outputs(step.handle)
        failure: str | None = None
        if found.exit_status != 0:
            failure = (
                f"timed out after {format_duration(float(step.target.get('limit') or 0))}"
                if found.timed_out
                else f"exited {found.exit_status}"
            )
        self._conclude(state, job, step, outputs, failure)

    def _conclude(
        self,
        state: _Run,
        job: RunJob,
        step: RunStep,
        outputs: dict[str, str],
        failure: str | None,
    ) -> None:
        """Settle a step that ended: publish its outputs, then completed (or its error
        ignored), canceled, retried, or an error."""
        spec = state.job_of(job)
        step_spec = spec.steps[step.index]
        step.outputs = outputs
        if outputs:
            state.outputs_changed()
        if step.kind == "step" and outputs and not step_spec.id:
            job.outputs = {**job.outputs, **outputs}  # the deprecated auto-publishing
            state.dirty_jobs.add(job.id or 0)
        killed = step.target.get("killed")
        ok = failure is None
        if step.kind == "step" and not ok:
            ignore = step_spec.ignore_errors
            if isinstance(ignore, str):
                ignore = expressions.is_truthy(expressions.render(ignore, state.contexts(job)))
            ok = bool(ignore)
        if ok:
            self._set_step(state, step, "completed")
            return
        reason = failure or "failed"
        if killed:
            self._set_step(state, step, "canceled", str(killed))
            state.log(job.name, step.index, f"canceled: {killed}")
            return
        retry = step_spec.retry if step.kind == "step" else None
        if retry is not None:
            allowed = int(retry.max_retries) if str(retry.max_retries).isdigit() else 10
            if step.attempt < allowed:
                interval = _seconds(retry.interval) or 5.0
                state.log(job.name, step.index, f"attempt {step.attempt + 1} failed ({reason}); "
                          f"retrying in {format_duration(interval)}")  # fmt: skip
                step.attempt += 1
                step.target = {
                    **step.target,
                    "offset": 0,
                    "retry_at": (utcnow() + timedelta(seconds=interval)).isoformat(),
                }
                step.status = "pending"
                state.dirty_steps.add(step.id or 0)
                return
        self._set_step(state, step, "error", reason)
        state.log(job.name, step.index, f"error: {reason}")

    # --- cancel-jobs ----------------------------------------------------------------------------

    def cancel_own_jobs(self, state: _Run, own: RunJob, names: Sequence[str] | None) -> list[str]:
        """``cancel-jobs`` in the run it runs in: ``names`` (a job's name covers its matrix
        instances), or every job but ``own``."""
        if names is None:
            chosen = [j for j in state.jobs if j is not own]
        else:
            unknown = [n for n in names if not any(n in (j.job, j.name) for j in state.jobs)]
            if unknown:
                raise NotFound(f"this run has no job {', '.join(map(repr, unknown))}",
                               reason="job-not-found")  # fmt: skip
            chosen = [j for j in state.jobs if j.job in names or j.name in names]
        cancelled = []
        for job in chosen:
            if job.status not in TERMINAL and not job.cancel_requested:
                job.cancel_requested = True
                state.dirty_jobs.add(job.id or 0)
                cancelled.append(job.name)
        return cancelled

    async def cancel_jobs_of(
        self, username: str, slug: str, names: Sequence[str] | None
    ) -> list[str]:
        """``cancel-jobs`` naming another run of the same user (by its slug)."""
        async with self.db.session() as session:
            run = (
                await session.exec(
                    select(WorkflowRun)
                    .where(col(WorkflowRun.slug) == slug)
                    .where(col(WorkflowRun.username) == username)
                )
            ).first()
            if run is None:
                raise NotFound(f"run {slug} does not exist", reason="run-not-found")
            jobs = list(await session.exec(select(RunJob).where(col(RunJob.run_id) == run.id)))
            if names is not None:
                unknown = [n for n in names if not any(n in (j.job, j.name) for j in jobs)]
                if unknown:
                    raise NotFound(f"run {slug} has no job {', '.join(map(repr, unknown))}",
                                   reason="job-not-found")  # fmt: skip
                jobs = [j for j in jobs if j.job in names or j.name in names]
            chosen = [j for j in jobs if j.status not in TERMINAL and not j.cancel_requested]
            if chosen:
                await session.exec(
                    update(RunJob)
                    .where(col(RunJob.id).in_([j.id for j in chosen]))
                    .values(cancel_requested=True)
                )
                await session.commit()
        if chosen and run.id is not None:
            await self.enqueue(run.id)
        return [j.name for j in chosen]

    # --- requests -------------------------------------------------------------------------------

    async def cancel(self, run_id: int) -> None:
        async with self.db.session() as session:
            await session.exec(
                update(WorkflowRun)
                .where(col(WorkflowRun.id) == run_id)
                .where(col(WorkflowRun.finished).is_(False))
                .values(cancel_requested=True)
            )
            await session.commit()
        await self.enqueue(run_id)


async def _perform(
    action: WorkflowAction, inputs: Any, ctx: _ActionContext, timeout: float | None
) -> ActionResult:
    result = await asyncio.wait_for(action.run(inputs, ctx), timeout)
    if not isinstance(result, ActionResult):
        raise TypeError(f"the action returned {type(result).__name__}, not an ActionResult")
    return result


def _with_message(error: msgspec.ValidationError) -> str:
    """msgspec's ``... - at `$.repo``` as ``with.repo: ...``."""
    text = str(error)
    message, _, where = text.rpartition(" - at `")
    if not message:
        return f"with: {text}"
    return f"with{where.rstrip('`').removeprefix('$')}: {message}"
