"""The settings of a PBS cluster (the ``config`` of the ``pbs`` scheduler record)."""

from __future__ import annotations

import re

import msgspec

__all__ = ["PBSConfig"]

_RESOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PBSConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """How Corral talks to one PBS Professional / OpenPBS server. Every field has a default, so a
    cluster without settings works with a stock installation."""

    script_dir: str = ".corral/jobs"
    """Where job scripts are written before ``qsub``, relative to the login directory (or
    absolute). qsub copies the script into the job, so each file is removed right after qsub,
    in the same command, whether qsub accepted the job or not."""
    default_queue: str | None = None
    """The queue (``-q``) of jobs that name none; ``None`` leaves it to the server's
    ``default_queue``."""
    bin_dir: str | None = None
    """The directory of ``qsub``, ``qstat``... (``/opt/pbs/bin``) when the login shell's
    ``PATH`` lacks it."""
    command_prefix: str = ""
    """Put verbatim before every command (``source /etc/profile.d/pbs.sh &&``)."""
    job_history: bool | None = None
    """Whether the server keeps finished jobs (``job_history_enable``). ``None`` finds out: the
    first ``qstat -x`` answers "not configured to maintain job history" when it does not.
    ``False`` skips ``-x`` altogether and makes accounting unavailable."""
    array_throttle: bool = True
    """Whether ``qsub -J`` accepts a ``%`` limit of running subjobs (``max_run_subjobs``,
    OpenPBS 22.05 and later); when false a throttled array is refused before submitting."""
    gpu_type_resource: str | None = None
    """The chunk resource naming a GPU model, used for ``gpus_per_node="a100:2"``
    (``gpu_type`` at NCAR, ``gputype`` at ALCF); ``None`` refuses typed GPU requests."""
    command_timeout: float | None = None
    """Seconds one command may take; ``None`` for the connection's default."""

    def __post_init__(self) -> None:
        if not self.script_dir.strip() or any(c in self.script_dir for c in "\n\r\0"):
            raise ValueError("script_dir must be a non-empty path on one line")
        if self.default_queue is not None and not self.default_queue.strip():
            raise ValueError("default_queue must not be empty (leave it unset instead)")
        if any(c in self.command_prefix for c in "\n\r\0"):
            raise ValueError("command_prefix must be on one line")
        if self.gpu_type_resource is not None and not _RESOURCE_NAME.match(self.gpu_type_resource):
            raise ValueError(f"gpu_type_resource {self.gpu_type_resource!r} is not a resource name")
        if self.command_timeout is not None and self.command_timeout <= 0:
            raise ValueError("command_timeout must be positive")
