"""Recording stand-ins for what the kernel lends providers: a progress log and an action context."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing corral_sdk.providers at run time would load every provider kind
    from corral_sdk.providers._common import StepState
    from corral_sdk.providers.scheduler import Scheduler
    from corral_sdk.transport import CommandRunner

__all__ = ["RecordingActionContext", "RecordingLog"]


class RecordingLog:
    """A :class:`~corral_sdk.providers.ProgressLog` that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.steps: list[tuple[str, StepState, str]] = []

    async def log(self, message: str) -> None:
        self.lines.append(message)

    async def step(self, name: str, state: StepState, detail: str = "") -> None:
        self.steps.append((name, state, detail))

    def step_states(self) -> dict[str, StepState]:
        """The last state reported for each step."""
        return {name: state for name, state, _ in self.steps}


class RecordingActionContext:
    """An :class:`~corral_sdk.providers.ActionContext` that keeps log lines and outputs."""

    def __init__(
        self,
        *,
        runner: CommandRunner | None = None,
        scheduler: Scheduler | None = None,
        ssh_public_key: str = "",
        workdir: str = "/tmp/corral-run",  # noqa: S108 - a path on the runner, never opened here
        env: Mapping[str, str] | None = None,
        run_id: str = "run-1",
        job: str = "main",
        step: str = "step-1",
    ) -> None:
        self._runner = runner
        self._scheduler = scheduler
        self._ssh_public_key = ssh_public_key
        self._workdir = workdir
        self._env = dict(env or {})
        self._run_id = run_id
        self._job = job
        self._step = step
        self.lines: list[str] = []
        self.outputs: dict[str, str] = {}
        self.cancelled: list[dict[str, Any]] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.trusted: dict[tuple[str, int], str] = {}
        """Host keys trusted through :meth:`trust_host_key`, by ``(host, port)``."""

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def job(self) -> str:
        return self._job

    @property
    def step(self) -> str:
        return self._step

    @property
    def workdir(self) -> str:
        return self._workdir

    @property
    def env(self) -> Mapping[str, str]:
        return self._env

    @property
    def runner(self) -> CommandRunner | None:
        return self._runner

    @property
    def scheduler(self) -> Scheduler | None:
        return self._scheduler

    @property
    def attempt_key(self) -> str:
        return re.sub(r"[^A-Za-z0-9-]+", "-", f"{self._run_id}-{self._job}-{self._step}")

    @property
    def ssh_public_key(self) -> str:
        return self._ssh_public_key

    async def trust_host_key(self, host: str, port: int, public_key: str) -> None:
        self.trusted[(host, port)] = public_key

    async def log(self, message: str) -> None:
        self.lines.append(message)

    async def set_output(self, name: str, value: str) -> None:
        self.outputs[name] = value

    async def cancel_jobs(
        self,
        jobs: Sequence[str] | None = None,
        *,
        slug: str | None = None,
        workflow: str | None = None,
        number: int | None = None,
    ) -> list[str]:
        wanted = list(jobs) if jobs is not None else ["*"]
        self.cancelled.append(
            {"jobs": wanted, "slug": slug, "workflow": workflow, "number": number}
        )
        return wanted

    async def update_session(self, name: str, changes: Mapping[str, Any], *, status: str) -> None:
        self.sessions[name] = {**changes, "status": status}
