"""The built-in workflow actions (spec §8): ``uses: parallelworks/<name>`` (or ``corral/<name>``).

They are registered by Corral's built-in plugin through ``corral_register_workflow_actions``,
exactly as a third-party action is, and implement :class:`~corral_sdk.providers.action.
WorkflowAction`: ``checkout`` clones a git repository where the step runs (the workspace, or a
cluster over SSH); ``cancel-jobs`` cancels jobs of the run it runs in or of another run;
``update-session`` fills in one of the run's sessions.
"""

from __future__ import annotations

import shlex
from typing import Literal

import msgspec

from corral_core.sessions.spec import WORKSPACE
from corral_core.workflows.executors import shell_path
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.action import ActionContext, ActionResult

__all__ = [
    "CancelJobs",
    "CancelJobsInputs",
    "Checkout",
    "CheckoutInputs",
    "UpdateSession",
    "UpdateSessionInputs",
]


class CheckoutInputs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``with:`` of ``parallelworks/checkout``."""

    repo: str
    """The repository's URL (anything ``git fetch`` takes: https, ssh, a path)."""
    branch: str
    """A branch, tag or commit to check out."""
    sparse_checkout: list[str] = msgspec.field(default_factory=list)
    """Only paths matching these patterns (git's non-cone sparse-checkout patterns)."""
    path: str = ""
    """Where to check out; by default the step's working directory (the run's directory)."""


class Checkout:
    """Fetch ``branch`` of ``repo`` into ``path`` (created if missing) and check it out.

    Idempotent: an existing clone there is fetched into again, so a run that resumes after a
    Corral process died checks out the same commit once more instead of failing."""

    async def validate(self, inputs: CheckoutInputs) -> None:
        if not inputs.repo.strip():
            raise Invalid("with.repo: the repository URL is empty", field="with.repo")
        if not inputs.branch.strip() or inputs.branch.startswith("-"):
            raise Invalid(f"with.branch: {inputs.branch!r} is not a branch", field="with.branch")
        for pattern in inputs.sparse_checkout:
            if not pattern.strip():
                raise Invalid(
                    "with.sparse_checkout: an empty pattern", field="with.sparse_checkout"
                )

    async def run(self, inputs: CheckoutInputs, ctx: ActionContext) -> ActionResult:
        await self.validate(inputs)
        if ctx.runner is None:
            raise ProviderError("checkout needs a target to run on")
        destination = shell_path(inputs.path or ctx.workdir)
        if inputs.sparse_checkout:
            patterns = " ".join(shlex.quote(p) for p in inputs.sparse_checkout)
            sparse = f"git sparse-checkout set --no-cone {patterns}"
        else:
            sparse = "git sparse-checkout disable 2>/dev/null || true"
        script = "\n".join(
            [
                "set -e",
                f"mkdir -p {destination}",
                f"cd {destination}",
                "git init -q .",
                "git remote remove origin 2>/dev/null || true",
                f"git remote add origin {shlex.quote(inputs.repo)}",
                sparse,
                f"git fetch -q --depth 1 origin {shlex.quote(inputs.branch)}",
                "git -c advice.detachedHead=false checkout -q -f FETCH_HEAD",
                "git rev-parse HEAD",
            ]
        )
        await ctx.log(f"checkout: {inputs.repo} {inputs.branch} into {inputs.path or ctx.workdir}")
        result = await ctx.runner.run(script, env={"GIT_TERMINAL_PROMPT": "0"})
        for line in (result.stdout + result.stderr).strip().splitlines()[:-1] or []:
            await ctx.log(line)
        if not result.ok:
            raise ProviderError(
                f"checkout of {inputs.repo} ({inputs.branch}) failed with exit status "
                f"{result.exit_status}: {result.stderr.strip()[-1000:]}"
            )
        commit = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        await ctx.log(f"checked out {commit}")
        return ActionResult(summary=f"checked out {inputs.repo} at {commit[:12]}")


