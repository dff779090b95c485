"""The hooks of the Slurm plugin: one scheduler record, registered without importing the
scheduler itself (it is loaded on first use)."""

from __future__ import annotations

from corral_sdk.plugin import SchedulerFeature, SchedulerRecord, hookimpl
from corral_slurm.config import SlurmConfig

__all__ = ["RECORD", "corral_register_schedulers"]

RECORD = SchedulerRecord(
    name="slurm",
    factory="corral_slurm.scheduler:Slurm",
    config=SlurmConfig,
    features=frozenset(
        {
            SchedulerFeature.HOLD_RELEASE,
            SchedulerFeature.JOB_ARRAYS,
            SchedulerFeature.ACCOUNTING,
            SchedulerFeature.PARTITIONS,
            SchedulerFeature.NODES,
            SchedulerFeature.ELASTIC_NODES,
            SchedulerFeature.BATCH_SUBMIT,
        }
    ),
    docs=(
        "Slurm 20.11 or later, driven over SSH with its own commands (sbatch, squeue, "
        "scancel, scontrol, sinfo, sacct) as the job's owner on a login node: no REST daemon "
        "is needed. Job statuses come from one squeue per poll, finished jobs from sacct "
        "where the cluster keeps accounting; elastic partitions get a slurm.conf fragment "
        "for power-saved cloud nodes."
    ),
)
"""The scheduler this plugin registers."""


@hookimpl
def corral_register_schedulers() -> list[SchedulerRecord]:
    return [RECORD]
