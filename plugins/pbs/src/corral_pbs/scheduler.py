"""The PBS Professional / OpenPBS scheduler: qsub, qstat, qdel, qhold, qrls and pbsnodes over
the cluster's :class:`~corral_sdk.transport.CommandRunner`.

Every query asks for ``-F json`` (PBS Professional 18 and later, OpenPBS 20 and later) and
runs with ``TZ=UTC0`` so the times qstat prints are UTC. See the README for the state mapping
and what each method runs.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from corral_pbs.config import PBSConfig
from corral_pbs.parse import (
    array_parts,
    as_bool,
    as_int,
    as_text,
    decode_json,
    exec_hosts,
    job_state,
    node_state,
    owner_name,
    parse_duration,
    parse_size_mb,
    parse_time,
)
from corral_pbs.submit import (
    WRITE_FAILED,
    job_script,
    qsub_options,
    shell_path,
    write_script_command,
)
from corral_sdk.errors import Conflict, NotFound, ProviderError
from corral_sdk.providers.scheduler import (
    AccountingRecord,
    JobSpec,
    JobState,
    JobStatus,
    Node,
    NodeState,
    Partition,
    SchedulerBase,
    SubmittedJob,
)
from corral_sdk.transport import CommandResult, CommandRunner

__all__ = ["PBS"]

_JOB_ID = re.compile(r"^\d+(?:\[\d*\])?(?:\.\S+)?$")
_NO_HISTORY = "not configured to maintain job history"
# Per-job lines qstat/qdel/qrls print for jobs that are gone or finished (pbs_messages.c)
_GONE = ("Unknown Job Id", "Job has finished", "illegally formed job identifier")
_SUBJOB_FINISHED = "Request invalid for finished array subjob"
_BAD_STATE = "Request invalid for state of job"
_NO_NODES = "Server has no node list"
_FINISHED_STATES = frozenset({"F", "X", "M"})


class PBS(SchedulerBase):
    """A PBS server reached through ``runner``; ``config`` may be ``None`` for the defaults."""

    def __init__(self, runner: CommandRunner, config: PBSConfig | None = None) -> None:
        self.runner = runner
        self.config = config if config is not None else PBSConfig()

    # --- commands ------------------------------------------------------------------------------

    def _command(self, program: str, *words: str, utc: bool = False) -> str:
        """A command line: the configured prefix, ``TZ=UTC0`` for qstat's times, the program
        (from ``bin_dir``) and its already-quoted words."""
        path = program
        if self.config.bin_dir:
            path = shlex.quote(f"{self.config.bin_dir.rstrip('/')}/{program}")
        parts = [self.config.command_prefix] if self.config.command_prefix else []
        if utc:
            parts.append("TZ=UTC0")
        parts.append(path)
        parts.extend(words)
        return " ".join(parts)

    async def _run(self, command: str) -> CommandResult:
        return await self.runner.run(command, timeout=self.config.command_timeout)

    @staticmethod
    def _failure(result: CommandResult, what: str, **kwargs: Any) -> ProviderError:
        message = (
            result.stderr.strip() or result.stdout.strip() or f"exit status {result.exit_status}"
        )
        return ProviderError(
            message,
            log_message=f"{what}: {result.command!r} exited {result.exit_status}: {message}",
            **kwargs,
        )

    # --- submit ----------------------------------------------------------------------------------

    async def submit(self, job: JobSpec) -> SubmittedJob:
        """One command, so one round trip: it writes the script (its standard input) to
        ``<script_dir>/corral-<random>.pbs``, runs qsub on it and removes it, whatever qsub
        said, leaving qsub's output and exit status as the command's."""
        options = qsub_options(job, self.config)
        script = job_script(job)
        path = f"{self.config.script_dir.rstrip('/')}/corral-{secrets.token_hex(6)}.pbs"
        script_word = shell_path(path)
        qsub = self._command("qsub", *options, script_word)
        if job.working_directory is not None:
            # relative -o/-e paths and PBS_O_WORKDIR are those of qsub's directory
            qsub = f"cd -- {shell_path(job.working_directory)} && {qsub}"
        command = (
            f"{write_script_command(path)} && {qsub}; qsub_status=$?; "
            f"rm -f -- {script_word}; exit $qsub_status"
        )
        result = await self.runner.run(command, input=script, timeout=self.config.command_timeout)
        lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        # an id on stdout means the job exists, whatever the clean-up's exit status: raising
        # then would invite a second submission
        if lines and _JOB_ID.match(lines[-1]):
            return SubmittedJob(job_id=lines[-1], message=result.stdout.strip())
        errors = [line.strip() for line in result.stderr.splitlines()]
        if not result.ok and WRITE_FAILED in errors:
            # qsub did not run: what remains is what mkdir, the shell or chmod said
            said = "; ".join(line for line in errors if line and line != WRITE_FAILED)
            raise ProviderError(
                f"cannot write the job script {path} on {self.runner.target}"
                + (f": {said}" if said else ""),
                reason="write-failed",
                log_message=f"writing {path} on {self.runner.target} failed: {said}",
            )
        if not result.ok or not lines:
            raise self._failure(result, "qsub", reason="submit-rejected")
        raise ProviderError(
            f"qsub printed {lines[-1]!r}, not a job id",
            reason="unreadable-output",
            log_message=f"{command!r} printed {result.stdout!r}",
        )

    # --- status and queue -------------------------------------------------------------------------

    async def status(self, job_ids: Sequence[str]) -> Mapping[str, JobStatus]:
        asked = list(dict.fromkeys(job_ids))
        if not asked:
            return {}
        jobs = await self._stat_jobs(asked, history=self.config.job_history is not False)
        statuses: dict[str, JobStatus] = {}
        for job_id in job_ids:
            key = _match(job_id, jobs)
            if key is None:
                statuses[job_id] = JobStatus(
                    job_id=job_id,
                    state=JobState.UNKNOWN,
                    reason="PBS does not know this job (finished jobs leave qstat unless the "
                    "server keeps job history)",
                )
            else:
                statuses[job_id] = _job_status(job_id, jobs[key])
        return statuses

    async def queue(
        self, *, user: str | None = None, partition: str | None = None
    ) -> Sequence[JobStatus]:
        # a queue operand narrows qstat; -u would not: it cannot be combined with -F json
        words = ["-f", "-F", "json"]
        if partition is not None:
            words.append(shlex.quote(partition))
        command = self._command("qstat", *words, utc=True)
        result = await self._run(command)
        if not result.ok and not (partition is not None and "Unknown queue" in result.stderr):
            raise self._failure(result, "qstat")
        jobs = _jobs(decode_json(result.stdout, command)) if result.stdout.strip() else {}
        statuses = []
        for job_id, attributes in jobs.items():
            if as_text(attributes.get("job_state")).upper() in _FINISHED_STATES:
                continue
            if user is not None and owner_name(attributes.get("Job_Owner")) != user:
                continue
            if partition is not None and as_text(attributes.get("queue")) != partition:
                continue
            statuses.append(_job_status(job_id, attributes))
        return statuses

    async def _stat_jobs(self, job_ids: Sequence[str], *, history: bool) -> dict[str, Any]:
        """``qstat -f -F json [-x] ids`` in one command; jobs PBS does not know are missing from
        the result. Without job history on the server, ``-x`` fails for every id: then once
        more without it."""
        words = ["-f", "-F", "json", *(["-x"] if history else []), *map(shlex.quote, job_ids)]
        command = self._command("qstat", *words, utc=True)
        result = await self._run(command)
        problems = _problems(result.stderr, benign=_GONE)
        if history and any(_NO_HISTORY in line for line in problems):
            return await self._stat_jobs(job_ids, history=False)
        if problems or (not result.ok and not result.stderr.strip()):
            raise self._failure(result, "qstat", retryable=True)
        if not result.stdout.strip():
            return {}
        return _jobs(decode_json(result.stdout, command))

    # --- cancel, hold, release -----------------------------------------------------------------

    async def cancel(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        ids = list(dict.fromkeys(job_ids))
        result = await self._run(self._command("qdel", *map(shlex.quote, ids)))
        # gone, finished or already exiting (qdel refuses a job in state E): nothing to cancel
        problems = _problems(result.stderr, benign=(*_GONE, _SUBJOB_FINISHED, _BAD_STATE))
        if problems or (not result.ok and not result.stderr.strip()):
            raise self._failure(result, "qdel")

    async def hold(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        ids = list(dict.fromkeys(job_ids))
        # qhold accepts a running job (it only marks it, or checkpoints it where MOM can), so
        # the state is checked first to refuse it as the contract says
        statuses = await self.status(ids)
        unknown = [job_id for job_id in ids if statuses[job_id].state is JobState.UNKNOWN]
        if unknown:
            raise NotFound(f"PBS does not know job {', '.join(unknown)}")
        started = [
            f"{job_id} ({statuses[job_id].state.value})"
            for job_id in ids
            if statuses[job_id].state not in (JobState.PENDING, JobState.HELD)
        ]
        if started:
            raise Conflict(
                f"only pending jobs can be held; not {', '.join(started)}", reason="job-started"
            )
        result = await self._run(self._command("qhold", *map(shlex.quote, ids)))
        self._check_hold_release(result, "qhold", benign=())

    async def release(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        ids = list(dict.fromkeys(job_ids))
        result = await self._run(self._command("qrls", *map(shlex.quote, ids)))
        # a finished job has nothing to release: left alone, like a job that is not held
        self._check_hold_release(result, "qrls", benign=("Job has finished", _SUBJOB_FINISHED))

    def _check_hold_release(
        self, result: CommandResult, what: str, benign: tuple[str, ...]
    ) -> None:
        problems = _problems(result.stderr, benign=benign)
        if not problems and (result.ok or result.stderr.strip()):
            return
        text = "\n".join(problems) or result.stderr.strip()
        if _BAD_STATE in text or "Job has finished" in text:
            raise Conflict(text, reason="job-started", log_message=f"{result.command!r}: {text}")
        if "Unknown Job Id" in text or "illegally formed job identifier" in text:
            raise NotFound(text, log_message=f"{result.command!r}: {text}")
        raise self._failure(result, what)

    # --- partitions and nodes --------------------------------------------------------------------

    async def partitions(self) -> Sequence[Partition]:
        queues = await self._queues()
        default_queue = await self._default_queue()
        nodes = await self._nodes()
        members = _queue_members(queues, nodes)
        partitions = []
        for name, attributes in queues.items():
            names = members.get(name, [])
            states = [node_state(nodes[node])[0] for node in names]
            limits = attributes.get("resources_max") or {}
            walltime = parse_duration(limits.get("walltime"))
            partitions.append(
                Partition(
                    name=name,
                    default=name == default_queue,
                    available=as_bool(attributes.get("enabled"))
                    and as_bool(attributes.get("started")),
                    nodes_total=len(names),
                    nodes_idle=sum(state is NodeState.IDLE for state in states),
                    cpus_total=sum(_available(nodes[node], "ncpus") for node in names),
                    gpus_total=sum(_available(nodes[node], "ngpus") for node in names),
                    max_time_seconds=int(walltime) if walltime is not None else None,
                    max_nodes=as_int(limits.get("nodect")),
                )
            )
        return partitions

    async def nodes(self, *, partition: str | None = None) -> Sequence[Node]:
        nodes = await self._nodes()
        queues = await self._queues()
        members = _queue_members(queues, nodes)
        queues_of: dict[str, list[str]] = {}
        for queue, names in members.items():
            for name in names:
                queues_of.setdefault(name, []).append(queue)
        result = []
        for name, attributes in nodes.items():
            tied = as_text(attributes.get("queue"))
            of = tuple(queues_of.get(name, ()))
            if tied and tied not in of:
                of = (tied, *of)  # its own queue attribute, even when qstat -Q does not show it
            if partition is not None and partition not in of:
                continue
            state, power = node_state(attributes)
            available = attributes.get("resources_available") or {}
            assigned = attributes.get("resources_assigned") or {}
            memory = parse_size_mb(available.get("mem"))
            result.append(
                Node(
                    name=name,
                    state=state,
                    native_state=as_text(attributes.get("state")),
                    power=power,
                    partitions=of,
                    cpus=_available(attributes, "ncpus"),
                    cpus_allocated=as_int(assigned.get("ncpus")) or 0,
                    memory_mb=int(memory) if memory is not None else 0,
                    gpus=_available(attributes, "ngpus"),
                    features=_features(available),
                    reason=as_text(attributes.get("comment")),
                )
            )
        return result

    async def _queues(self) -> dict[str, Any]:
        command = self._command("qstat", "-Q", "-f", "-F", "json")
        result = await self._run(command)
        if not result.ok:
            raise self._failure(result, "qstat -Q", retryable=True)
        queues = decode_json(result.stdout, command).get("Queue") or {}
        return {str(name): value for name, value in queues.items() if isinstance(value, dict)}

    async def _default_queue(self) -> str | None:
        command = self._command("qstat", "-B", "-f", "-F", "json")
        result = await self._run(command)
        if not result.ok:
            raise self._failure(result, "qstat -B", retryable=True)
        for server in (decode_json(result.stdout, command).get("Server") or {}).values():
            if isinstance(server, dict) and server.get("default_queue"):
                return as_text(server["default_queue"])
        return None

    async def _nodes(self) -> dict[str, Any]:
        command = self._command("pbsnodes", "-a", "-F", "json")
        result = await self._run(command)
        if not result.ok:
            if _NO_NODES in result.stderr:
                return {}
            raise self._failure(result, "pbsnodes", retryable=True)
        nodes = decode_json(result.stdout, command).get("nodes") or {}
        return {str(name): value for name, value in nodes.items() if isinstance(value, dict)}

    # --- accounting ----------------------------------------------------------------------------

    async def accounting(
        self,
        *,
        job_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        user: str | None = None,
    ) -> Sequence[AccountingRecord]:
        """Jobs from the server's job history (``qstat -x``). PBS keeps finished jobs only
        with ``job_history_enable`` set, for ``job_history_duration`` (two weeks by default);
        without it the server answers "not configured to maintain job history"."""
        if self.config.job_history is False:
            raise _accounting_disabled()
        if job_ids is not None and not job_ids:
            return []
        ids = list(dict.fromkeys(job_ids or ()))
        command = self._command("qstat", "-f", "-F", "json", "-x", *map(shlex.quote, ids), utc=True)
        result = await self._run(command)
        problems = _problems(result.stderr, benign=_GONE)
        if any(_NO_HISTORY in line for line in problems):
            raise _accounting_disabled()
        if problems or (not result.ok and not result.stderr.strip()):
            raise self._failure(result, "qstat -x", retryable=True)
        jobs = _jobs(decode_json(result.stdout, command)) if result.stdout.strip() else {}
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        records = []
        for job_id, attributes in jobs.items():
            record = _accounting_record(job_id, attributes)
            if user is not None and record.user != user:
                continue
            if since is not None and (record.submit_time is None or record.submit_time < since):
                continue
            records.append(record)
        return records


# --- reading jobs -----------------------------------------------------------------------------


def _accounting_disabled() -> ProviderError:
    return ProviderError(
        "this PBS server keeps no job history (job_history_enable is not set), so finished "
        "jobs cannot be looked up",
        reason="accounting-disabled",
    )


def _problems(stderr: str, *, benign: Iterable[str]) -> list[str]:
    """The lines of ``stderr`` that are not about a job being gone (those only say what the
    JSON already shows by leaving the job out)."""
    markers = tuple(benign)
    return [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and not any(marker in line for marker in markers)
    ]


def _jobs(document: Mapping[str, Any]) -> dict[str, Any]:
    jobs = document.get("Jobs") or {}
    return {str(key): value for key, value in jobs.items() if isinstance(value, dict)}


def _match(job_id: str, jobs: Mapping[str, Any]) -> str | None:
    """The key of ``job_id`` in qstat's ``Jobs``: the same id, or the same sequence number
    with the server name given in full on one side and shortened (or left out) on the other."""
    if job_id in jobs:
        return job_id
    sequence, _, server = job_id.partition(".")
    for key in jobs:
        key_sequence, _, key_server = key.partition(".")
        if key_sequence != sequence:
            continue
        if (
            not server
            or not key_server
            or key_server.startswith(server + ".")
            or server.startswith(key_server + ".")
        ):
            return key
    return None


def _job_status(job_id: str, attributes: Mapping[str, Any]) -> JobStatus:
    state, fallback_reason = job_state(attributes)
    terminal = state.terminal
    end = parse_time(attributes.get("obittime")) if terminal else None
    if terminal and end is None:
        end = parse_time(attributes.get("mtime"))
    array = array_parts(job_id)
    array_job_id = array[0] if array else None
    array_task_id = None
    if array is not None:
        array_task_id = array[1] or as_text(attributes.get("array_indices_submitted")) or None
    return JobStatus(
        job_id=job_id,
        state=state,
        native_state=as_text(attributes.get("job_state")),
        reason=as_text(attributes.get("comment")) or fallback_reason,
        name=as_text(attributes.get("Job_Name")),
        user=owner_name(attributes.get("Job_Owner")) or as_text(attributes.get("euser")),
        partition=as_text(attributes.get("queue")),
        nodes=exec_hosts(attributes.get("exec_host")),
        exit_code=as_int(attributes.get("Exit_status")),
        submit_time=parse_time(attributes.get("ctime")) or parse_time(attributes.get("qtime")),
        start_time=parse_time(attributes.get("stime")),
        end_time=end,
        array_job_id=array_job_id,
        array_task_id=array_task_id,
    )


def _accounting_record(job_id: str, attributes: Mapping[str, Any]) -> AccountingRecord:
    status = _job_status(job_id, attributes)
    requested = attributes.get("Resource_List") or {}
    used = attributes.get("resources_used") or {}
    walltime = parse_duration(used.get("walltime"))
    if walltime is None and status.start_time and status.end_time:
        walltime = (status.end_time - status.start_time).total_seconds()
    return AccountingRecord(
        job_id=job_id,
        state=status.state,
        native_state=status.native_state,
        name=status.name,
        user=status.user,
        account=as_text(attributes.get("Account_Name")),
        partition=status.partition,
        exit_code=status.exit_code,
        submit_time=status.submit_time,
        start_time=status.start_time,
        end_time=status.end_time,
        elapsed_seconds=int(walltime) if walltime is not None else None,
        nodes=as_int(requested.get("nodect")) or len(status.nodes),
        cpus=as_int(requested.get("ncpus")) or as_int(used.get("ncpus")) or 0,
        gpus=as_int(requested.get("ngpus")) or 0,
        cpu_seconds=parse_duration(used.get("cput")),
        max_rss_mb=parse_size_mb(used.get("mem")),
    )


# --- queues and nodes -------------------------------------------------------------------------

# PBS names a reservation's queue after it: R (advance), S (standing), M (maintenance)
_RESERVATION_QUEUE = re.compile(r"^[RSM]\d+$")
_STANDARD_RESOURCES = frozenset(
    {"arch", "host", "vnode", "mem", "vmem", "ncpus", "ngpus", "nmics", "naccelerators"}
)


def _available(node: Mapping[str, Any], resource: str) -> int:
    return as_int((node.get("resources_available") or {}).get(resource)) or 0


def _features(available: Mapping[str, Any]) -> tuple[str, ...]:
    """Custom boolean resources a vnode has (``debug``, ``ss11`` at ALCF): what Slurm calls
    features."""
    return tuple(
        name
        for name, value in available.items()
        if name not in _STANDARD_RESOURCES and as_text(value) == "True"
    )


def _queue_members(queues: Mapping[str, Any], nodes: Mapping[str, Any]) -> dict[str, list[str]]:
    """The vnodes each queue's jobs may run on, as the server decides it: vnodes whose
    ``queue`` attribute names the queue when there are any; else the vnodes not tied to a queue
    whose ``resources_available`` satisfy the queue's ``default_chunk`` strings and booleans
    (the usual ``Qlist`` convention); a reservation's queue (``R123``) the vnodes reserved for it;
    a routing queue its destinations' vnodes."""
    members: dict[str, list[str]] = {}
    for name, queue in queues.items():
        if as_text(queue.get("queue_type")).lower().startswith("e"):
            members[name] = _execution_members(name, queue, nodes)
    for name, queue in queues.items():
        if as_text(queue.get("queue_type")).lower().startswith("r"):
            members[name] = _route_members(name, queues, members, set())
    return members


