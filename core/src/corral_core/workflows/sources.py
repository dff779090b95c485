"""The workflow sources of ``uses: <source>/<reference>`` steps, by their prefix.

``workflow/<name>`` (the user's own workflows) is built into :class:`~.runs.RunService`;
``corral/`` and ``parallelworks/`` are actions. Every other prefix names a source registered
through ``corral_register_workflow_sources`` (:mod:`corral_sdk.providers.workflow_source`):
Corral's own ``github`` and ``marketplace``, and any plugin's. A prefix nobody registered fails
naming it, so installing a plugin is all it takes to make one work. Corral's ``marketplace``
works on the kernel's database, so the runtime builds it and hands it over (``built``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from corral_core.settings import WorkflowSettings
from corral_core.workflows.github import GitHubWorkflows
from corral_sdk.errors import CorralError, Invalid, ProviderError
from corral_sdk.providers.workflow_source import ResolvedWorkflow, WorkflowSource
from corral_sdk.records import WorkflowSourceRecord

__all__ = ["ACTION_PREFIXES", "WORKFLOW_PREFIX", "WorkflowSources", "is_action"]

log = logging.getLogger("corral.workflows")

WORKFLOW_PREFIX = "workflow/"
"""``uses: workflow/<name>``: one of the user's own workflows."""
ACTION_PREFIXES = ("parallelworks/", "corral/")
"""``uses: corral/<action>`` (``parallelworks/`` is the same action): a registered action."""


def is_action(uses: str) -> bool:
    return uses.startswith(ACTION_PREFIXES)


class WorkflowSources:
    """Resolve ``uses:`` references through the registered workflow sources."""

    def __init__(
        self,
        records: Mapping[str, WorkflowSourceRecord],
        settings: WorkflowSettings | None = None,
        *,
        built: Mapping[str, WorkflowSource] | None = None,
    ) -> None:
        self.records = records
        self.settings = settings or WorkflowSettings()
        self._built: dict[str, WorkflowSource] = dict(built or {})
        """Sources built once, by name; Corral's own that need its services come built."""

    def source(self, uses: str) -> WorkflowSource:
        """The source of ``uses`` (built once), or ``Invalid`` naming the prefix."""
        name, slash, _ = uses.partition("/")
        record = self.records.get(name) if slash else None
        if record is None:
            known = ", ".join(f"{n}/" for n in sorted(self.records)) or "none"
            raise Invalid(
                f"no workflow source {name + slash!r} is installed "
                f"(installed: workflow/, {known}; actions: corral/, parallelworks/)",
                field="uses",
                reason="unknown-workflow-source",
            )
        if name not in self._built:
            factory = record.load()
            try:
                # Corral's own source gets Corral's setting; a plugin's reads its own
                self._built[name] = (
                    factory(self.settings.github_url) if factory is GitHubWorkflows else factory()
                )
            except CorralError:
                raise
            except Exception as exc:  # a plugin's bug, or a source of Corral's not handed over
                log.error("workflow source %s could not be built", name, exc_info=exc)
                raise ProviderError(
                    f"the workflow source {name + slash!r} could not be built: "
                    f"{type(exc).__name__}: {exc}",
                    reason="workflow-source-failed",
                ) from exc
        return self._built[name]

    async def resolve(self, uses: str, *, username: str, org: str) -> ResolvedWorkflow:
        """The workflow ``uses`` names now. Raises the source's ``CorralError`` (its message
        not naming ``uses``: callers do), or ``ProviderError`` for a source's bug."""
        source = self.source(uses)
        try:
            resolved = await source.resolve(uses, username=username, org=org)
        except CorralError:
            raise
        except Exception as exc:  # a plugin's bug: the step fails, the worker goes on
            log.error("workflow source of %s failed", uses, exc_info=exc)
            raise ProviderError(
                f"the workflow source failed: {type(exc).__name__}: {exc}",
                reason="workflow-source-failed",
            ) from exc
        if not isinstance(resolved, ResolvedWorkflow) or not resolved.identity:
            raise ProviderError(
                "the workflow source returned no workflow (a ResolvedWorkflow with an identity)",
                reason="workflow-source-failed",
            )
        return resolved
