"""Starting, reading and cancelling runs; the engine (:mod:`.engine`) drives them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from corral_core.db import Database
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.secrets import SecretBox
from corral_core.workflows.inputs import FormValues, Resolver, resolve_inputs
from corral_core.workflows.models import RunJob, RunStep, WorkflowRun
from corral_core.workflows.plan import plan
from corral_core.workflows.service import WorkflowService
from corral_sdk.errors import Conflict, Invalid, NotFound

__all__ = ["RunService"]

Enqueue = Callable[[int], Awaitable[None]]


class RunService:
    def __init__(
        self, db: Database, workflows: WorkflowService, secrets: SecretBox, enqueue: Enqueue
    ) -> None:
        self.db = db
        self.workflows = workflows
        self.secrets = secrets
        self.enqueue = enqueue

    async def start(
        self,
        principal: Principal,
        ref: ResourceRef,
        inputs: Mapping[str, Any],
        *,
        configuration: str = "",
        resolve: Resolver | None = None,
    ) -> WorkflowRun:
        resource = await self.workflows.require(principal, ref, "run")
        assert resource.id is not None
        version = await self.workflows.yaml_of(resource)
        loaded = self.workflows.check(version.yaml, resource.name)
        workflow = loaded.workflow
        submitted = dict(inputs)
        if configuration:
            saved = workflow.configurations.get(configuration)
            if saved is None:
                raise Invalid(
                    f"configuration: {resource.name} has no configuration {configuration!r}",
                    field="configuration",
                )
            submitted = {**saved.inputs, **submitted}
        if workflow.needs is not None and workflow.needs.organizationVariables:
            missing = list(workflow.needs.organizationVariables)  # no variable is set yet
            raise Conflict(
                "the workflow needs organization variables an admin must set first: "
                + ", ".join(missing),
                reason="organization-variables-missing",
                details={"missing": missing},
            )
        schema = (
            workflow.on.execute.inputs
            if workflow.on is not None and workflow.on.execute is not None
            else {}
        )
        form = await resolve_inputs(schema, submitted, resolve=resolve)
        planned = plan(workflow, {"inputs": form.values, "org": {}})
        for attempt in range(5):
            try:
                return await self._insert(
                    resource.id, ResourceRef(resource.owner, resource.name), principal,
                    version.version, version.yaml,
                    form, planned, workflow,
                )  # fmt: skip
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    async def _insert(
        self,
        resource_id: int,
        workflow: ResourceRef,
        principal: Principal,
        version: int,
        yaml: str,
        form: FormValues,
        planned: Any,
        loaded: Any,
    ) -> WorkflowRun:
        async with self.db.session() as session:
            last = (
                await session.exec(
                    select(func.max(WorkflowRun.number)).where(
                        col(WorkflowRun.resource_id) == resource_id
                    )
                )
            ).one()
            number = int(last or 0) + 1
            run = WorkflowRun(
                resource_id=resource_id,
                number=number,
                slug=f"{principal.username}.{workflow.name}.{number:05d}",
                org=principal.org,
                username=principal.username,
                version=version,
                yaml=yaml,
                inputs=form.masked(),
                secret_inputs=self.secrets.encrypt(
                    json.dumps({k: form.values[k] for k in form.secrets})
                )
                if form.secrets
                else "",
                # uid names the run's step directories on every target: unique across
                # Corral installations sharing a cluster (run ids are not)
                plan={
                    "workflow": workflow.name,
                    "workflow_uri": workflow.uri,
                    "uid": uuid.uuid4().hex,
                    "jobs": msgspec.to_builtins(planned.jobs),
                },
            )
            session.add(run)
            await session.flush()
            assert run.id is not None
            for position, job in enumerate(planned.jobs):
                row = RunJob(
                    run_id=run.id,
                    name=job.name,
                    job=job.job,
                    position=position,
                    matrix=job.matrix,
                    needs=list(job.needs),
                )
                session.add(row)
                await session.flush()
                assert row.id is not None
                for index, step in enumerate(loaded.jobs[job.job].steps):
                    session.add(
                        RunStep(
                            run_id=run.id,
                            run_job_id=row.id,
                            position=index,
                            index=index,
                            name=step.name,
                        )
                    )
            await session.commit()
            await session.refresh(run)
        await self.enqueue(run.id)
        return run

    async def get(self, principal: Principal, run_id: int) -> WorkflowRun:
        async with self.db.session() as session:
            run = await session.get(WorkflowRun, run_id)
        if run is None or (run.username != principal.username and not principal.platform_admin):
            raise NotFound(f"run {run_id} does not exist", reason="run-not-found")
        return run

    async def graph(self, run: WorkflowRun) -> tuple[list[RunJob], list[RunStep]]:
        async with self.db.session() as session:
            jobs = list(
                await session.exec(
                    select(RunJob)
                    .where(col(RunJob.run_id) == run.id)
                    .order_by(col(RunJob.position))
                )
            )
            steps = list(
                await session.exec(
                    select(RunStep)
                    .where(col(RunStep.run_id) == run.id)
                    .order_by(col(RunStep.run_job_id), col(RunStep.position))
                )
            )
        return jobs, steps