def _execution_members(name: str, queue: Mapping[str, Any], nodes: Mapping[str, Any]) -> list[str]:
    if _RESERVATION_QUEUE.match(name):
        # a reservation's queue runs on the vnodes reserved for it (their resv attribute)
        return [node for node, attrs in nodes.items() if name in _reservations(attrs)]
    tied = [node for node, attrs in nodes.items() if as_text(attrs.get("queue")) == name]
    if tied:
        return tied
    chunk = queue.get("default_chunk") or {}
    return [
        node
        for node, attrs in nodes.items()
        if not as_text(attrs.get("queue")) and _satisfies(attrs, chunk)
    ]


def _reservations(node: Mapping[str, Any]) -> set[str]:
    """The reservations holding a vnode (``resv``: ``M1150389.polaris-pbs-01...``), by name."""
    return {r.strip().split(".", 1)[0] for r in as_text(node.get("resv")).split(",") if r.strip()}


def _satisfies(node: Mapping[str, Any], chunk: Mapping[str, Any]) -> bool:
    available = node.get("resources_available") or {}
    for resource, wanted in chunk.items():
        if not isinstance(wanted, str) or parse_size_mb(wanted) is not None:
            continue  # numbers and sizes (ncpus=36, mem=235gb) are requests, not restrictions
        have = available.get(resource)
        if wanted in ("True", "False"):
            if as_text(have) != wanted and not (wanted == "False" and have is None):
                return False
        elif have is None or wanted not in [v.strip() for v in as_text(have).split(",")]:
            return False
    return True


def _route_members(
    name: str, queues: Mapping[str, Any], members: Mapping[str, list[str]], seen: set[str]
) -> list[str]:
    seen.add(name)
    result: list[str] = []
    for raw in as_text(queues[name].get("route_destinations")).split(","):
        destination = raw.strip()
        if not destination or destination in seen or destination not in queues:
            continue  # another server's queue (queue@server), or a loop
        if as_text(queues[destination].get("queue_type")).lower().startswith("r"):
            found = _route_members(destination, queues, members, seen)
        else:
            found = members.get(destination, [])
        result.extend(node for node in found if node not in result)
    return result
