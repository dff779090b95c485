"""Finished and running jobs from ``sacct``, for usage and billing."""

from __future__ import annotations

import re
from dataclasses import dataclass

from corral_sdk.providers.scheduler import AccountingRecord
from corral_slurm.states import job_state
from corral_slurm.values import (
    gpu_count,
    parse_duration,
    parse_epoch,
    parse_exit_code,
    parse_size_mb,
)

__all__ = ["ACCOUNTING_DISABLED", "SACCT_ACCOUNTING_FIELDS", "parse_sacct_accounting"]

SACCT_ACCOUNTING_FIELDS = (
    "JobID,State,ExitCode,User,Account,Partition,Submit,Start,End,ElapsedRaw,"
    "NNodes,AllocCPUS,AllocTRES,TotalCPU,MaxRSS,JobName"
)
"""What ``sacct --parsable2`` prints per job and per step; the name last so a ``|`` in it
cannot shift the fields. Steps are read for ``MaxRSS``, which Slurm keeps per step only."""

ACCOUNTING_DISABLED = re.compile(r"accounting storage is disabled", re.IGNORECASE)
"""What ``sacct`` prints on a cluster without ``AccountingStorageType``."""

_COUNT = SACCT_ACCOUNTING_FIELDS.count(",") + 1


@dataclass
class _Job:
    fields: list[str]
    max_rss_mb: float | None = None


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


def parse_sacct_accounting(stdout: str) -> list[AccountingRecord]:
    """One record per job (or array task) from ``sacct --parsable2 --noheader
    --format=<SACCT_ACCOUNTING_FIELDS>``, its steps folded in: ``max_rss_mb`` is the largest
    of its steps'."""
    jobs: dict[str, _Job] = {}
    for line in stdout.splitlines():
        fields = line.split("|", _COUNT - 1)
        if len(fields) != _COUNT or not fields[0].strip():
            continue
        job_id, _, step = fields[0].strip().partition(".")
        if not step:
            jobs[job_id] = _Job(fields=fields)
            continue
        job = jobs.get(job_id)
        if job is None:
            continue  # a step of a job whose line was not printed (not asked for)
        rss = parse_size_mb(fields[14])
        if rss is not None and (job.max_rss_mb is None or rss > job.max_rss_mb):
            job.max_rss_mb = rss
    records = []
    for job_id, job in jobs.items():
        (
            _,
            state,
            exit_code,
            user,
            account,
            partition,
            submit,
            start,
            end,
            elapsed,
            nnodes,
            cpus,
            tres,
            total_cpu,
            max_rss,
            name,
        ) = job.fields
        corral_state = job_state(state)
        own_rss = parse_size_mb(max_rss)
        rss_values = [value for value in (own_rss, job.max_rss_mb) if value is not None]
        records.append(
            AccountingRecord(
                job_id=job_id,
                state=corral_state,
                native_state=state.strip(),
                name=name,
                user=user.strip(),
                account=account.strip(),
                partition=partition.strip(),
                exit_code=parse_exit_code(exit_code) if corral_state.terminal else None,
                submit_time=parse_epoch(submit),
                start_time=parse_epoch(start),
                end_time=parse_epoch(end),
                elapsed_seconds=int(elapsed) if elapsed.strip().isdigit() else None,
                nodes=_int(nnodes),
                cpus=_int(cpus),
                gpus=gpu_count(tres),
                cpu_seconds=parse_duration(total_cpu),
                max_rss_mb=max(rss_values) if rss_values else None,
            )
        )
    return records
