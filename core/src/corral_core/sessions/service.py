"""Sessions of workflow runs (spec §7): made when a run starts, filled in by the
``update-session`` action, removed when the run ends unless ``detach``. What makes them run is
:mod:`corral_core.sessions.live`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlmodel import col, select

from corral_core.db import Database
from corral_core.resources.models import Resource
from corral_core.resources.service import ResourceService
from corral_core.sessions.spec import SESSION_KIND, SessionSpec
from corral_core.workflows.format import PromptForName, Session
from corral_core.workflows.models import WorkflowRun
from corral_sdk.errors import Invalid, NotFound

__all__ = ["RunSessions"]

_NOT_NAME = re.compile(r"[^a-z0-9]")


def _name(text: str) -> str:
    return _NOT_NAME.sub("", text.lower())[:255]


class RunSessions:
    """The sessions a workflow run declares (``sessions:``), as session resources of the run's
    user."""

    def __init__(self, db: Database, resources: ResourceService) -> None:
        self.db = db
        self.resources = resources

    async def _of_user(self, username: str) -> list[Resource]:
        async with self.db.session() as session:
            return list(
                await session.exec(
                    select(Resource)
                    .where(col(Resource.kind) == SESSION_KIND)
                    .where(col(Resource.owner) == username)
                )
            )

    async def ensure_for_run(
        self, run: WorkflowRun, declared: Mapping[str, Session | None]
    ) -> dict[str, str]:
        """Make the run's sessions that do not exist yet (a second call after a crash makes
        none twice); returns each declared name's session name, for ``sessions.<name>``."""
        if not declared:
            return {}
        existing = {
            str(row.spec.get("run_session")): row.name
            for row in await self._of_user(run.username)
            if row.spec.get("run_id") == run.id
        }
        names: dict[str, str] = {}
        for key, declared_as in declared.items():
            if key in existing:
                names[key] = existing[key]
                continue
            definition = declared_as or Session()
            prompt = definition.prompt_for_name
            wanted = _name(prompt.default) if isinstance(prompt, PromptForName) else ""
            generated = _name(f"{run.plan.get('workflow', 'run')}{run.number:05d}{key}")
            spec = SessionSpec(
                type=definition.type,
                openai=definition.openAI,
                use_tls=definition.useTLS,
                use_custom_domain=definition.useCustomDomain,
                run_id=run.id,
                run_session=key,
                detach=definition.detach,
                redirect=definition.redirect,
            )
            for candidate in dict.fromkeys(
                name for name in (wanted, generated, f"{wanted}{run.number:05d}") if len(name) >= 2
            ):
                try:
                    created = await self.resources.create(
                        SESSION_KIND,
                        org=run.org,
                        owner=run.username,
                        name=candidate,
                        spec=msgspec.to_builtins(spec),
                        desired_state="creating",
                        actor=run.username,
                    )
                except Invalid as exc:
                    if exc.reason == "name-taken":
                        continue
                    raise
                names[key] = created.name
                break
            else:
                raise Invalid(f"sessions.{key}: no free name for the session", field="sessions")
        return names

    async def update(
        self, username: str, name: str, changes: Mapping[str, Any], status: str
    ) -> None:
        """``update-session``: fill in a session of ``username`` and set its state."""
        found = [row for row in await self._of_user(username) if row.name == name]
        if not found:
            raise NotFound(f"{username} has no session {name!r}", reason="session-not-found")
        row = found[0]
        spec = msgspec.convert({**row.spec, **changes}, SessionSpec)
        await self.resources.set_desired(
            row.id or 0, desired_state=status, spec=msgspec.to_builtins(spec), actor=username
        )

    async def remove_ended(self, run_id: int | None = None) -> int:
        """Delete the sessions (not detached) of runs that ended (of ``run_id`` only, when
        given); the sweep calls it too, so a Corral killed as a run ended leaves none."""
        async with self.db.session() as session:
            rows = list(
                await session.exec(select(Resource).where(col(Resource.kind) == SESSION_KIND))
            )
            runs = {
                r.spec.get("run_id")
                for r in rows
                if r.spec.get("run_id") and not r.spec.get("detach")
            }
            if run_id is not None:
                runs &= {run_id}
            ended = (
                set(
                    await session.exec(
                        select(WorkflowRun.id)
                        .where(col(WorkflowRun.id).in_(runs))
                        .where(col(WorkflowRun.finished).is_(True))
                    )
                )
                if runs
                else set()
            )
            present = (
                set(await session.exec(select(WorkflowRun.id).where(col(WorkflowRun.id).in_(runs))))
                if runs
                else set()
            )
        removed = 0
        for row in rows:
            owner_run = row.spec.get("run_id")
            if row.spec.get("detach") or owner_run not in runs:
                continue
            if owner_run in ended or owner_run not in present:
                try:
                    await self.resources.delete(row.id or 0, actor=row.owner)
                    removed += 1
                except NotFound:
                    pass
        return removed

    async def ensure_legacy(self, run: WorkflowRun, directory: str) -> Resource:
        """The run's legacy interactive session (``service.json`` in ``directory``, spec §10),
        made on first use; removed with the run's other sessions when it ends."""
        for existing in await self._of_user(run.username):
            if (
                existing.spec.get("run_id") == run.id
                and existing.spec.get("type") == "service-json"
            ):
                return existing
        name = _name(f"{run.plan.get('workflow', 'run')}{run.number:05d}")
        spec = SessionSpec(
            type="service-json",
            options={"directory": directory},
            run_id=run.id,
            run_session="service.json",
        )
        for candidate in (name, f"{name}view", f"{name}{run.id}"):
            try:
                made = await self.resources.create(
                    SESSION_KIND,
                    org=run.org,
                    owner=run.username,
                    name=candidate,
                    spec=msgspec.to_builtins(spec),
                    desired_state="running",
                    actor=run.username,
                )
            except Invalid as exc:
                if exc.reason != "name-taken":
                    raise
                continue
            async with self.db.session() as session:
                found = await session.get(Resource, made.id)
            if found is not None:
                return found
        raise Invalid("no free name for the run's session", field="name")
