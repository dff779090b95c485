"""The ``jupyter`` session type's options: where Jupyter starts and, for a compute node, what to
ask the cluster's scheduler for (the fields of Open OnDemand's Jupyter form)."""

from __future__ import annotations

import re
import shlex
from typing import Literal

import msgspec

from corral_sdk.errors import Invalid

__all__ = [
    "SCHEDULER_FIELDS",
    "JupyterOptions",
    "parse_memory_mb",
    "parse_scheduler_options",
    "parse_time_limit",
]

SCHEDULER_FIELDS = (
    "partition",
    "time_limit",
    "cpus",
    "memory",
    "gpus",
    "account",
    "qos",
    "scheduler_options",
)
"""The options that only mean something with ``placement="compute"``."""

_DURATION_UNITS = re.compile(r"(\d+)\s*([dhms])", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(?:\d+\s*[dhms]\s*)+$", re.IGNORECASE)
_CLOCK = re.compile(r"^(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_GPUS = re.compile(r"^(?:[A-Za-z0-9_.\-]+:)?[1-9]\d*$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-+@%]+$")
_FLAG = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_MEGABYTES = {"": 1, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_time_limit(text: str) -> int:
    """Seconds from ``4h``, ``90m``, ``1h30m``, ``2d`` or a clock ``[D-]H:MM[:SS]``
    (``1:30:00``, ``2-00:00``); ``Invalid`` naming ``time_limit`` otherwise."""
    value = text.strip()
    seconds = 0
    if _DURATION.match(value):
        seconds = sum(int(n) * _SECONDS[unit.lower()] for n, unit in _DURATION_UNITS.findall(value))
    elif clock := _CLOCK.match(value):
        days, hours, minutes, secs = clock.groups()
        if int(minutes) > 59 or (secs is not None and int(secs) > 59):
            raise Invalid(
                f"time_limit {text!r}: minutes and seconds go up to 59", field="time_limit"
            )
        seconds = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(secs or 0)
    else:
        raise Invalid(
            f"time_limit {text!r} is not a duration: give hours and minutes as 4h, 90m, 1h30m, "
            "2d, or a clock [D-]H:MM[:SS] (1:30:00)",
            field="time_limit",
        )
    if seconds <= 0:
        raise Invalid(f"time_limit {text!r} must be longer than zero", field="time_limit")
    return seconds


def parse_memory_mb(text: str) -> int:
    """Megabytes from ``4G``, ``512M``, ``1.5GB``, ``1T``; a bare number is megabytes (as
    sbatch's ``--mem``); ``Invalid`` naming ``memory`` otherwise."""
    found = _MEMORY.match(text.strip())
    if found is None:
        raise Invalid(
            f"memory {text!r} is not an amount of memory: give it as 4G, 512M or 1.5G",
            field="memory",
        )
    megabytes = int(float(found.group(1)) * _MEGABYTES[found.group(2).lower()])
    if megabytes <= 0:
        raise Invalid(f"memory {text!r} is less than one megabyte", field="memory")
    return megabytes


def parse_scheduler_options(text: str) -> dict[str, str | None]:
    """``--constraint=ib --exclusive --reservation maint`` as the scheduler's extra options by
    long name; ``Invalid`` naming ``scheduler_options`` for anything else."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise Invalid(f"scheduler_options: {exc}", field="scheduler_options") from None
    flags: dict[str, str | None] = {}
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("--"):
            raise Invalid(
                f"scheduler_options: {word!r} is not a long option: write --name=value or "
                "--flag (--constraint=ib, not -C ib)",
                field="scheduler_options",
            )
        name, sep, value = word[2:].partition("=")
        if not _FLAG.match(name):
            raise Invalid(
                f"scheduler_options: {word!r} is not an option name", field="scheduler_options"
            )
        if not sep and index < len(words) and not words[index].startswith("-"):
            value, sep = words[index], "="
            index += 1
        flags[name] = value if sep else None
    return flags


class JupyterOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    directory: str = "~"
    """Where Jupyter starts (its root directory); ``~`` is the user's home on the target."""
    interface: Literal["lab", "notebook"] = "lab"
    """JupyterLab, or the classic notebook interface (Jupyter Notebook 7)."""
    command: str = "jupyter"
    """The ``jupyter`` program on the target: a name on its ``PATH`` or an absolute path."""
    placement: Literal["login", "compute"] = "login"
    """``login``: on the host the session's target reaches (a cluster's login host or
    controller, or the workspace). ``compute``: on a compute node of the cluster, as a batch
    job of its scheduler, for as long as the job runs (a cluster target only)."""
    partition: str = ""
    """The partition (Slurm) or queue (PBS) of the job; empty for the scheduler's default."""
    time_limit: str = ""
    """The job's wall time (``4h``, ``90m``, ``1h30m``, ``1:30:00``); when it runs out the
    scheduler ends the job and the session fails. Empty for the partition's default."""
    cpus: int | None = None
    """CPU cores for the server and its kernels (one task with that many CPUs)."""
    memory: str = ""
    """Memory on the node (``4G``, ``512M``; a bare number is megabytes)."""
    gpus: str = ""
    """GPUs on the node: a count or ``type:count`` (``a100:2``)."""
    account: str = ""
    """The account the job is charged to."""
    qos: str = ""
    """The job's quality of service."""
    scheduler_options: str = ""
    """More options for the scheduler by long name, as typed on its command line
    (``--constraint=ib --exclusive``)."""

    def __post_init__(self) -> None:
        for field in ("directory", "command"):
            value = getattr(self, field)
            if not value.strip() or "\n" in value or "\0" in value:
                raise Invalid(f"{field} must be one non-empty line", field=field)
            if len(value) > 1000:
                raise Invalid(f"{field} is longer than 1000 characters", field=field)
        if self.placement == "login":
            given = [field for field in SCHEDULER_FIELDS if getattr(self, field) not in ("", None)]
            if given:
                raise Invalid(
                    f"{given[0]} is for a job on a compute node: set placement to 'compute' "
                    "too (placement 'login' runs Jupyter on the login host)",
                    field=given[0],
                )
            return
        for field in ("partition", "account", "qos"):
            value = getattr(self, field)
            if value and not _NAME.match(value):
                raise Invalid(f"{field} {value!r} is not a name", field=field)
        if self.cpus is not None and not 0 < self.cpus <= 100_000:
            raise Invalid(f"cpus must be a positive number of cores, not {self.cpus}", field="cpus")
        if self.gpus and not _GPUS.match(self.gpus):
            raise Invalid(
                f"gpus {self.gpus!r} must be a count or type:count (a100:2)", field="gpus"
            )
        if self.time_limit:
            parse_time_limit(self.time_limit)
        if self.memory:
            parse_memory_mb(self.memory)
        if len(self.scheduler_options) > 4000 or "\n" in self.scheduler_options:
            raise Invalid(
                "scheduler_options must be one line of at most 4000 characters",
                field="scheduler_options",
            )
        parse_scheduler_options(self.scheduler_options)
