"""What a workflow resource stores in its ``spec`` (the YAML itself is in ``workflow_version``)."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from corral_core.identity.names import NameRule
from corral_sdk.reconcile import ReconcileContext, ReconcileResult, ResourceSnapshot

__all__ = [
    "WORKFLOW_KIND",
    "WORKFLOW_NAME_PATTERN",
    "WORKFLOW_NAME_RULE",
    "WORKFLOW_USER_NAME",
    "WorkflowReconciler",
    "WorkflowSpec",
]

WORKFLOW_KIND = "workflow"
WORKFLOW_NAME_PATTERN = (
    r"[a-z0-9_]{2,255}|marketplace\.[a-z0-9_-]{1,63}\.(?:latest|v[A-Za-z0-9_.-]{2,63})"
)
"""The names users give, and the names of the marketplace workflows they use
(``marketplace.<slug>.<version>``, made by the marketplace, never typed)."""
WORKFLOW_NAME_RULE = (
    "between 2-255 characters, and use only lowercase letters, numbers, and '_' characters, "
    "unique among all your resources of every kind"
)
WORKFLOW_USER_NAME = NameRule(
    f"{WORKFLOW_KIND} name", re.compile(r"[a-z0-9_]{2,255}"), 255, WORKFLOW_NAME_RULE
)
"""The rule of the names users give their workflows."""


class WorkflowSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    source: Literal["local", "remote", "marketplace"] = "local"
    """``local``: the YAML is stored in Corral (versions kept); ``remote``: fetched from
    ``url`` at every run; ``marketplace``: a marketplace item's version (the marketplace's
    subscription says which), used from the marketplace."""
    url: str = ""
    """A git repository (https) holding the YAML, for a remote workflow."""
    ref: str = ""
    """The branch, tag or commit to fetch (the repository's default branch when empty)."""
    path: str = "workflow.yaml"
    """The YAML's path in the repository."""
    app: bool = False
    """Marked as an App (listed under Apps in the run menu)."""
    version: int = 0
    """The current version of a local workflow's YAML."""


class WorkflowReconciler:
    """A workflow has nothing to drive: it is active as soon as it exists (runs are driven by
    the workflow engine, not by this reconciler)."""

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        return ReconcileResult(observed_state="active")
