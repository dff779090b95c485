"""Jobs as ``squeue`` (text or JSON) and ``sacct`` print them, and the status of the ids Corral
asks about, job arrays included."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from corral_sdk.providers.scheduler import JobState, JobStatus
from corral_slurm.hostlist import expand_hostlist
from corral_slurm.states import aggregate_array_state, job_state, json_state_name
from corral_slurm.values import (
    json_number,
    parse_epoch,
    parse_exit_code,
    wait_status_exit_code,
)

__all__ = [
    "JOB_ID",
    "SACCT_STATUS_FIELDS",
    "SQUEUE_TEXT_FORMAT",
    "JobRecord",
    "array_task_count",
    "job_statuses",
    "parse_sacct_status",
    "parse_squeue",
    "parse_squeue_json",
    "parse_squeue_text",
    "queue_status",
]

JOB_ID = re.compile(r"^(\d+)(?:_(\d+))?$")
"""The ids Corral asks about: a job (``1234``, also an array's id) or one array task
(``1234_7``)."""

SQUEUE_TEXT_FORMAT = "%A|%F|%K|%T|%r|%u|%P|%N|%V|%S|%e|%j"
"""Job id, array job id, array task ids, state, reason, user, partition, nodes, submit, start
and end time, name: ``|``-separated, the name last so a ``|`` in it cannot shift the fields.
The same letters mean the same since Slurm 14; run with ``SLURM_TIME_FORMAT=%s`` so times
are epoch seconds, whatever the cluster's time zone."""

_SQUEUE_TEXT_FIELDS = SQUEUE_TEXT_FORMAT.count("|") + 1

SACCT_STATUS_FIELDS = (
    "JobID,JobIDRaw,State,ExitCode,Reason,User,Partition,NodeList,Submit,Start,End,JobName"
)
"""What ``sacct --parsable2`` prints for a job that left the queue; the name last, as above."""

_SACCT_STATUS_COUNT = SACCT_STATUS_FIELDS.count(",") + 1


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One line of ``squeue``/``sacct``: a job, one array task, or an array's pending tasks
    folded into one record (``tasks`` is then an expression such as ``2-9%2``)."""

    job_id: int
    """Slurm's unique id of this record (``%A``, ``JobIDRaw``)."""
    array_job_id: int | None
    """The array's id, or ``None`` for a job that is not part of an array."""
    tasks: str | None
    """The array task id (``3``) or the pending tasks (``2-9%2``), for arrays."""
    native_state: str
    reason: str = ""
    name: str = ""
    user: str = ""
    partition: str = ""
    nodes: tuple[str, ...] = ()
    exit_code: int | None = None
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def state(self) -> JobState:
        return job_state(self.native_state, self.reason)

    @property
    def display_id(self) -> str:
        """The id as ``squeue`` shows it: ``1234``, ``1234_7``, ``1234_[2-9%2]``."""
        if self.array_job_id is None or self.tasks is None:
            return str(self.job_id)
        if _SINGLE_TASK.match(self.tasks):
            return f"{self.array_job_id}_{self.tasks}"
        return f"{self.array_job_id}_[{self.tasks}]"

    def has_task(self, task: int) -> bool:
        return task in _task_ids(self.tasks or "")

    def task_count(self) -> int:
        return array_task_count(self.tasks) if self.array_job_id is not None else 1


_SINGLE_TASK = re.compile(r"^\d+$")
_MAX_TASKS = 4_000_001  # Slurm's MaxArraySize is at most 4000001


def _task_ids(expression: str) -> range | set[int]:
    """The task ids of ``2-9:2,12%4`` (step and throttle understood); empty when malformed."""
    text = expression.strip().strip("[]").partition("%")[0]
    ids: set[int] = set()
    for item in filter(None, text.split(",")):
        bounds, _, step_text = item.partition(":")
        low, dash, high = bounds.partition("-")
        try:
            start = int(low)
            stop = int(high) if dash else start
            step = int(step_text) if step_text else 1
        except ValueError:
            return set()
        if stop < start or step < 1 or stop - start > _MAX_TASKS:
            return set()
        if not ids and "," not in text:
            return range(start, stop + 1, step)
        ids.update(range(start, stop + 1, step))
    return ids


def array_task_count(expression: str | None) -> int:
    """How many tasks an expression names (1 when it cannot be read)."""
    return max(1, len(_task_ids(expression or "")))


def _clean(text: str) -> str:
    text = text.strip()
    return "" if text in ("(null)", "N/A", "None") else text


def _nodes(text: str) -> tuple[str, ...]:
    try:
        return expand_hostlist(text)
    except ValueError:
        return (text.strip(),) if text.strip() else ()


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


# --- squeue, text ---------------------------------------------------------------------------


def parse_squeue_text(stdout: str) -> list[JobRecord]:
    """Records from ``squeue --noheader --format=<SQUEUE_TEXT_FORMAT>``; lines that do not
    have the format's fields are skipped."""
    records: list[JobRecord] = []
    for line in stdout.splitlines():
        fields = line.split("|", _SQUEUE_TEXT_FIELDS - 1)
        if len(fields) != _SQUEUE_TEXT_FIELDS:
            continue
        job_id, array_id, tasks, state, reason, user, partition, nodes = fields[:8]
        submit, start, end, name = fields[8:]
        unique = _int(job_id)
        if unique is None:
            continue
        base = _int(array_id)
        task_text = _clean(tasks).strip("[]")
        is_array = bool(task_text) and base is not None
        records.append(
            JobRecord(
                job_id=unique,
                array_job_id=base if is_array else None,
                tasks=task_text if is_array else None,
                native_state=state.strip(),
                reason=_clean(reason),
                name=name,
                user=user.strip(),
                partition=partition.strip(),
                nodes=_nodes(nodes),
                exit_code=0 if job_state(state) is JobState.COMPLETED else None,
                submit_time=parse_epoch(submit),
                start_time=parse_epoch(start),
                end_time=parse_epoch(end),
            )
        )
    return records


# --- squeue, JSON ---------------------------------------------------------------------------


class _JsonJobs(msgspec.Struct):
    jobs: list[dict[str, Any]] = msgspec.field(default_factory=list)


def _json_exit_code(value: object) -> int | None:
    """22.05: a raw wait status; 23.02: the same as ``{"set", "number"}``; 23.11+:
    ``{"status": ["SIGNALED"], "return_code": {...}, "signal": {"id": {...}}}``."""
    if isinstance(value, dict) and "status" in value:
        status = [str(item).upper() for item in value.get("status") or []]
        if "PENDING" in status or "INVALID" in status:
            return None
        if "SIGNALED" in status:
            signal = value.get("signal")
            number = json_number(signal.get("id")) if isinstance(signal, dict) else None
            return 128 + number if number else None
        return json_number(value.get("return_code"))
    return wait_status_exit_code(json_number(value))


def _json_record(job: Mapping[str, Any]) -> JobRecord | None:
    unique = json_number(job.get("job_id"))
    if unique is None:
        return None
    base = json_number(job.get("array_job_id"))
    task = json_number(job.get("array_task_id"))
    pending_tasks = str(job.get("array_task_string") or "")
    is_array = bool(base)
    tasks = (pending_tasks or (str(task) if task is not None else None)) if is_array else None
    native = json_state_name(job.get("job_state"))
    state = job_state(native)
    return JobRecord(
        job_id=unique,
        array_job_id=base if is_array else None,
        tasks=tasks,
        native_state=native,
        reason=_clean(str(job.get("state_reason") or "")),
        name=str(job.get("name") or ""),
        user=str(job.get("user_name") or ""),
        partition=str(job.get("partition") or ""),
        nodes=_nodes(str(job.get("nodes") or "")),
        exit_code=_json_exit_code(job.get("exit_code")) if state.terminal else None,
        submit_time=parse_epoch(job.get("submit_time")),
        start_time=parse_epoch(job.get("start_time")),
        end_time=parse_epoch(job.get("end_time")),
    )


def parse_squeue_json(stdout: str) -> list[JobRecord]:
    """Records from ``squeue --json``, whichever of its shapes (Slurm 21.08 to 25.x).

    Raises ``ValueError`` when the output is not JSON.
    """
    try:
        document = msgspec.json.decode(stdout.strip(), type=_JsonJobs)
    except msgspec.DecodeError as exc:
        raise ValueError(f"squeue --json printed something else than JSON: {exc}") from None
    records = (_json_record(job) for job in document.jobs if isinstance(job, dict))
    return [record for record in records if record is not None]


def parse_squeue(stdout: str) -> list[JobRecord]:
    """Records from either ``squeue`` output: a JSON document starts with ``{``."""
    if stdout.lstrip().startswith("{"):
        return parse_squeue_json(stdout)
    return parse_squeue_text(stdout)


# --- sacct ----------------------------------------------------------------------------------

_SACCT_ID = re.compile(r"^(\d+)(?:_(\[?[\d,\-:%]+\]?))?$")


def parse_sacct_status(stdout: str) -> list[JobRecord]:
    """Records from ``sacct --parsable2 --noheader --allocations
    --format=<SACCT_STATUS_FIELDS>``; steps and heterogeneous components are skipped."""
    records: list[JobRecord] = []
    for line in stdout.splitlines():
        fields = line.split("|", _SACCT_STATUS_COUNT - 1)
        if len(fields) != _SACCT_STATUS_COUNT:
            continue
        job_id, raw_id, state, exit_code, reason, user, partition, nodes = fields[:8]
        submit, start, end, name = fields[8:]
        match = _SACCT_ID.match(job_id.strip())
        unique = _int(raw_id.split(".")[0])
        if match is None or unique is None:
            continue
        tasks = match.group(2)
        records.append(
            JobRecord(
                job_id=unique,
                array_job_id=int(match.group(1)) if tasks else None,
                tasks=tasks.strip("[]") if tasks else None,
                native_state=state.strip(),
                reason=_clean(reason),
                name=name,
                user=user.strip(),
                partition=partition.strip(),
                nodes=_nodes(nodes),
                exit_code=parse_exit_code(exit_code) if job_state(state).terminal else None,
                submit_time=parse_epoch(submit),
                start_time=parse_epoch(start),
                end_time=parse_epoch(end),
            )
        )
    return records


# --- from records to statuses ---------------------------------------------------------------


def _single_status(job_id: str, record: JobRecord, task: str | None = None) -> JobStatus:
    state = record.state
    running_or_done = state not in (JobState.PENDING, JobState.HELD)
    return JobStatus(
        job_id=job_id,
        state=state,
        native_state=record.native_state,
        reason=record.reason,
        name=record.name,
        user=record.user,
        partition=record.partition,
        nodes=record.nodes if running_or_done else (),
        exit_code=record.exit_code if state.terminal else None,
        submit_time=record.submit_time,
        start_time=record.start_time if running_or_done else None,
        end_time=record.end_time if state.terminal else None,
        array_job_id=str(record.array_job_id) if record.array_job_id is not None else None,
        array_task_id=task if task is not None else record.tasks,
    )


def _array_status(job_id: str, records: Sequence[JobRecord]) -> JobStatus:
    """One status for the array ``job_id`` from its task records (see
    :func:`~corral_slurm.states.aggregate_array_state` for the rule)."""
    state = aggregate_array_state(record.state for record in records)
    counts: dict[str, int] = {}
    for record in records:
        name = record.native_state.split()[0] if record.native_state.strip() else "?"
        counts[name] = counts.get(name, 0) + record.task_count()
    deciding = next((r for r in records if r.state is state), records[0])
    nodes = sorted({node for record in records for node in record.nodes})
    exit_codes = [r.exit_code for r in records if r.exit_code is not None and r.state.terminal]
    submits = [r.submit_time for r in records if r.submit_time is not None]
    starts = [
        r.start_time
        for r in records
        if r.start_time is not None and r.state not in (JobState.PENDING, JobState.HELD)
    ]
    ends = [r.end_time for r in records if r.end_time is not None]
    return JobStatus(
        job_id=job_id,
        state=state,
        native_state=",".join(f"{name}={count}" for name, count in sorted(counts.items())),
        reason=deciding.reason,
        name=deciding.name,
        user=deciding.user,
        partition=deciding.partition,
        nodes=tuple(nodes),
        exit_code=max(exit_codes) if state.terminal and exit_codes else None,
        submit_time=min(submits) if submits else None,
        start_time=min(starts) if starts else None,
        end_time=max(ends) if state.terminal and ends else None,
        array_job_id=job_id,
        array_task_id=None,
    )


def _select(job_id: str, records: Sequence[JobRecord]) -> JobStatus | None:
    """The status of ``job_id`` among ``records``, or ``None`` when they do not hold it."""
    match = JOB_ID.match(job_id)
    if match is None:
        return None
    number = int(match.group(1))
    if match.group(2) is not None:
        task = int(match.group(2))
        for record in records:
            if record.array_job_id == number and record.has_task(task):
                return _single_status(job_id, record, task=str(task))
        return None
    tasks = [record for record in records if record.array_job_id == number]
    if tasks:
        return _array_status(job_id, tasks)
    for record in records:
        if record.job_id == number:
            return _single_status(job_id, record)
    return None


def job_statuses(job_ids: Iterable[str], records: Sequence[JobRecord]) -> dict[str, JobStatus]:
    """The statuses of the ``job_ids`` that ``records`` hold (the others are left out)."""
    found: dict[str, JobStatus] = {}
    for job_id in job_ids:
        status = _select(job_id, records)
        if status is not None:
            found[job_id] = status
    return found


def queue_status(record: JobRecord) -> JobStatus:
    """A queue entry: one record, an array task or an array's folded pending tasks."""
    return _single_status(record.display_id, record)
