"""The settings of a Slurm cluster, decoded from the cluster's ``[scheduler]`` table."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from corral_sdk.errors import Invalid

__all__ = ["SlurmConfig", "StatusFormat"]

StatusFormat = Literal["auto", "json", "text"]

OPTION_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
"""A long sbatch option name without its dashes (``constraint``, ``gres-flags``)."""

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tabs are fine


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a newline, NUL or other control character but tab (which no
    Slurm name or path needs, and which would break the one-line commands the plugin runs)."""
    return _CONTROL.search(text) is not None


class SlurmConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """How Corral talks to one Slurm cluster. Every field has a default that suits a stock
    Slurm 20.11 or later reached over SSH as the job's owner."""

    status_format: StatusFormat = "auto"
    """How ``squeue`` is read. ``text``: a ``--format`` string, on every Slurm version.
    ``json``: ``squeue --json`` (Slurm 21.08+; before 24.05.1 it ignores ``--jobs`` and lists
    every job, which the plugin then filters). ``auto``: JSON where ``squeue --version`` says
    24.05.1 or later, text otherwise, decided inside the one command that asks for the jobs."""
    use_sacct: bool = True
    """Look up jobs that left the queue (and the exit codes the queue does not show) with
    ``sacct``. Set it to false on clusters without accounting to save that command; such jobs
    are then ``unknown``."""
    command_prefix: str = ""
    """Shell run before every Slurm command, joined with ``&&`` (``module load slurm``,
    ``export SLURM_CONF=/opt/slurm/etc/slurm.conf``); it runs in the user's login shell. It
    must not read its standard input: a submission's carries the job script to sbatch."""
    sbatch_options: dict[str, str | None] = msgspec.field(default_factory=dict)
    """Options added to every ``sbatch``, by long name (``{"constraint": "ib"}``); an empty or
    ``None`` value is a flag (TOML has no null: ``requeue = ""``). They come before the job's
    own options, which therefore win."""
    command_timeout_seconds: float = 60.0
    """How long one command may take before the call fails with ``Timeout``."""
    config_dir: str = "/etc/slurm"
    """Where the controller's ``slurm.conf`` lives; the elastic configuration is written next
    to it."""
    cloud_dns: bool = False
    """Elastic nodes' names resolve in DNS (``SlurmctldParameters=cloud_dns``). By default they
    need not: slurmctld takes each node's address when its slurmd registers
    (``cloud_reg_addrs``), as on a cloud whose instances get their addresses at launch."""

    def __post_init__(self) -> None:
        if has_control_characters(self.command_prefix):
            raise Invalid("the command prefix must be one line", field="command_prefix")
        for name, value in self.sbatch_options.items():
            if not OPTION_NAME.match(name):
                raise Invalid(
                    f"{name!r} is not a long sbatch option name (like 'constraint')",
                    field="sbatch_options",
                )
            if value is not None and has_control_characters(value):
                raise Invalid(f"the value of {name!r} must be one line", field="sbatch_options")
        if self.command_timeout_seconds <= 0:
            raise Invalid("the command timeout must be positive", field="command_timeout_seconds")
        if not self.config_dir.startswith("/") or has_control_characters(self.config_dir):
            raise Invalid(
                "the configuration directory must be an absolute path", field="config_dir"
            )