class CancelJobsInputs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``with:`` of ``parallelworks/cancel-jobs``."""

    jobs: list[str] | None = None
    """Jobs to cancel; by default all of them (in the step's own run, all but its own job)."""
    workflow: str | None = None
    """Another workflow, whose run ``run`` is cancelled."""
    run: int | None = None
    """The run number (required with ``workflow``)."""
    slug: str | None = None
    """Another run, by its slug (instead of ``workflow`` and ``run``)."""


class CancelJobs:
    """Cancel jobs of the innermost run the step runs in, or of another run."""

    async def validate(self, inputs: CancelJobsInputs) -> None:
        if inputs.workflow is not None and inputs.run is None:
            raise Invalid("with.run: the run number is required with 'workflow'", field="with.run")
        if inputs.slug is not None and inputs.workflow is not None:
            raise Invalid(
                "with.slug: name the run by 'slug' or by 'workflow' and 'run', not both",
                field="with.slug",
            )
        if inputs.run is not None and inputs.run < 1:
            raise Invalid(f"with.run: {inputs.run} is not a run number", field="with.run")

    async def run(self, inputs: CancelJobsInputs, ctx: ActionContext) -> ActionResult:
        await self.validate(inputs)
        cancelled = await ctx.cancel_jobs(
            inputs.jobs,
            slug=inputs.slug,
            workflow=inputs.workflow,
            number=inputs.run if inputs.workflow is not None else None,
        )
        summary = f"canceled {', '.join(cancelled)}" if cancelled else "no job left to cancel"
        await ctx.log(summary)
        return ActionResult(summary=summary)


class UpdateSessionInputs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``with:`` of ``parallelworks/update-session`` (spec §8.3)."""

    name: str
    """The session: ``${{ sessions.<name> }}``."""
    type: Literal["tunnel", "link"] = "tunnel"
    target: str = WORKSPACE
    """A cluster (``${{ inputs.cluster.id }}``) or ``user-workspace``."""
    status: Literal["", "creating", "running"] = ""
    """By default ``running`` for a link or a tunnel into the workspace, else ``creating``;
    Corral then checks that the app answers."""
    remote_port: int | None = msgspec.field(name="remotePort", default=None)
    remote_host: str = msgspec.field(name="remoteHost", default="localhost")
    slug: str = ""
    local_port: int = msgspec.field(name="localPort", default=0)
    openai: bool = msgspec.field(name="openAI", default=False)
    url: str = ""


class UpdateSession:
    """Fill in one of the run's sessions: where its app listens (a tunnel) or its URL (a
    link)."""

    async def validate(self, inputs: UpdateSessionInputs) -> None:
        if not inputs.name.strip():
            raise Invalid("with.name: the session's name is empty", field="with.name")
        if inputs.type == "tunnel" and inputs.remote_port is None:
            raise Invalid(
                "with.remotePort: a tunnel session needs the app's port", field="with.remotePort"
            )
        if inputs.remote_port is not None and not 0 < inputs.remote_port < 65536:
            raise Invalid(f"with.remotePort: {inputs.remote_port} is not a port",
                          field="with.remotePort")  # fmt: skip
        if inputs.type == "link" and not inputs.url.startswith(("http://", "https://")):
            raise Invalid("with.url: a link session needs an http(s) URL", field="with.url")

    async def run(self, inputs: UpdateSessionInputs, ctx: ActionContext) -> ActionResult:
        await self.validate(inputs)
        status = inputs.status or (
            "running" if inputs.type == "link" or inputs.target == WORKSPACE else "creating"
        )
        changes = {
            "type": inputs.type,
            "target": inputs.target,
            "remote_host": inputs.remote_host,
            "remote_port": inputs.remote_port,
            "local_port": inputs.local_port,
            "slug": inputs.slug,
            "openai": inputs.openai,
            "url": inputs.url,
        }
        await ctx.update_session(inputs.name, changes, status=status)
        where = (
            inputs.url if inputs.type == "link" else f"{inputs.remote_host}:{inputs.remote_port}"
        )
        return ActionResult(summary=f"session {inputs.name}: {inputs.type} to {where} ({status})")
