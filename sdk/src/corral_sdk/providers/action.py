"""Workflow actions: the steps written as ``uses: corral/<name>`` in workflow YAML
(``parallelworks/<name>`` is the same action, the name workflows written for ACTIVATE use).

An action plugin registers a :class:`~corral_sdk.records.WorkflowActionRecord` whose factory is
called with no arguments; the record's ``config`` struct decodes the step's ``with:`` mapping
(so a bad key is reported with its line in the YAML) and :meth:`WorkflowAction.run` receives the
decoded inputs. Outputs are strings, like the ``key=value`` lines a ``run:`` step writes to
``$OUTPUTS``; they are reachable as ``needs.<job>.steps.<id>.outputs.<key>``.

Errors: inputs that break a rule raise :class:`~corral_sdk.errors.Invalid` with ``field``
(``"with.run"``), which fails the run before any step executes; a failed action raises
:class:`~corral_sdk.errors.ProviderError` with a message for the run log; a cancelled run
cancels the task running the action, so clean up in ``finally`` blocks.

Durability: an action runs inside a Corral worker, not detached on its target like a ``run:``
step. When the worker dies in the middle of an action, the next worker runs the action again
from the start: make ``run`` idempotent (a checkout that fetches into an existing clone, a
cancel of jobs already cancelled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import msgspec

from corral_sdk.features import WorkflowActionFeature
from corral_sdk.providers.scheduler import Scheduler
from corral_sdk.transport import CommandRunner

__all__ = [
    "ACTION_FEATURE_METHODS",
    "ActionContext",
    "ActionResult",
    "ReleasingAction",
    "WorkflowAction",
]


@runtime_checkable
class ActionContext(Protocol):
    """What the workflow engine lends an action for one step."""

    @property
    def run_id(self) -> str:
        """The workflow run's id."""
        ...

    @property
    def job(self) -> str:
        """The job's name (with its matrix values, for matrix jobs)."""
        ...

    @property
    def step(self) -> str:
        """The step's ``id``, or its position when it has none."""
        ...

    @property
    def workdir(self) -> str:
        """The step's working directory on the runner's machine."""
        ...

    @property
    def env(self) -> Mapping[str, str]:
        """The step's environment (workflow, job and step ``env`` merged)."""
        ...

    @property
    def runner(self) -> CommandRunner | None:
        """The step's ``ssh`` target, or the user's workspace; ``None`` when the action runs
        inside Corral only."""
        ...

    @property
    def scheduler(self) -> Scheduler | None:
        """The scheduler of the cluster the step's ``ssh`` names, over :attr:`runner`;
        ``None`` in the workspace."""
        ...

    @property
    def attempt_key(self) -> str:
        """A name for this attempt of this step of this run (letters, digits, ``-``), the same
        when a worker that died runs the action again: name what the action makes with it to
        find it again instead of making it twice."""
        ...

    @property
    def ssh_public_key(self) -> str:
        """The OpenSSH public key Corral signs in with as the run's user (to authorize on an
        SSH server the action starts, such as an agent's sshd on a node)."""
        ...

    async def trust_host_key(self, host: str, port: int, public_key: str) -> None:
        """Trust ``public_key`` (OpenSSH format), and only it, for ``host:port`` reached
        through the step's ``ssh`` target as a jump host: the key of a server the action
        started and read. Later steps with ``jumpNodeHost`` there sign in to it. Raises
        ``Invalid`` in the workspace."""
        ...

    async def log(self, message: str) -> None:
        """Append a line to the step's log (durable, followed live by users)."""
        ...

    async def set_output(self, name: str, value: str) -> None:
        """Publish an output now (later values for one name replace earlier ones)."""
        ...

    async def cancel_jobs(
        self,
        jobs: Sequence[str] | None = None,
        *,
        slug: str | None = None,
        workflow: str | None = None,
        number: int | None = None,
    ) -> list[str]:
        """Cancel jobs (all of them when ``jobs`` is ``None``) of the innermost run this step
        runs in (a sub-workflow's run inside one), or of another run of the same user named by
        its ``slug`` or by ``workflow`` and run ``number``; return the jobs cancelled. In the
        step's own run, "all" leaves out the step's own job. An unknown run or job raises
        ``NotFound``; the run's cleanups still run."""
        ...

    async def update_session(self, name: str, changes: Mapping[str, Any], *, status: str) -> None:
        """Fill in session ``name`` (one the run declared under ``sessions:``, or with the
        workflow's ``permissions: ['*']`` any of the user's) with ``changes`` (session fields:
        ``type``, ``target``, ``remote_host``, ``remote_port``, ``local_port``, ``slug``,
        ``url``, ``openai``) and set its state (``creating`` or ``running``; Corral then checks
        that the app answers). Another session raises ``PermissionDenied``, an unknown one
        ``NotFound``."""
        ...


class ActionResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a finished action returns."""

    outputs: dict[str, str] = msgspec.field(default_factory=dict)
    """Outputs, merged over those published with :meth:`ActionContext.set_output`."""
    summary: str = ""
    """One line for the run page."""


@runtime_checkable
class WorkflowAction(Protocol):
    """What an action plugin implements. See the module docstring for inputs and errors."""

    async def validate(self, inputs: Any) -> None:
        """Check the decoded ``with:`` inputs across fields (``workflow`` needs ``run``),
        before the run starts; raise ``Invalid`` naming the field."""
        ...

    async def run(self, inputs: Any, ctx: ActionContext) -> ActionResult:
        """Do the step's work and return its outputs; raise to fail the step."""
        ...


@runtime_checkable
class ReleasingAction(WorkflowAction, Protocol):
    """An action that holds something until its run ends (a scheduler job, a server): the
    engine calls :meth:`release` once every job of the run has ended, whatever the run's
    status, with the step's outputs (those published with :meth:`ActionContext.set_output`
    before a failure or a cancel included)."""

    async def release(self, outputs: Mapping[str, str], ctx: ActionContext) -> None:
        """Let go of what the step holds. Idempotent (a worker that dies in the middle runs it
        again); an error is logged in the run and does not change its status."""
        ...


ACTION_FEATURE_METHODS: Mapping[WorkflowActionFeature, tuple[str, ...]] = MappingProxyType(
    {
        WorkflowActionFeature.NEEDS_TARGET: (),
        WorkflowActionFeature.PRODUCES_OUTPUTS: (),
    }
)
"""Action features need no extra methods: ``NEEDS_TARGET`` means :attr:`ActionContext.runner`
must be set, ``PRODUCES_OUTPUTS`` that the result carries outputs."""
