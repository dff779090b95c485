"""Reading what PBS prints: ``-F json`` documents, times, sizes, durations, ``exec_host`` and
the job and node states.

Conventions come from OpenPBS's sources (``src/include/job.h`` for states, substates and
``JOB_EXEC_*`` exit codes; ``src/cmds/qstat.c`` for the JSON document) and from real output
kept in ``tests/transcripts``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from corral_sdk.errors import ProviderError
from corral_sdk.providers.scheduler import JobState, NodeState, PowerState

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_HPMEM",
    "EXIT_MEM",
    "EXIT_MS_FAIL",
    "EXIT_VMEM",
    "EXIT_WALLTIME",
    "SUBSTATE_DEPENDENCY_HOLD",
    "SUBSTATE_FAILED",
    "SUBSTATE_FINISHED",
    "SUBSTATE_TERMINATED",
    "array_parts",
    "as_bool",
    "as_int",
    "as_text",
    "decode_json",
    "exec_hosts",
    "job_state",
    "node_state",
    "owner_name",
    "parse_duration",
    "parse_size_mb",
    "parse_time",
]

# OpenPBS src/include/job.h: substates of finished (history) jobs
SUBSTATE_DEPENDENCY_HOLD = 22
SUBSTATE_TERMINATED = 91
SUBSTATE_FINISHED = 92
SUBSTATE_FAILED = 93

# JOB_EXEC_* codes (negative: PBS ended the job) and 256 + signal for a killed job
EXIT_MS_FAIL = -20
EXIT_VMEM = -26
EXIT_MEM = -27
EXIT_WALLTIME = -29
EXIT_HPMEM = -31
EXIT_CANCELLED = 256 + 15  # qdel sends SIGTERM

_ACTIVE_STATES: Mapping[str, JobState] = {
    "Q": JobState.PENDING,
    "W": JobState.PENDING,  # waiting for its execution time (-a) or a stage-in
    "T": JobState.PENDING,  # in transit between servers
    "H": JobState.HELD,
    "R": JobState.RUNNING,
    "B": JobState.RUNNING,  # an array with subjobs begun
    "E": JobState.COMPLETING,
    "S": JobState.SUSPENDED,
    "U": JobState.SUSPENDED,  # suspended while its workstation is busy
}

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_CTIME = re.compile(r"^\w{3} (\w{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kmgtp]?)(b|w)?$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_ARRAY_ID = re.compile(r"^(\d+)\[(\d*)\](.*)$")
# Repairs for invalid JSON older PBS releases print (openpbs/openpbs#1255, #2049)
_BAD_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_LEADING_ZERO = re.compile(r"(?<=[:\[,])(\s*)(-?0\d+(?:\.\d+)?)(?=\s*[,}\]\n])")


def decode_json(text: str, command: str) -> dict[str, Any]:
    """The document a ``-F json`` command printed. Values PBS printed as bare numbers that
    are not JSON (``"foo":005``) and escapes JSON does not know (``\\,``, ``\\'``) are
    repaired before giving up."""
    for attempt in (text, _repair(text)):
        try:
            document = msgspec.json.decode(attempt)
        except msgspec.DecodeError:
            continue
        if isinstance(document, dict):
            return document
        break
    raise ProviderError(
        f"`{command}` did not print a JSON document PBS's way; PBS releases before 2020 "
        "print invalid JSON for some job environment values",
        reason="unreadable-output",
        log_message=f"{command!r} printed {text[:500]!r}",
    )


def _repair(text: str) -> str:
    text = _BAD_ESCAPE.sub(lambda m: m.group(0) if m.group(1) in '"\\/bfnrtu' else m.group(1), text)
    return _LEADING_ZERO.sub(r'\1"\2"', text)


def as_text(value: Any) -> str:
    """An attribute as text: PBS prints numeric-looking values as JSON numbers, so a job named
    ``2024`` arrives as an int."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def as_bool(value: Any) -> bool:
    return as_text(value).strip().lower() in ("true", "t", "1", "y", "yes")


def parse_time(value: Any) -> datetime | None:
    """A time as qstat prints it (``ctime(3)``: ``Thu May  8 08:42:45 2025``). Corral runs
    qstat with ``TZ=UTC0``, so the result is UTC."""
    match = _CTIME.match(as_text(value).strip())
    if match is None:
        return None
    month = _MONTHS.get(match[1])
    if month is None:
        return None
    try:
        return datetime(
            int(match[6]),
            month,
            int(match[2]),
            int(match[3]),
            int(match[4]),
            int(match[5]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def parse_duration(value: Any) -> float | None:
    """Seconds of ``walltime``/``cput`` (``06:00:00``, ``00:13:24``, or plain seconds)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    parts = as_text(value).strip().split(":")
    if not 1 <= len(parts) <= 3:
        return None
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        return None
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


def parse_size_mb(value: Any) -> float | None:
    """Megabytes of a PBS size (``527672488kb``, ``235gb``, ``512mb``, ``0gb``; words are
    8 bytes; a bare number is bytes)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) / 1024**2
    match = _SIZE.match(as_text(value).strip())
    if match is None:
        return None
    number, scale, unit = match.groups()
    size = float(number) * _SIZE_FACTORS[scale.lower()]
    if (unit or "b").lower() == "w":
        size *= 8
    return size / 1024**2


def exec_hosts(value: Any) -> tuple[str, ...]:
    """The hosts of ``exec_host`` (``node1/0*2+node2/0*2``), in order, each once."""
    hosts: list[str] = []
    for part in as_text(value).split("+"):
        host = part.strip().split("/", 1)[0].strip()
        if host and host not in hosts:
            hosts.append(host)
    return tuple(hosts)


def owner_name(value: Any) -> str:
    """The user of ``Job_Owner`` (``amalbavera@aurora-uan-0011...`` is ``amalbavera``)."""
    return as_text(value).split("@", 1)[0].strip()


def array_parts(job_id: str) -> tuple[str, str] | None:
    """``(array id, index)`` of an array or subjob id: ``1234[3].srv`` is
    ``("1234[].srv", "3")``, ``1234[].srv`` is ``("1234[].srv", "")``; ``None`` otherwise."""
    match = _ARRAY_ID.match(job_id)
    if match is None:
        return None
    return f"{match[1]}[]{match[3]}", match[2]


def job_state(attributes: Mapping[str, Any]) -> tuple[JobState, str]:
    """Corral's state of a job from its ``job_state``, ``substate`` and ``Exit_status``, and a
    reason to show when PBS's ``comment`` says nothing.

    Finished jobs (``F``; ``X`` for expired subjobs) follow PBS's own substates: 91 is a job
    deleted with qdel, 93 one that failed. The exit status decides the rest: 0 is completed,
    ``JOB_EXEC_KILL_WALLTIME`` (-29) a timeout, the memory kills (-26, -27, -31) out of memory,
    ``256 + SIGTERM`` (271, what qdel leaves) cancelled, anything else failed.
    """
    letter = as_text(attributes.get("job_state")).strip().upper()
    substate = as_int(attributes.get("substate"))
    if letter in ("F", "X"):
        return _finished_state(substate, as_int(attributes.get("Exit_status")))
    if letter == "H" and substate == SUBSTATE_DEPENDENCY_HOLD:
        return JobState.PENDING, "waiting for the jobs it depends on"
    if letter == "M":
        return JobState.UNKNOWN, "moved to another PBS server"
    state = _ACTIVE_STATES.get(letter)
    if state is None:
        return JobState.UNKNOWN, f"PBS state {letter or '?'} has no mapping"
    return state, ""


def _finished_state(substate: int | None, exit_status: int | None) -> tuple[JobState, str]:
    if substate == SUBSTATE_TERMINATED:
        return JobState.CANCELLED, "deleted"
    if exit_status is None:
        if substate == SUBSTATE_FAILED:
            return JobState.FAILED, "failed"
        return JobState.COMPLETED, ""
    if exit_status == 0:
        return JobState.COMPLETED, ""
    if exit_status == EXIT_WALLTIME:
        return JobState.TIMEOUT, "exceeded its walltime"
    if exit_status in (EXIT_MEM, EXIT_VMEM, EXIT_HPMEM):
        return JobState.OUT_OF_MEMORY, "exceeded its memory"
    if exit_status == EXIT_CANCELLED:
        return JobState.CANCELLED, "killed with SIGTERM (qdel)"
    if exit_status == EXIT_MS_FAIL:
        return JobState.NODE_FAIL, "lost its first execution host"
    if exit_status > 256:
        return JobState.FAILED, f"killed by signal {exit_status - 256}"
    if exit_status < 0:
        return JobState.FAILED, f"PBS could not run it (JOB_EXEC code {exit_status})"
    return JobState.FAILED, f"exited with status {exit_status}"


def node_state(attributes: Mapping[str, Any]) -> tuple[NodeState, PowerState]:
    """Corral's state of a vnode from pbsnodes' ``state`` (``free``, ``job-busy``,
    ``job-exclusive``, ``resv-exclusive``, ``offline``, ``down``, ``state-unknown``, ``sleep``...,
    often several joined by commas) and its assigned CPUs."""
    states = {part.strip() for part in as_text(attributes.get("state")).split(",") if part}
    available = attributes.get("resources_available") or {}
    assigned = attributes.get("resources_assigned") or {}
    cpus = as_int(available.get("ncpus")) or 0
    used = as_int(assigned.get("ncpus")) or 0
    busy = used > 0 or bool(attributes.get("jobs"))
    power = PowerState.OFF if "sleep" in states else PowerState.ON
    if states & {"down", "state-unknown", "unresolvable", "stale"}:
        return NodeState.DOWN, power
    if states & {"offline", "maintenance"}:
        return (NodeState.DRAINING if busy else NodeState.DRAINED), power
    if states & {"job-exclusive", "resv-exclusive", "job-busy", "busy"}:
        return NodeState.ALLOCATED, power
    if states & {"free", "sleep"}:
        if used <= 0:
            return NodeState.IDLE, power
        if cpus and used >= cpus:
            return NodeState.ALLOCATED, power
        return NodeState.MIXED, power
    if states & {"provisioning", "wait-provisioning"}:
        return NodeState.UNKNOWN, PowerState.POWERING_UP
    return NodeState.UNKNOWN, power
