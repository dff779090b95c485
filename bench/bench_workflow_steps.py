"""The workflow engine's throughput in embedded mode (SQLite, the workspace executor): a workflow
of 1,000 jobs of one ``true`` step each, from the start of the run to its end, beside the same
1,000 ``true`` processes started by a plain loop (what the steps themselves cost).

Figures: steps per second (target at least 100 on a 2-core machine) and the engine's overhead per
step (the run's time per step minus the plain loop's).
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from run import Figure
from sqlmodel import col, select

from corral_core.identity.models import User
from corral_core.identity.names import ResourceRef
from corral_core.migrations import upgrade
from corral_core.plugins import load_kernel
from corral_core.runtime import Runtime
from corral_core.testing import ADMIN_PASSWORD, TestDeployment
from corral_sdk.wire import WorkflowCreate

JOBS = 1000


def _yaml(jobs: int) -> str:
    return "jobs:\n" + "".join(f"  j{i}:\n    steps:\n      - run: 'true'\n" for i in range(jobs))


async def _engine_seconds(root: Path, jobs: int) -> tuple[float, str]:
    deployment = TestDeployment(root)
    runtime = Runtime(deployment.settings(), load_kernel(), "all")
    upgrade(runtime.db)
    try:
        await runtime.identity.bootstrap("default", "root", ADMIN_PASSWORD)
        async with runtime.db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == "root"))).one()
        principal = await runtime.authn.principal(user)
        name = f"bench_{uuid.uuid4().hex[:6]}"
        await runtime.workflows.create(principal, WorkflowCreate(name=name, yaml=_yaml(jobs)))
        began = time.perf_counter()
        run = await runtime.runs.start(principal, ResourceRef("root", name), {})
        while not await runtime.engine.tick(run.id or 0):
            pass
        elapsed = time.perf_counter() - began
        status = (await runtime.runs.get(principal, run.id or 0)).status
        return elapsed, status
    finally:
        await runtime.close()
        deployment.close()


def _plain_seconds(jobs: int) -> float:
    began = time.perf_counter()
    for _ in range(jobs):
        subprocess.run(["true"], check=True)
    return time.perf_counter() - began


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        elapsed, status = asyncio.run(_engine_seconds(Path(tmp), JOBS))
    if status != "completed":
        raise SystemExit(f"the benchmark run ended {status}")
    plain = _plain_seconds(JOBS)
    return [
        Figure(
            f"steps per second ({JOBS} jobs of one 'true' step, embedded mode)",
            JOBS / elapsed,
            "steps/s",
            "plain loop starting 'true'",
            JOBS / plain,
            ">= 100 steps/s",
        ),
        Figure(
            "engine overhead per step",
            (elapsed - plain) / JOBS * 1000,
            "ms",
            "one 'true' process",
            plain / JOBS * 1000,
        ),
    ]
