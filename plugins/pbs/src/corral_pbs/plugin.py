"""The hooks of the pbs plugin: one scheduler record. Cheap to import: the scheduler module is
imported only when a PBS cluster is first used."""

from __future__ import annotations

from collections.abc import Sequence

from corral_pbs.config import PBSConfig
from corral_sdk.plugin import SchedulerFeature, SchedulerRecord, hookimpl

__all__ = ["RECORD", "corral_register_schedulers"]

RECORD = SchedulerRecord(
    name="pbs",
    factory="corral_pbs.scheduler:PBS",
    config=PBSConfig,
    features=frozenset(
        {
            SchedulerFeature.HOLD_RELEASE,
            SchedulerFeature.JOB_ARRAYS,
            SchedulerFeature.ACCOUNTING,
            SchedulerFeature.PARTITIONS,
            SchedulerFeature.NODES,
        }
    ),
    docs=(
        "PBS Professional (18 and later) and OpenPBS (20 and later), driven over SSH with "
        "qsub, qstat, qdel, qhold, qrls and pbsnodes, reading their -F json output. Needs the "
        "PBS client commands on the login node; accounting needs the server's job history "
        "(job_history_enable)."
    ),
)


@hookimpl
def corral_register_schedulers() -> Sequence[SchedulerRecord]:
    return [RECORD]
