"""Slurm's job and node states mapped onto Corral's, and how a job array's tasks add up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from corral_sdk.providers.scheduler import JobState, NodeState, PowerState

__all__ = [
    "HELD_REASONS",
    "JOB_STATES",
    "NODE_STATES",
    "aggregate_array_state",
    "job_state",
    "json_state_name",
    "node_state",
    "normalize_state",
]

_P, _H, _R = JobState.PENDING, JobState.HELD, JobState.RUNNING

JOB_STATES: Mapping[str, JobState] = MappingProxyType(
    {
        # waiting
        "PENDING": _P,
        "PD": _P,
        "CONFIGURING": _P,  # allocated, nodes still booting (elastic nodes powering up)
        "CF": _P,
        "REQUEUED": _P,  # ran, goes back to the queue
        "RQ": _P,
        "REQUEUE_FED": _P,
        "RF": _P,
        "REQUEUE_HOLD": _H,
        "RH": _H,
        "RESV_DEL_HOLD": _H,  # its reservation was deleted; held until released
        "RD": _H,
        "SPECIAL_EXIT": _H,  # requeued and held by an epilog's special exit value
        "SE": _H,
        # running
        "RUNNING": _R,
        "R": _R,
        "RESIZING": _R,  # keeps its allocation while it changes size
        "RS": _R,
        "SIGNALING": _R,  # a signal is being delivered to a job that still runs
        "SI": _R,
        "SUSPENDED": JobState.SUSPENDED,
        "S": JobState.SUSPENDED,
        "STOPPED": JobState.SUSPENDED,  # SIGSTOPped, keeping its CPUs
        "ST": JobState.SUSPENDED,
        "COMPLETING": JobState.COMPLETING,
        "CG": JobState.COMPLETING,
        "STAGE_OUT": JobState.COMPLETING,  # the job ended; burst buffer data is copied out
        "SO": JobState.COMPLETING,
        # finished
        "COMPLETED": JobState.COMPLETED,
        "CD": JobState.COMPLETED,
        "CANCELLED": JobState.CANCELLED,
        "CA": JobState.CANCELLED,
        "FAILED": JobState.FAILED,
        "F": JobState.FAILED,
        "TIMEOUT": JobState.TIMEOUT,
        "TO": JobState.TIMEOUT,
        "DEADLINE": JobState.TIMEOUT,  # killed at its --deadline: a time limit by another name
        "DL": JobState.TIMEOUT,
        "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
        "OOM": JobState.OUT_OF_MEMORY,
        "NODE_FAIL": JobState.NODE_FAIL,
        "NF": JobState.NODE_FAIL,
        "BOOT_FAIL": JobState.NODE_FAIL,  # its node failed to boot: the node's fault, not the job's
        "BF": JobState.NODE_FAIL,
        "PREEMPTED": JobState.PREEMPTED,
        "PR": JobState.PREEMPTED,
        # a federation sibling that another cluster started: this cluster cannot say how it ends
        "REVOKED": JobState.UNKNOWN,
        "RV": JobState.UNKNOWN,
    }
)
"""Every Slurm job state, long and short, as ``squeue``, ``sacct`` and ``squeue --json`` print
them."""

HELD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})
"""Reasons that make a pending job ``held`` rather than ``pending``."""

_PENDING_NAMES = frozenset({"PENDING", "PD"})

_FLAG_PRECEDENCE = (
    "COMPLETING",
    "STAGE_OUT",
    "CONFIGURING",
    "RESIZING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "SPECIAL_EXIT",
    "STOPPED",
    "REVOKED",
    "RESV_DEL_HOLD",
    "SIGNALING",
)
"""State flags in the order Slurm's ``job_state_string()`` lets them stand for the job."""


