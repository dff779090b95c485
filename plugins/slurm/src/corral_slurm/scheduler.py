"""The Slurm scheduler: ``sbatch``, ``squeue``, ``sacct``, ``scancel``, ``scontrol`` and ``sinfo``
run through the cluster's :class:`~corral_sdk.transport.CommandRunner`."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from corral_sdk.errors import (
    Conflict,
    CorralError,
    Invalid,
    NotFound,
    PermissionDenied,
    ProviderError,
)
from corral_sdk.providers.scheduler import (
    AccountingRecord,
    ConfigFile,
    ElasticClusterSpec,
    JobSpec,
    JobState,
    JobStatus,
    Node,
    Partition,
    SchedulerBase,
    SubmittedJob,
)
from corral_sdk.transport import CommandResult, CommandRunner
from corral_slurm.accounting import (
    ACCOUNTING_DISABLED,
    SACCT_ACCOUNTING_FIELDS,
    parse_sacct_accounting,
)
from corral_slurm.bootstrap import bootstrap_script, reconfigure_script
from corral_slurm.cluster import (
    SINFO_NODE_FORMAT,
    SINFO_PARTITION_FORMAT,
    parse_sinfo_nodes,
    parse_sinfo_partitions,
)
from corral_slurm.config import SlurmConfig, has_control_characters
from corral_slurm.elastic import elastic_files
from corral_slurm.jobs import (
    JOB_ID,
    SACCT_STATUS_FIELDS,
    SQUEUE_TEXT_FORMAT,
    JobRecord,
    job_statuses,
    parse_sacct_status,
    parse_squeue,
    queue_status,
)
from corral_slurm.sbatch import (
    output_directories,
    parse_sbatch_output,
    sbatch_batch,
    sbatch_request,
)

__all__ = ["JSON_SQUEUE_VERSIONS", "Slurm"]

JSON_SQUEUE_VERSIONS = r"*\ 24.05.[1-9]*|*\ 24.[1-9][0-9].*|*\ 2[5-9].*|*\ [3-9][0-9].*"
"""``case`` patterns for the ``squeue --version`` lines (``slurm 24.05.1``) whose
``squeue --json`` honours ``--jobs``: it ignores every filter before 24.05.1."""

_INVALID_JOB_ID = re.compile(r"Invalid job id specified", re.IGNORECASE)
_FINISHED = re.compile(r"already completing or completed|Job has already finished", re.I)
_NOT_PENDING = re.compile(r"no longer pending|not pending", re.IGNORECASE)
_DENIED = re.compile(r"Access/permission denied|permission denied", re.IGNORECASE)
_WAITING = (JobState.PENDING, JobState.HELD)


def _message(result: CommandResult) -> str:
    """What a failed command said, for users: its standard error, else its output."""
    text = result.stderr.strip() or result.stdout.strip()
    return text or f"exit status {result.exit_status}"


def _error_lines(result: CommandResult) -> list[str]:
    return [line.strip() for line in result.stderr.splitlines() if line.strip()]


def _jobs_filter(job_ids: Sequence[str]) -> str:
    """``--jobs=`` with whole jobs before array tasks: squeue narrows an array's folded
    pending tasks (``2-5``) to the first ``1234_3`` it meets, unless ``1234`` came first."""
    ordered = sorted(job_ids, key=lambda job_id: "_" in job_id)
    return f"--jobs={','.join(ordered)}"


def _needs_accounting(job_id: str, status: JobStatus | None) -> bool:
    """Whether ``sacct`` knows more than the queue: about a job that left it, a finished job
    whose exit code it did not show, or a finished array whose earlier tasks it forgot."""
    if status is None:
        return True
    if not status.state.terminal:
        return False
    whole_array = status.array_job_id == job_id and status.array_task_id is None
    return status.exit_code is None or whole_array


class Slurm(SchedulerBase):
    """Corral's :class:`~corral_sdk.providers.scheduler.Scheduler` for Slurm 20.11 and later.

    Stateless: each call runs its commands through ``runner``; ``config`` (a
    :class:`~corral_slurm.config.SlurmConfig`, or ``None`` for the defaults) says how.
    """

    def __init__(self, runner: CommandRunner, config: SlurmConfig | None = None) -> None:
        self.runner = runner
        self.config = config if config is not None else SlurmConfig()

    # --- running commands -------------------------------------------------------------------

    def _command(self, argv: Sequence[str]) -> str:
        """``argv`` shell-quoted, after the configured prefix."""
        return self._prefixed(shlex.join(argv))

    def _prefixed(self, command: str) -> str:
        if self.config.command_prefix.strip():
            return f"{self.config.command_prefix.strip()} && {command}"
        return command

    async def _run(self, argv: Sequence[str]) -> CommandResult:
        return await self.runner.run(
            self._command(argv), timeout=self.config.command_timeout_seconds
        )

    def _fail(self, tool: str, result: CommandResult) -> ProviderError:
        return ProviderError(
            _message(result),
            log_message=(
                f"{tool} on {self.runner.target} exited {result.exit_status}: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            ),
        )

    @staticmethod
    def _check_ids(job_ids: Sequence[str]) -> list[str]:
        ids = list(dict.fromkeys(job_ids))
        bad = [job_id for job_id in ids if not JOB_ID.match(job_id)]
        if bad:
            raise Invalid(f"{bad[0]!r} is not a Slurm job id", field="job_ids")
        return ids

    # --- squeue -----------------------------------------------------------------------------

    def _squeue_argv(self, filters: Sequence[str]) -> list[str]:
        """The command listing jobs: text, JSON, or (``auto``) one ``sh -c`` choosing by
        ``squeue --version`` on the cluster, so no extra round trip is needed to know."""
        text = [
            "env",
            "SLURM_TIME_FORMAT=%s",
            "squeue",
            "--noheader",
            f"--format={SQUEUE_TEXT_FORMAT}",
            *filters,
        ]
        json = ["squeue", "--json", *filters]
        if self.config.status_format == "text":
            return text
        if self.config.status_format == "json":
            return json
        script = (
            f'case "$(squeue --version 2>/dev/null)" in {JSON_SQUEUE_VERSIONS}) '
            f"exec {shlex.join(json)};; *) exec {shlex.join(text)};; esac"
        )
        return ["sh", "-c", script]

    async def _squeue(self, filters: Sequence[str]) -> list[JobRecord]:
        result = await self._run(self._squeue_argv(filters))
        if not result.ok:
            if _INVALID_JOB_ID.search(result.stderr):
                # with a single --jobs id squeue asks for that job alone and fails when the
                # controller has forgotten it: nothing of it is in the queue
                return []
            raise self._fail("squeue", result)
        try:
            return parse_squeue(result.stdout)
        except ValueError as exc:
            raise ProviderError(
                "squeue printed output Corral cannot read", log_message=str(exc)
            ) from None

    # --- sacct ------------------------------------------------------------------------------

    async def _sacct_statuses(self, job_ids: Sequence[str]) -> tuple[dict[str, JobStatus], str]:
        """Statuses from accounting, and a note when accounting could not answer."""
        result = await self._run(
            [
                "env",
                "SLURM_TIME_FORMAT=%s",
                "sacct",
                "--parsable2",
                "--noheader",
                "--allocations",
                f"--format={SACCT_STATUS_FIELDS}",
                f"--jobs={','.join(job_ids)}",
            ]
        )
        if not result.ok:
            return {}, _message(result)
        return job_statuses(job_ids, parse_sacct_status(result.stdout)), ""

    # --- Scheduler --------------------------------------------------------------------------

    def _sbatch(self, job: JobSpec) -> tuple[str, str]:
        """``[mkdir -p -- <dirs> && ][env K=V ...] sbatch --parsable <options>`` and the script
        for its standard input. The output files' directories are made first: slurmd cannot
        open an output file in a missing directory and the job fails at launch, saying nothing."""
        request = sbatch_request(job, self.config.sbatch_options)
        argv = ["sbatch", "--parsable", *request.options]
        if request.environment:
            argv = ["env", *(f"{name}={value}" for name, value in request.environment), *argv]
        directories = output_directories(job)
        if directories:
            return f"{shlex.join(['mkdir', '-p', '--', *directories])} && {shlex.join(argv)}", (
                request.script
            )
        return shlex.join(argv), request.script

    def _submitted(self, result: CommandResult) -> SubmittedJob:
        if not result.ok:
            raise self._fail("sbatch", result)
        job_id = parse_sbatch_output(result.stdout)
        if job_id is None:
            raise ProviderError(
                "sbatch accepted the job but printed no job id",
                log_message=f"sbatch on {self.runner.target} printed {result.stdout!r}",
            )
        return SubmittedJob(job_id=job_id, message=(result.stdout + result.stderr).strip())

    async def submit(self, job: JobSpec) -> SubmittedJob:
        """``[prefix && ][env K=V ...] sbatch --parsable <options>`` with the script on its
        standard input: one command, one round trip, no file written and no ``sh -c``. sbatch
        reads the script from standard input when given no file name, and Slurm keeps it with
        the job (``scontrol write batch_script <id> -`` prints it back)."""
        return self._submitted(await self._send(*self._sbatch(job)))

    async def _send(self, command: str, script: str) -> CommandResult:
        return await self.runner.run(
            self._prefixed(command), input=script, timeout=self.config.command_timeout_seconds
        )

    async def submit_many(self, jobs: Sequence[JobSpec]) -> Sequence[SubmittedJob | CorralError]:
        """One job as :meth:`submit`; several in one command: ``[prefix && ]sh -s`` reading
        from its standard input a script that runs each job's sbatch with the job's script as a
        here-document, the sbatch calls one after the other as they would be typed."""
        results: list[SubmittedJob | CorralError | None] = []
        batch: list[tuple[int, str, str]] = []
        for job in jobs:
            try:
                command, script = self._sbatch(job)
            except CorralError as exc:
                results.append(exc)
            else:
                batch.append((len(results), command, script))
                results.append(None)
        if len(batch) == 1:
            outcomes = [await self._send(batch[0][1], batch[0][2])]
        elif batch:
            driver = sbatch_batch([(command, script) for _, command, script in batch])
            outcomes = driver.results(
                await self.runner.run(
                    self._command(["sh", "-s"]),
                    input=driver.script,
                    timeout=self.config.command_timeout_seconds * len(batch),
                )
            )
        else:
            outcomes = []
        for (index, _, _), outcome in zip(batch, outcomes, strict=True):
            try:
                results[index] = self._submitted(outcome)
            except CorralError as exc:
                results[index] = exc
        return [result for result in results if result is not None]

    async def status(self, job_ids: Sequence[str]) -> Mapping[str, JobStatus]:
        """One ``squeue`` for every id; one ``sacct`` more only for ids that left the queue
        (or finished without the exit code or all the array tasks the queue still shows)."""
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return {}
        valid = [job_id for job_id in ids if JOB_ID.match(job_id)]
        found: dict[str, JobStatus] = {}
        if valid:
            records = await self._squeue(["--states=all", _jobs_filter(valid)])
            found = job_statuses(valid, records)
        to_account = [job_id for job_id in valid if _needs_accounting(job_id, found.get(job_id))]
        note = ""
        if to_account and self.config.use_sacct:
            accounted, note = await self._sacct_statuses(to_account)
            for job_id, status in accounted.items():
                if job_id not in found or status.state.terminal:
                    found[job_id] = status
        if note and ACCOUNTING_DISABLED.search(note):
            note = ""  # no accounting: a job that left the queue is simply unknown
        return {
            job_id: found.get(job_id)
            or JobStatus(
                job_id=job_id,
                state=JobState.UNKNOWN,
                reason=f"not in the queue; sacct: {note}" if note else "",
            )
            for job_id in ids
        }

    async def cancel(self, job_ids: Sequence[str]) -> None:
        """One ``scancel`` for every id; finished and unknown jobs are not errors."""
        ids = self._check_ids(job_ids)
        if not ids:
            return
        result = await self._run(["scancel", *ids])
        if result.ok:
            return
        errors = _error_lines(result)
        if errors and all(_FINISHED.search(e) or _INVALID_JOB_ID.search(e) for e in errors):
            return
        if any(_DENIED.search(e) for e in errors):
            raise PermissionDenied(_message(result), log_message=f"scancel: {_message(result)}")
        raise self._fail("scancel", result)

    async def queue(
        self, *, user: str | None = None, partition: str | None = None
    ) -> Sequence[JobStatus]:
        """Pending, running, suspended and completing jobs, one entry per job, array task or
        group of pending array tasks (``1234_[5-9]``)."""
        filters = []
        for name, value in (("user", user), ("partition", partition)):
            if value is not None:
                if not value.strip() or has_control_characters(value) or "," in value:
                    raise Invalid(f"{name} must be one name", field=name)
                filters.append(f"--{name}={value}")
        records = await self._squeue(filters)
        # squeue --json before 24.05.1 ignores the filters: apply them here as well
        return [
            queue_status(record)
            for record in records
            if not record.state.terminal
            and (user is None or record.user == user)
            and (partition is None or partition in record.partition.split(","))
        ]

    async def hold(self, job_ids: Sequence[str]) -> None:
        """``scontrol hold``, after checking in the queue that every job still waits: Slurm
        itself would quietly "hold" a running job (it only matters if it is requeued)."""
        ids = self._check_ids(job_ids)
        if not ids:
            return
        records = await self._squeue(["--states=all", _jobs_filter(ids)])
        statuses = job_statuses(ids, records)
        for job_id in ids:
            status = statuses.get(job_id)
            if status is None:
                raise NotFound(f"Slurm has no job {job_id} in its queue", reason="job-not-found")
            whole_array = status.array_job_id == job_id and status.array_task_id is None
            # an array with tasks still waiting can be held even while others run
            waiting = status.state in _WAITING or (
                whole_array
                and any(
                    record.state in _WAITING
                    for record in records
                    if str(record.array_job_id) == job_id
                )
            )
            if not waiting:
                raise Conflict(
                    f"job {job_id} is {status.state.value}, not pending: only pending jobs "
                    "can be held",
                    reason="job-not-pending",
                )
        await self._scontrol("hold", ids)

    async def release(self, job_ids: Sequence[str]) -> None:
        """``scontrol release``; Slurm leaves jobs that are not held alone."""
        ids = self._check_ids(job_ids)
        if ids:
            await self._scontrol("release", ids)

    async def _scontrol(self, action: str, ids: Sequence[str]) -> None:
        result = await self._run(["scontrol", action, ",".join(ids)])
        if result.ok:
            return
        errors = _error_lines(result)
        message = _message(result)
        if action == "release" and errors and all(_FINISHED.search(e) for e in errors):
            return
        if any(_DENIED.search(e) for e in errors):
            raise PermissionDenied(message, log_message=f"scontrol {action}: {message}")
        if any(_NOT_PENDING.search(e) or _FINISHED.search(e) for e in errors):
            raise Conflict(message, reason="job-not-pending")
        if any(_INVALID_JOB_ID.search(e) for e in errors):
            raise NotFound(message, reason="job-not-found")
        raise self._fail(f"scontrol {action}", result)

    async def partitions(self) -> Sequence[Partition]:
        result = await self._run(["sinfo", "--noheader", f"--format={SINFO_PARTITION_FORMAT}"])
        if not result.ok:
            raise self._fail("sinfo", result)
        return parse_sinfo_partitions(result.stdout)

    async def nodes(self, *, partition: str | None = None) -> Sequence[Node]:
        argv = ["sinfo", "--Node", "--noheader", f"--format={SINFO_NODE_FORMAT}"]
        if partition is not None:
            if not partition.strip() or has_control_characters(partition):
                raise Invalid("partition must be one name", field="partition")
            argv.append(f"--partition={partition}")
        result = await self._run(argv)
        if not result.ok:
            raise self._fail("sinfo", result)
        return parse_sinfo_nodes(result.stdout)

    async def accounting(
        self,
        *,
        job_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        user: str | None = None,
    ) -> Sequence[AccountingRecord]:
        """``sacct`` for the given jobs, or those since ``since`` (of ``user``, else of all
        users the account may see). Times are given and read in UTC whatever the cluster's
        zone."""
        argv = [
            "env",
            "TZ=UTC",
            "SLURM_TIME_FORMAT=%s",
            "sacct",
            "--parsable2",
            "--noheader",
            f"--format={SACCT_ACCOUNTING_FIELDS}",
        ]
        if job_ids is not None:
            ids = self._check_ids(job_ids)
            if not ids:
                return []
            argv.append(f"--jobs={','.join(ids)}")
        if since is not None:
            moment = since.astimezone(UTC) if since.tzinfo else since
            argv.append(f"--starttime={moment.strftime('%Y-%m-%dT%H:%M:%S')}")
        if user is not None:
            if not user.strip() or has_control_characters(user) or "," in user:
                raise Invalid("user must be one name", field="user")
            argv.append(f"--user={user}")
        elif job_ids is None:
            argv.append("--allusers")
        result = await self._run(argv)
        if not result.ok:
            if ACCOUNTING_DISABLED.search(result.stderr + result.stdout):
                raise ProviderError(
                    "this Slurm cluster keeps no job accounting (sacct: accounting storage "
                    "is disabled)",
                    reason="accounting-disabled",
                    log_message=f"sacct on {self.runner.target}: {_message(result)}",
                )
            raise self._fail("sacct", result)
        return parse_sacct_accounting(result.stdout)

    async def elastic_config(self, cluster: ElasticClusterSpec) -> Sequence[ConfigFile]:
        """The ``slurm.conf`` fragment (and ``gres.conf`` with GPUs); runs nothing."""
        return elastic_files(
            cluster, config_dir=self.config.config_dir, cloud_dns=self.config.cloud_dns
        )

    async def elastic_bootstrap(
        self, cluster: ElasticClusterSpec, *, role: str, auth_key: str, node_command: str
    ) -> str:
        """Munge, ``slurm.conf`` and the Slurm daemons for a fresh host; runs nothing."""
        return bootstrap_script(
            cluster,
            role=role,
            auth_key=auth_key,
            node_command=node_command,
            config_dir=self.config.config_dir,
            cloud_dns=self.config.cloud_dns,
        )

    async def elastic_reconfigure(self, cluster: ElasticClusterSpec) -> str:
        """The elastic files written on the controller, then ``scontrol reconfigure`` (or a
        slurmctld restart when nodes or partitions changed)."""
        script = reconfigure_script(
            cluster, config_dir=self.config.config_dir, cloud_dns=self.config.cloud_dns
        )
        result = await self.runner.run(
            "/bin/sh -s", input=script, timeout=max(self.config.command_timeout_seconds, 120)
        )
        if not result.ok:
            raise self._fail("the reconfiguration", result)
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
