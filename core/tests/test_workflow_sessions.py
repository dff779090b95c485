"""Sessions of workflow runs (spec §7, §8.3): made when the run starts and named as the spec
says, filled in by ``update-session``, running once the app answers (an HTTP server in the real
workspace), removed when the run ends unless ``detach``."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from sqlmodel import col, select
from workflow_lab import Lab

from corral_core.resources.models import Resource
from corral_core.sessions.spec import SESSION_KIND

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def sessions(lab: Lab) -> dict[str, Resource]:
    async with lab.runtime.db.session() as session:
        rows = await session.exec(select(Resource).where(col(Resource.kind) == SESSION_KIND))
        return {row.name: row for row in rows}


async def _until(check: Any, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := await check()):
        assert asyncio.get_running_loop().time() < deadline, "it did not happen"
        await asyncio.sleep(0.1)
    return found


SERVER = """sessions:
  expose:
    redirect: true
    prompt-for-name:
      default: 'mysession'
jobs:
  expose:
    steps:
      - name: Wait for server
        run: |
          until (exec 3<>/dev/tcp/127.0.0.1/${{ inputs.port }}) 2>/dev/null; do sleep 0.2; done
      - name: Expose port
        uses: parallelworks/update-session
        with:
          remotePort: ${{ inputs.port }}
          remoteHost: 127.0.0.1
          name: ${{ sessions.expose }}
          status: 'running'
          target: 'user-workspace'
      - name: Keep running
        run: sleep 500
  main:
    steps:
      - name: Run Server
        run: |
          echo 'Hello from the server' > index.html
          exec python3 -m http.server --bind 127.0.0.1 ${{ inputs.port }}
'on':
  execute:
    inputs:
      port:
        type: number
        min: 4000
        max: 65000
"""


async def test_a_run_makes_its_session_update_session_fills_it_and_the_end_removes_it(
    lab: Lab,
) -> None:
    port = _free_port()
    run = await lab.start(SERVER, {"port": port})
    assert run.id is not None

    async def session_filled() -> Resource | None:
        await lab.engine.tick(run.id or 0, budget=0.5)
        found = (await sessions(lab)).get("mysession")
        return found if found is not None and found.desired_state == "running" else None

    filled = await _until(session_filled)
    assert filled.spec["remote_port"] == port and filled.spec["run_id"] == run.id
    assert filled.spec["redirect"] is True and filled.owner == lab.principal.username
    await lab.runtime.reconciler.reconcile(filled.id or 0)
    assert (await sessions(lab))["mysession"].observed_state == "running"

    await lab.engine.cancel(run.id)
    done = await lab.finish(run.id)
    assert done.run.status == "canceled"
    assert "mysession" not in await sessions(lab)


async def test_names_detach_and_a_link(lab: Lab) -> None:
    yaml = """sessions:
  kept:
    detach: true
  link:
jobs:
  main:
    steps:
      - uses: parallelworks/update-session
        with:
          name: ${{ sessions.link }}
          type: link
          url: https://example.com
      - run: echo ${{ sessions.kept }} ${{ sessions.link }}
"""
    done = await lab.run(yaml)
    assert done.run.status == "completed", done.lines
    workflow = done.run.plan["workflow"]
    kept, link = f"{workflow}00001kept", f"{workflow}00001link"
    assert done.printed("main")[-1] == f"{kept} {link}"
    left = await sessions(lab)
    assert kept in left and link not in left  # detached: stays until its owner deletes it
    assert left[kept].observed_state == "creating"


async def test_update_session_refuses_what_the_run_did_not_declare(lab: Lab) -> None:
    step = """jobs:
  main:
    steps:
      - uses: parallelworks/update-session
        with:
          name: {name}
          remotePort: 8080
"""
    kept = await lab.run("sessions:\n  mine:\n    detach: true\njobs:\n  main:\n    steps:\n"
                         "      - run: sleep 0\n")  # fmt: skip
    foreign = f"{kept.run.plan['workflow']}00001mine"
    done = await lab.run("sessions:\n  own:\n" + step.format(name=foreign))
    assert done.run.status == "error"
    assert "is not a session of this run" in done.steps["main"][0].reason
    allowed = await lab.run("permissions: ['*']\n" + step.format(name=foreign))
    assert allowed.run.status == "completed", allowed.lines
    assert (await sessions(lab))[foreign].spec["remote_port"] == 8080
    missing = await lab.run("sessions:\n  own:\n" + step.format(name="${{ sessions.own }}")
                            .replace("          remotePort: 8080\n", ""))  # fmt: skip
    assert "with.remotePort" in missing.steps["main"][0].reason
