"""A stand-in batch scheduler for the plugin's tests (the real one, Slurm, runs in the lab's
cross-package tests): it runs each job's script for real, as a local process on this machine
(the "node"), in the job's working directory with its output in the job's output path and the
runner's ``HOME`` and ``PATH``; it can keep jobs pending with a reason until released, refuses
unknown partitions and options as a scheduler does, and cancels a job by signalling its process
group (TERM, then KILL after a grace period, as Slurm's ``KillWait``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.scheduler import JobSpec, JobState, JobStatus, SubmittedJob
from corral_sdk.testing.shell import ShellRunner

__all__ = ["StandInScheduler"]

KILL_WAIT_SECONDS = 10.0


class StandInScheduler:
    def __init__(
        self,
        runner: ShellRunner,
        *,
        partitions: tuple[str, ...] = ("debug", "long"),
        pending_reason: str = "",
    ) -> None:
        self.runner = runner
        self.partitions = partitions
        self.pending_reason = pending_reason
        """Jobs submitted while this is set stay pending with it as their reason."""
        self.jobs: dict[str, JobSpec] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.held: set[str] = set()
        self.cancelled: set[str] = set()
        self.cancel_calls: list[list[str]] = []

    async def submit(self, job: JobSpec) -> SubmittedJob:
        if job.partition is not None and job.partition not in self.partitions:
            raise ProviderError(
                "sbatch: error: Batch job submission failed: Invalid partition name specified"
            )
        for name in job.flags:
            if name not in ("constraint", "exclusive", "reservation"):
                raise Invalid(f"{name!r} is not an option here", field="flags")
        job_id = str(100 + len(self.jobs))
        self.jobs[job_id] = job
        if self.pending_reason:
            self.held.add(job_id)
        else:
            self._launch(job_id)
        return SubmittedJob(job_id=job_id, message=f"Submitted batch job {job_id}")

    def release(self) -> None:
        """Start the jobs kept pending."""
        self.pending_reason = ""
        for job_id in sorted(self.held):
            self._launch(job_id)
        self.held.clear()

    def _launch(self, job_id: str) -> None:
        job = self.jobs[job_id]
        assert job.working_directory and job.output_path
        script = Path(job.working_directory) / f".job-{job_id}.sh"
        script.write_text(job.script)
        with open(job.output_path, "ab") as output:
            self.processes[job_id] = subprocess.Popen(
                ["/bin/sh", str(script)],
                cwd=job.working_directory,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={
                    "HOME": str(self.runner.home),
                    "PATH": f"{self.runner.bin_dir}:{os.environ['PATH']}",
                    "LANG": "C.UTF-8",
                },
            )

    def _status(self, job_id: str) -> JobStatus:
        if job_id not in self.jobs:
            return JobStatus(job_id=job_id, state=JobState.UNKNOWN)
        if job_id in self.held:
            state = JobState.CANCELLED if job_id in self.cancelled else JobState.PENDING
            reason = "" if job_id in self.cancelled else self.pending_reason
            return JobStatus(job_id=job_id, state=state, native_state=state.name, reason=reason)
        code = self.processes[job_id].poll()
        if code is None:
            return JobStatus(
                job_id=job_id, state=JobState.RUNNING, native_state="RUNNING", nodes=("local",)
            )
        if job_id in self.cancelled:
            state = JobState.CANCELLED
        else:
            state = JobState.COMPLETED if code == 0 else JobState.FAILED
        return JobStatus(
            job_id=job_id,
            state=state,
            native_state=state.name,
            reason="NonZeroExitCode" if state is JobState.FAILED else "",
            exit_code=code,
        )

    async def status(self, job_ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return {job_id: self._status(job_id) for job_id in job_ids}

    async def cancel(self, job_ids: Sequence[str]) -> None:
        self.cancel_calls.append(list(job_ids))
        for job_id in job_ids:
            if job_id not in self.jobs or self._status(job_id).state.terminal:
                continue
            self.cancelled.add(job_id)
            process = self.processes.get(job_id)
            if process is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + KILL_WAIT_SECONDS
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever of the job is left
            process.wait()

    async def queue(
        self, *, user: str | None = None, partition: str | None = None
    ) -> Sequence[JobStatus]:
        return [
            status
            for status in (self._status(job_id) for job_id in self.jobs)
            if not status.state.terminal
        ]

    def kill_all(self) -> None:
        """What a failed test left running."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