def normalize_state(native: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``; ``cancelled+`` (sacct, truncated) -> ``CANCELLED``."""
    words = native.strip().split()
    return words[0].rstrip("+").upper() if words else ""


def json_state_name(value: object) -> str:
    """The state of a ``squeue --json`` job: a string until Slurm 23.02, from 23.11 a list of
    the base state and its flags (``["RUNNING", "CONFIGURING"]``), reduced as ``squeue``'s own
    text output does."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        names = [str(item).upper() for item in value]
        for flag in _FLAG_PRECEDENCE:
            if flag in names:
                return flag
        for name in names:
            if name in JOB_STATES:
                return name
        return names[0] if names else ""
    return ""


def job_state(native: str, reason: str = "") -> JobState:
    """Corral's state for a Slurm state; a pending job held by its user or an admin is
    ``held``. Unknown names are ``unknown``."""
    name = normalize_state(native)
    state = JOB_STATES.get(name, JobState.UNKNOWN)
    if name in _PENDING_NAMES and reason.strip() in HELD_REASONS:
        return JobState.HELD
    return state


# --- job arrays -----------------------------------------------------------------------------

_ACTIVE_ORDER = (
    JobState.RUNNING,
    JobState.SUSPENDED,
    JobState.PENDING,
    JobState.HELD,
    JobState.COMPLETING,
)
_FINISHED_ORDER = (
    JobState.FAILED,
    JobState.OUT_OF_MEMORY,
    JobState.NODE_FAIL,
    JobState.TIMEOUT,
    JobState.PREEMPTED,
    JobState.CANCELLED,
)


def aggregate_array_state(states: Iterable[JobState]) -> JobState:
    """One state for a job array from its tasks' states.

    While any task is still active the array is active: ``running`` if any task runs, else
    ``suspended``, ``pending``, ``held``, ``completing`` in that order. Once every task
    finished it is ``completed`` only if all completed, else the first of ``failed``,
    ``out_of_memory``, ``node_fail``, ``timeout``, ``preempted``, ``cancelled`` that a task
    ended in. Tasks in ``unknown`` count only when no task is anything else.
    """
    seen = set(states)
    known = seen - {JobState.UNKNOWN}
    if not known:
        return JobState.UNKNOWN
    for state in _ACTIVE_ORDER:
        if state in known:
            return state
    for state in _FINISHED_ORDER:
        if state in known:
            return state
    return JobState.COMPLETED


# --- nodes ----------------------------------------------------------------------------------

NODE_STATES: Mapping[str, NodeState] = MappingProxyType(
    {
        "idle": NodeState.IDLE,
        "planned": NodeState.IDLE,  # idle, kept free by backfill for a bigger job
        "plnd": NodeState.IDLE,
        "mixed": NodeState.MIXED,
        "mix": NodeState.MIXED,
        "allocated": NodeState.ALLOCATED,
        "alloc": NodeState.ALLOCATED,
        "completing": NodeState.ALLOCATED,
        "comp": NodeState.ALLOCATED,
        "draining": NodeState.DRAINING,
        "drng": NodeState.DRAINING,
        "failing": NodeState.DRAINING,  # still running jobs, taken out of service
        "failg": NodeState.DRAINING,
        "drained": NodeState.DRAINED,
        "drain": NodeState.DRAINED,
        "fail": NodeState.DRAINED,
        "down": NodeState.DOWN,
        # powered-down elastic nodes are idle: a job makes Slurm power them up
        "powered_down": NodeState.IDLE,
        "powering_up": NodeState.IDLE,
        "powering_down": NodeState.IDLE,
        "power_down": NodeState.IDLE,
    }
)
"""``sinfo``'s node states (``%T`` and the short ``%t``), lower case, without suffixes;
others (``reserved``, ``maint``, ``future``, ``inval``, ``reboot_*``) are ``unknown``."""

_POWER_SUFFIXES: Mapping[str, PowerState] = MappingProxyType(
    {"~": PowerState.OFF, "#": PowerState.POWERING_UP, "%": PowerState.POWERING_DOWN}
)
_POWER_NAMES: Mapping[str, PowerState] = MappingProxyType(
    {
        "powered_down": PowerState.OFF,
        "powering_up": PowerState.POWERING_UP,
        "powering_down": PowerState.POWERING_DOWN,
    }
)
_SUFFIXES = "*~#!%$@^-"


def node_state(native: str) -> tuple[NodeState, PowerState, bool]:
    """``(state, power, responding)`` for an ``sinfo`` state such as ``idle~``, ``mixed#``,
    ``down*`` or ``allocated+``: ``~`` is powered off, ``#`` powering up, ``%`` powering down,
    ``*`` not responding."""
    text = native.strip().lower()
    suffixes = ""
    while text and text[-1] in _SUFFIXES:
        suffixes = text[-1] + suffixes
        text = text[:-1]
    base = text.rstrip("+")  # allocated+: allocated with jobs completing
    power = PowerState.ON
    for char in suffixes:
        power = _POWER_SUFFIXES.get(char, power)
    power = _POWER_NAMES.get(base, power)
    return NODE_STATES.get(base, NodeState.UNKNOWN), power, "*" not in suffixes
