"""Starting, reading and cancelling runs; the engine (:mod:`.engine`) drives them."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy import delete, exists, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from corral_core.db import Database, utcnow
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.resources.models import Resource
from corral_core.secrets import SecretBox
from corral_core.workflows import expressions
from corral_core.workflows.format import Workflow
from corral_core.workflows.inputs import INPUT_ENV, FormValues, Resolver, resolve_inputs
from corral_core.workflows.loader import load
from corral_core.workflows.models import RUN_STATUSES, RunJob, RunStep, WorkflowRun
from corral_core.workflows.plan import plan
from corral_core.workflows.service import WorkflowService
from corral_core.workflows.sources import WORKFLOW_PREFIX, WorkflowSources, is_action
from corral_core.workflows.variables import org_variables
from corral_sdk.errors import Conflict, CorralError, Invalid, NotFound, PermissionDenied
from corral_sdk.providers.workflow_source import ResolvedWorkflow

__all__ = ["MAX_DEPTH", "Parent", "RunService"]

Enqueue = Callable[[int], Awaitable[None]]
MAX_DEPTH = 5
"""Workflows calling workflows (``uses: workflow/...``, ``github/...``, any source's): at most 5
layers, the first included."""


@dataclass(frozen=True)
class Parent:
    """The run and step (attempt) whose ``uses:`` (``workflow/...``, ``github/...``) starts a
    run."""

    run: WorkflowRun
    step: RunStep

    @property
    def chain(self) -> list[str]:
        """The workflows from the outermost run down to the parent's: names of the user's own,
        identities (``github/o/r/workflow.yaml@<commit>``) of the others."""
        return list(self.run.plan.get("chain") or [self.run.plan.get("workflow", "")])


class RunService:
    def __init__(
        self,
        db: Database,
        workflows: WorkflowService,
        secrets: SecretBox,
        enqueue: Enqueue,
        *,
        sources: WorkflowSources | None = None,
    ) -> None:
        self.db = db
        self.workflows = workflows
        self.secrets = secrets
        self.enqueue = enqueue
        self.sources = sources or WorkflowSources({})

    async def start(
        self,
        principal: Principal,
        ref: ResourceRef,
        inputs: Mapping[str, Any],
        *,
        configuration: str = "",
        resolve: Resolver | None = None,
        parent: Parent | None = None,
    ) -> WorkflowRun:
        """Start a run of ``ref`` (for ``parent``: a sub-workflow's run, started once per step
        attempt however often this is called). Refused before anything is written: bad inputs
        (422 naming the input), missing organization variables (409), and ``uses:`` chains
        that call a workflow again or nest deeper than :data:`MAX_DEPTH` (422)."""
        if parent is not None and (started := await self._child_of(parent)) is not None:
            return started
        resource = await self.workflows.require(principal, ref, "run")
        assert resource.id is not None
        version = await self.workflows.yaml_to_run(resource)
        loaded = self.workflows.check(version.yaml, resource.name)
        workflow = loaded.workflow
        chain = [*(parent.chain if parent is not None else []), resource.name]
        await self._check_uses(principal, workflow, chain, {})
        submitted = dict(inputs)
        if configuration:
            saved = workflow.configurations.get(configuration)
            if saved is None:
                raise Invalid(
                    f"configuration: {resource.name} has no configuration {configuration!r}",
                    field="configuration",
                )
            submitted = {**saved.inputs, **submitted}
        org = await self._org_for(principal, workflow)
        schema = (
            workflow.on.execute.inputs
            if workflow.on is not None and workflow.on.execute is not None
            else {}
        )
        form = await resolve_inputs(schema, submitted, org=org, resolve=resolve)
        planned = plan(workflow, {"inputs": form.values, "org": org})
        return await self._insert(
            resource.id, ResourceRef(resource.owner, resource.name), principal,
            version.version, version.yaml,
            form, planned, workflow, org, chain, parent, version.commit,
        )  # fmt: skip

    async def _org_for(self, principal: Principal, workflow: Workflow) -> dict[str, str]:
        """The organization's variables as set now (no cache); 409 naming those the workflow
        needs that are not set."""
        org = await org_variables(self.db, principal.org_id)
        needed = workflow.needs.organizationVariables if workflow.needs is not None else None
        missing = [name for name in needed or () if name not in org]
        if missing:
            raise Conflict(
                "the workflow needs organization variables an admin must set first: "
                + ", ".join(missing),
                reason="organization-variables-missing",
                details={"missing": missing},
            )
        return org

    async def _insert(self, *args: Any) -> WorkflowRun:
        """:meth:`_insert_once`, again when another run took the same number meanwhile."""
        for attempt in range(5):
            try:
                return await self._insert_once(*args)
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    async def _insert_once(
        self,
        resource_id: int,
        workflow: ResourceRef,
        principal: Principal,
        version: int,
        yaml: str,
        form: FormValues,
        planned: Any,
        loaded: Any,
        org: dict[str, str],
        chain: list[str],
        parent: Parent | None,
        commit: str = "",
        uses: str = "",
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
                    # the org variables the run started with: the engine's `org` context
                    "org": org,
                    "chain": chain,
                    # a remote workflow's: the commit its YAML was fetched at
                    "commit": commit,
                    # a workflow source's (github/o/r@ref): what the calling step named
                    **({"uses": uses} if uses else {}),
                    # what inputs give the steps' environment (a bucket's credentials), sealed
                    **({INPUT_ENV: self.secrets.encrypt(json.dumps(form.env))} if form.env else {}),
                },
                parent_run_id=parent.run.id if parent is not None else None,
                parent_step_id=parent.step.id if parent is not None else None,
                parent_attempt=parent.step.attempt if parent is not None else 0,
                depth=len(chain),
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

    async def _child_of(self, parent: Parent) -> WorkflowRun | None:
        async with self.db.session() as session:
            return (
                await session.exec(
                    select(WorkflowRun)
                    .where(col(WorkflowRun.parent_run_id) == parent.run.id)
                    .where(col(WorkflowRun.parent_step_id) == parent.step.id)
                    .where(col(WorkflowRun.parent_attempt) == parent.step.attempt)
                )
            ).first()

    async def _check_uses(
        self,
        principal: Principal,
        workflow: Workflow,
        chain: list[str],
        seen: dict[str, ResolvedWorkflow],
    ) -> None:
        """Follow every ``uses:`` that calls a workflow (the references written out, not
        expressions) through the user's own workflows and every workflow source: no workflow
        may call one already in the chain, the chain may be at most :data:`MAX_DEPTH` long,
        and every workflow called must exist. ``seen`` keeps what sources returned, so one
        reference is fetched once per check."""
        if len(chain) > MAX_DEPTH:
            raise Invalid(
                f"uses: workflows nest {len(chain)} deep ({' → '.join(chain)}); "
                f"the limit is {MAX_DEPTH}",
                field="uses",
            )
        for job in workflow.jobs.values():
            for step in job.steps:
                uses = step.uses or ""
                if not uses or is_action(uses) or expressions.has_expressions(uses):
                    continue
                if uses.startswith(WORKFLOW_PREFIX):
                    name = uses.removeprefix(WORKFLOW_PREFIX)
                    self._refuse_recursion(chain, name, name)
                    try:
                        called = await self.workflows.require(
                            principal, ResourceRef(principal.username, name), "run"
                        )
                    except NotFound:
                        raise Invalid(
                            f"uses: {uses}: {principal.username} has no workflow {name!r}",
                            field="uses",
                        ) from None
                    yaml = (await self.workflows.yaml_to_run(called)).yaml
                    await self._check_uses(principal, self.workflows.check(yaml, name).workflow,
                                           [*chain, name], seen)  # fmt: skip
                    continue
                if uses not in seen:
                    seen[uses] = await self._resolve(principal, uses)
                resolved = seen[uses]
                self._refuse_recursion(chain, resolved.identity, uses)
                called_workflow = self._load_resolved(resolved, uses)
                await self._check_uses(principal, called_workflow, [*chain, resolved.identity],
                                       seen)  # fmt: skip

    @staticmethod
    def _refuse_recursion(chain: list[str], identity: str, uses: str) -> None:
        if identity in chain:
            again = uses if identity == uses else f"{uses} ({identity})"
            raise Invalid(
                f"uses: {' → '.join([*chain, identity])} calls {again} again (recursion)",
                field="uses",
            )

    async def _resolve(self, principal: Principal, uses: str) -> ResolvedWorkflow:
        """What a workflow source returns for ``uses``; its error, naming ``uses``."""
        try:
            return await self.sources.resolve(uses, username=principal.username, org=principal.org)
        except CorralError as exc:
            raise _naming(exc, f"uses: {uses}: {exc.message}") from None

    @staticmethod
    def _load_resolved(resolved: ResolvedWorkflow, uses: str) -> Workflow:
        return load(resolved.yaml, source=f"uses: {uses}").workflow

    async def start_uses(
        self,
        principal: Principal,
        uses: str,
        inputs: Mapping[str, Any],
        *,
        parent: Parent,
        resolve: Resolver | None = None,
    ) -> WorkflowRun:
        """The run of a step's (rendered) ``uses:``, started once per step attempt however
        often this is called: one of the user's own workflows (``workflow/<name>``,
        :meth:`start`), or the workflow a source resolves (``github/o/r@ref``) now. The
        latter has no workflow of its own in Corral: its run is recorded among the calling
        workflow's runs (numbered with them), with ``plan.uses`` saying what ran. Refused as
        :meth:`start` refuses (inputs, organization variables, recursion and depth), and with
        the source's error when it cannot give the workflow."""
        if uses.startswith(WORKFLOW_PREFIX):
            ref = ResourceRef(principal.username, uses.removeprefix(WORKFLOW_PREFIX))
            return await self.start(principal, ref, inputs, resolve=resolve, parent=parent)
        if (started := await self._child_of(parent)) is not None:
            return started
        # the source's own errors: the step they fail names `uses`
        resolved = await self.sources.resolve(uses, username=principal.username, org=principal.org)
        workflow = load(resolved.yaml, source="workflow").workflow
        chain = [*parent.chain, resolved.identity]
        self._refuse_recursion(parent.chain, resolved.identity, uses)
        await self._check_uses(principal, workflow, chain, {uses: resolved})
        async with self.db.session() as session:
            caller = await session.get(Resource, parent.run.resource_id)
        if caller is None or caller.id is None:
            raise NotFound(f"the workflow of run {parent.run.slug} no longer exists")
        org = await self._org_for(principal, workflow)
        schema = (
            workflow.on.execute.inputs
            if workflow.on is not None and workflow.on.execute is not None
            else {}
        )
        form = await resolve_inputs(schema, dict(inputs), org=org, resolve=resolve)
        planned = plan(workflow, {"inputs": form.values, "org": org})
        return await self._insert(
            caller.id, ResourceRef(caller.owner, caller.name), principal, 0, resolved.yaml,
            form, planned, workflow, org, chain, parent, resolved.version, uses,
        )  # fmt: skip

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

    # --- runs across workflows: by slug or id, listing, cleaning, re-running ----------------------

    async def find(self, principal: Principal, ref: str) -> WorkflowRun:
        """A run by id (digits) or slug: the caller's own (a platform admin's: anyone's)."""
        query = select(WorkflowRun)
        if ref.isascii() and ref.isdigit():
            if len(ref) > 10 or int(ref) > 2**31 - 1:  # ids are 32-bit INTEGERs
                raise NotFound(f"run {ref} does not exist", reason="run-not-found")
            query = query.where(col(WorkflowRun.id) == int(ref))
        else:
            query = query.where(col(WorkflowRun.slug) == ref)
        async with self.db.session() as session:
            run = (await session.exec(query)).first()
        if run is None or (run.username != principal.username and not principal.platform_admin):
            raise NotFound(f"run {ref} does not exist", reason="run-not-found")
        return run

    async def list_runs(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        workflow: str | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[tuple[WorkflowRun, str]], int]:
        """The caller's runs of every workflow (a platform admin's: everyone's), newest first,
        each with its workflow's ``pw://owner/name``; and how many match in all.

        ``workflow`` is a name (``flow``) or ``owner/name``; ``search`` a part of the workflow's
        name or of the run's slug (any case)."""
        query: Any = select(WorkflowRun, Resource.owner, Resource.name).join(
            Resource, col(Resource.id) == col(WorkflowRun.resource_id)
        )
        if not principal.platform_admin:
            query = query.where(col(WorkflowRun.username) == principal.username)
        if status:
            query = query.where(col(WorkflowRun.status) == status)
        if workflow:
            ref = ResourceRef.parse(workflow, principal.username, field="workflow")
            query = query.where(col(Resource.name) == ref.name)
            if "/" in workflow:
                query = query.where(col(Resource.owner) == ref.owner)
        if search:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", search.lower()) + "%"
            query = query.where(
                or_(
                    func.lower(col(Resource.name)).like(pattern, escape="\\"),
                    func.lower(col(WorkflowRun.slug)).like(pattern, escape="\\"),
                )
            )
        async with self.db.session() as session:
            total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
            rows = list(
                await session.exec(
                    query.order_by(col(WorkflowRun.id).desc()).limit(limit).offset(offset)
                )
            )
        return [(run, ResourceRef(owner, name).uri) for run, owner, name in rows], int(total)

    async def clean(
        self,
        principal: Principal,
        *,
        older_than_days: int | None = None,
        slugs: list[str] | None = None,
        status: str | None = None,
    ) -> list[str]:
        """Delete the caller's own finished runs matching every filter given (at least one is
        needed), with their jobs, steps and log lines; returns their slugs. A run whose parent
        run (``uses: workflow/...``) is still going is kept: the parent is reading it."""
        if older_than_days is None and slugs is None and status is None:
            raise Invalid(
                "give at least one filter: older_than_days, slugs or status",
                field="older_than_days",
                details={"fields": ["older_than_days", "slugs", "status"]},
            )
        if status is not None and status not in RUN_STATUSES[2:]:
            raise Invalid(
                f"status: only finished runs are deleted: {', '.join(RUN_STATUSES[2:])}",
                field="status",
            )
        parent = aliased(WorkflowRun)
        query: Any = (
            select(WorkflowRun.id, WorkflowRun.slug)
            .where(col(WorkflowRun.username) == principal.username)
            .where(col(WorkflowRun.finished).is_(True))
            .where(
                ~exists(
                    select(parent.id)
                    .where(col(parent.id) == col(WorkflowRun.parent_run_id))
                    .where(col(parent.finished).is_(False))
                )
            )
        )
        if older_than_days is not None:
            cutoff = utcnow() - timedelta(days=older_than_days)
            query = query.where(col(WorkflowRun.created_at) < cutoff)
        if slugs is not None:
            query = query.where(col(WorkflowRun.slug).in_(slugs))
        if status is not None:
            query = query.where(col(WorkflowRun.status) == status)
        async with self.db.session() as session:
            found = list(await session.exec(query.order_by(col(WorkflowRun.id))))
            ids = [run_id for run_id, _ in found]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                # sub-workflow runs outlive a deleted parent (the column has no ON DELETE)
                await session.exec(
                    update(WorkflowRun)
                    .where(col(WorkflowRun.parent_run_id).in_(chunk))
                    .values(parent_run_id=None)
                )
                # jobs, steps and log lines go with the run (ON DELETE CASCADE)
                await session.exec(delete(WorkflowRun).where(col(WorkflowRun.id).in_(chunk)))
            await session.commit()
        return [slug for _, slug in found]

    async def rerun(self, principal: Principal, ref: str) -> WorkflowRun:
        """A new run of the workflow of run ``ref`` (the caller's own) with the YAML, version
        and input values (passwords included) that run had; organization variables as set
        now."""
        original = await self.find(principal, ref)
        if original.username != principal.username:
            raise PermissionDenied(
                f"run {original.slug} is {original.username}'s: only they can run it again",
                reason="run-not-yours",
            )
        async with self.db.session() as session:
            owner_name = (
                await session.exec(
                    select(Resource.owner, Resource.name).where(
                        col(Resource.id) == original.resource_id
                    )
                )
            ).first()
        if owner_name is None:
            raise NotFound(f"the workflow of run {original.slug} no longer exists")
        workflow_ref = ResourceRef(*owner_name)
        resource = await self.workflows.require(principal, workflow_ref, "run")
        assert resource.id is not None
        workflow = self.workflows.check(original.yaml, resource.name).workflow
        chain = [resource.name]
        await self._check_uses(principal, workflow, chain, {})
        org = await self._org_for(principal, workflow)
        hidden: dict[str, Any] = (
            json.loads(self.secrets.decrypt(original.secret_inputs))
            if original.secret_inputs
            else {}
        )
        sealed = original.plan.get(INPUT_ENV)
        form = FormValues(
            values={**original.inputs, **hidden},
            secrets=frozenset(hidden),
            env=json.loads(self.secrets.decrypt(sealed)) if sealed else {},
        )
        planned = plan(workflow, {"inputs": form.values, "org": org})
        return await self._insert(
            resource.id, workflow_ref, principal, original.version, original.yaml,
            form, planned, workflow, org, chain, None, original.plan.get("commit", ""),
        )  # fmt: skip


def _naming(error: CorralError, message: str) -> CorralError:
    """``error`` with ``message`` instead of its own (same class, reason and details); a
    workflow the reference names that is not there is the reference's fault (422)."""
    if isinstance(error, Invalid | NotFound):
        return Invalid(message, field="uses", reason=error.reason)
    renamed = copy.copy(error)
    renamed.message = renamed.log_message = message
    renamed.args = (message,)
    return renamed
