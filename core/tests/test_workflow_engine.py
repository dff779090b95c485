"""The workflow engine running the spec's examples in a real workspace (steps are real
processes): statuses, what printed, which steps ran, timeouts, retries, cleanups, outputs,
matrices, cancel, and a worker that dies in the middle of a run."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from workflow_lab import PLATFORM_URL, Lab

from corral_core.db import utcnow
from corral_core.identity.names import ResourceRef
from corral_core.testing import git_repository
from corral_core.workflows.models import WorkflowRun
from corral_sdk.errors import Invalid, NotAuthenticated, ProviderError
from corral_sdk.wire import WorkflowCreate

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).parent / "workflows"


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


async def test_env_precedence_step_over_job_over_workflow(lab: Lab) -> None:
    done = await lab.run(example("env_precedence.yaml"))
    assert done.run.status == "completed"
    assert done.printed("job-name") == ["c"]
    without_step = example("env_precedence.yaml").replace("        env:\n          foo: c\n", "")
    assert (await lab.run(without_step)).printed("job-name") == ["b"]
    global_only = without_step.replace("    env:\n      foo: b\n", "")
    assert (await lab.run(global_only)).printed("job-name") == ["a"]


async def test_needs_orders_jobs_and_a_failure_skips_dependents(lab: Lab) -> None:
    done = await lab.run(example("needs_order.yaml"))
    assert done.run.status == "completed"
    first, second = done.jobs["first"], done.jobs["second"]
    assert first.finished_at is not None and second.started_at is not None
    assert second.started_at >= first.finished_at
    failing = example("needs_order.yaml").replace("echo runs first", "exit 4")
    done = await lab.run(failing)
    assert (done.run.status, done.jobs["first"].status, done.jobs["second"].status) == (
        "error", "error", "skipped"
    )  # fmt: skip


async def test_jobs_without_needs_run_together(lab: Lab) -> None:
    yaml = "jobs:\n" + "".join(f"  j{i}:\n    steps:\n      - run: sleep 1\n" for i in range(2))
    done = await lab.run(yaml)
    a, b = done.jobs["j0"], done.jobs["j1"]
    assert a.started_at and b.started_at and a.finished_at and b.finished_at
    assert a.started_at < b.finished_at and b.started_at < a.finished_at


async def test_cleanups_run_in_reverse_after_a_failure(lab: Lab) -> None:
    done = await lab.run(example("cleanup_order.yaml"))
    assert done.run.status == "error"
    printed = done.printed("main")
    assert printed[-5:] == ["first", "second", "third", "fourth", "fifth"], done.lines
    statuses = [(s.kind, s.status) for s in done.steps["main"]]
    assert statuses[0] == ("step", "error")


async def test_ignore_errors_keeps_the_job_successful(lab: Lab) -> None:
    yaml = "jobs:\n  a:\n    steps:\n      - run: exit 3\n        ignore-errors: true\n"
    done = await lab.run(yaml)
    assert done.run.status == "completed" and done.steps["a"][0].exit_status == 3


async def test_conditions_from_inputs(lab: Lab) -> None:
    on = await lab.run(example("conditionals.yaml"), {"should-run": True})
    assert on.jobs["extra"].status == "completed"
    assert on.printed("main") == ["hello world", "This ran because of an input!"]
    off = await lab.run(example("conditionals.yaml"), {"should-run": False})
    assert off.jobs["extra"].status == "skipped" and off.run.status == "completed"
    assert off.printed("main") == ["hello world"]


async def test_matrix_instances_and_max_parallel(lab: Lab, tmp_path: Path) -> None:
    done = await lab.run(example("matrix.yaml"))
    printed = sorted(line for job in done.jobs for line in done.printed(job))
    assert printed == sorted(f"{os} v{v}" for os in ("ubuntu", "centos") for v in (1, 2, 3))
    seen = tmp_path / "concurrency"
    yaml = f"""jobs:
  deploy:
    strategy:
      max-parallel: 2
      matrix:
        n: [1, 2, 3, 4, 5]
    steps:
      - run: |
          echo start >> {seen}; sleep 0.6; echo end >> {seen}
"""
    assert (await lab.run(yaml)).run.status == "completed"
    level = peak = 0
    for event in seen.read_text().split():
        level += 1 if event == "start" else -1
        peak = max(peak, level)
    assert peak == 2


async def test_outputs_auto_published_and_named(lab: Lab) -> None:
    done = await lab.run(example("outputs_auto.yaml"))
    assert done.printed("job1") == ["3001"] and done.printed("job2") == ["3001"]
    named = await lab.run(example("outputs_named.yaml"))
    assert named.jobs["build"].outputs == {
        "version": "1.2.3",
        "artifact_url": "https://example.com/artifact.zip",
    }


async def test_step_and_workflow_timeouts(lab: Lab) -> None:
    yaml = "jobs:\n  main:\n    steps:\n      - run: sleep 30\n        timeout: 1s\n"
    began = time.monotonic()
    done = await lab.run(yaml)
    assert done.run.status == "error" and time.monotonic() - began < 15
    assert "timed out" in done.steps["main"][0].reason
    began = time.monotonic()
    done = await lab.run("timeout: 2s\njobs:\n  main:\n    steps:\n      - run: sleep 30\n")
    assert done.run.status == "error" and "timed out after 2s" in done.run.reason
    assert time.monotonic() - began < 15


async def test_retries(lab: Lab, tmp_path: Path) -> None:
    count = tmp_path / "attempts"
    yaml = f"""jobs:
  main:
    steps:
      - run: |
          echo x >> {count}
          [ "$(wc -l < {count})" -ge 3 ]
        retry:
          max-retries: 3
          interval: 100ms
"""
    done = await lab.run(yaml)
    assert done.run.status == "completed" and done.steps["main"][0].attempt == 2
    assert count.read_text().count("x") == 3
    always = (
        "jobs:\n  main:\n    steps:\n      - run: exit 1\n"
        "        retry:\n          interval: 10ms\n"
    )
    done = await lab.run(always)
    assert done.run.status == "error" and done.steps["main"][0].attempt == 10  # 11 attempts


async def test_the_default_working_directory(lab: Lab) -> None:
    done = await lab.run("jobs:\n  main:\n    steps:\n      - run: pwd\n")
    workflow = done.run.plan["workflow"]
    assert done.printed("main") == [str(lab.root / "root" / "pw/jobs" / workflow / "00001")]


async def test_cancel_still_runs_cleanups(lab: Lab, tmp_path: Path) -> None:
    mark = tmp_path / "cleaned"
    yaml = f"jobs:\n  main:\n    steps:\n      - run: sleep 60\n        cleanup: touch {mark}\n"
    run = await lab.start(yaml)
    assert not await lab.engine.tick(run.id or 0, budget=1)
    await lab.engine.cancel(run.id or 0)
    done = await lab.finish(run.id or 0, timeout=30)
    assert done.run.status == "canceled" and mark.exists()
    assert done.steps["main"][0].status == "canceled"


async def test_bad_inputs_are_refused_naming_the_input(lab: Lab) -> None:
    with pytest.raises(Invalid) as caught:
        await lab.start(example("conditionals.yaml"), {"should-run": "perhaps"})
    assert caught.value.field == "inputs.should-run"


async def test_a_worker_that_dies_mid_run_neither_loses_nor_repeats_a_step(
    lab: Lab, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    yaml = (
        f"jobs:\n  main:\n    steps:\n      - run: echo once >> {ran}; sleep 2\n"
        "      - run: echo two\n"
    )
    run = await lab.start(yaml)
    assert not await lab.engine.tick(run.id or 0, budget=0.5)
    # a new process: another engine, other executors, the old lease left to expire
    async with lab.runtime.db.session() as session:
        row = await session.get(WorkflowRun, run.id)
        assert row is not None
        row.lease_owner = "dead-worker"
        row.lease_until = utcnow() - timedelta(seconds=1)
        session.add(row)
        await session.commit()
    lab.executors.clear()
    lab.engine = lab.new_engine()
    done = await lab.finish(run.id or 0)
    assert done.run.status == "completed"
    assert ran.read_text() == "once\n"
    assert done.printed("main") == ["two"]


async def test_passwords_reach_the_step_but_are_not_stored_in_clear(lab: Lab) -> None:
    yaml = """jobs:
  main:
    steps:
      - run: test "${{ inputs.secret }}" = hunter2 && echo matched
on:
  execute:
    inputs:
      secret:
        type: password
"""
    done = await lab.run(yaml, {"secret": "hunter2"})
    assert done.run.status == "completed" and done.printed("main") == ["matched"]
    assert done.run.inputs == {"secret": "********"}
    assert "hunter2" not in done.run.secret_inputs


async def test_password_values_are_masked_in_the_run_log(lab: Lab) -> None:
    """Spec 20 §5.6: password values are masked in logs, whatever prints them: the step's own
    output, a multi-line value line by line, and Corral's error lines quoting a command."""
    yaml = """jobs:
  main:
    steps:
      - run: |
          echo "token=${{ inputs.secret }}"
          printf '%s\\n' "${{ inputs.lines }}"
          echo "ab and 'hunter2hunter2' are not the secret's lines"
on:
  execute:
    inputs:
      secret:
        type: password
      lines:
        type: password
"""
    done = await lab.run(
        yaml, {"secret": "hunter2hunter2x", "lines": "first-line\nab\nsecond-line"}
    )
    assert done.run.status == "completed", done.lines
    printed = done.printed("main")
    assert printed[:3] == ["token=********", "********", "ab"]
    assert printed[3] == "********"
    assert "ab and 'hunter2hunter2' are not the secret's lines" in printed
    assert not any("hunter2hunter2x" in line or "first-line" in line for line in done.lines)


# --- uses: actions and sub-workflows (spec §4.6, §8) ---------------------------------------------


def _repository(root: Path) -> Path:
    """A git repository with a branch ``main``: README, utils/, platforms/, other/."""
    files = ("utils/a.sh", "platforms/b.txt", "other/c.txt", "README.md")
    return git_repository(root / "repo", {path: path + "\n" for path in files})


async def test_checkout_puts_the_repository_in_the_run_directory(lab: Lab, tmp_path: Path) -> None:
    repo = _repository(tmp_path)
    yaml = f"""
jobs:
  main:
    steps:
      - uses: parallelworks/checkout
        with:
          repo: {repo}
          branch: main
      - run: ls
      - uses: parallelworks/checkout
        with:
          repo: {repo}
          branch: main
          path: ~/sparse
          sparse_checkout:
            - utils
            - platforms
      - run: ls ~/sparse
"""
    done = await lab.run(yaml)
    assert done.run.status == "completed", done.lines
    printed = done.printed("main")
    assert printed[printed.index("README.md") : printed.index("README.md") + 4] == [
        "README.md", "other", "platforms", "utils"
    ]  # fmt: skip
    assert printed[-2:] == ["platforms", "utils"]
    assert any(line.startswith("checked out ") for line in printed)


async def test_checkout_with_bad_inputs_fails_the_step_naming_the_field(lab: Lab) -> None:
    yaml = """
jobs:
  main:
    steps:
      - uses: parallelworks/checkout
        with:
          repo: /nowhere
          colour: blue
"""
    done = await lab.run(yaml)
    assert done.run.status == "error"
    step = done.steps["main"][0]
    assert step.status == "error" and "with" in step.reason and "colour" in step.reason
    missing = await lab.run(yaml.replace("          colour: blue\n", ""))
    assert "branch" in missing.steps["main"][0].reason
    absent = await lab.run(yaml.replace("colour: blue", "branch: main"))
    assert absent.steps["main"][0].status == "error"
    assert "checkout of /nowhere (main) failed" in absent.steps["main"][0].reason


async def test_an_action_nobody_installed_is_an_error(lab: Lab) -> None:
    done = await lab.run("jobs:\n  main:\n    steps:\n      - uses: corral/teleport\n")
    assert done.run.status == "error"
    assert "no action 'teleport' is installed" in done.steps["main"][0].reason


async def test_cancel_jobs_cancels_the_named_job_and_the_rest_go_on(lab: Lab) -> None:
    yaml = """
permissions:
  - '*'
jobs:
  main:
    steps:
      - run: sleep 1
      - uses: parallelworks/cancel-jobs
        with:
          jobs:
            - j1
  j1:
    steps:
      - run: sleep 200
        early-cancel: any-job-failed
        cleanup: echo j1 cleaned up
  j2:
    steps:
      - run: sleep 3; echo j2 done
        early-cancel: any-job-failed
"""
    started = time.monotonic()
    done = await lab.run(yaml)
    assert time.monotonic() - started < 30
    assert {name: job.status for name, job in done.jobs.items()} == {
        "main": "completed", "j1": "canceled", "j2": "completed"
    }  # fmt: skip
    assert done.run.status == "completed"
    assert "j2 done" in done.printed("j2")
    assert "j1 cleaned up" in done.printed("j1")
    assert "canceled j1" in done.printed("main")


async def test_cancel_jobs_of_another_run_needs_its_number(lab: Lab) -> None:
    target = await lab.start("jobs:\n  long:\n    steps:\n      - run: sleep 200\n")
    await lab.engine.tick(target.id or 0, budget=0.5)
    workflow = target.slug.split(".")[1]
    yaml = f"""
jobs:
  main:
    steps:
      - uses: parallelworks/cancel-jobs
        with:
          workflow: {workflow}
"""
    refused = await lab.run(yaml)
    assert "with.run" in refused.steps["main"][0].reason
    done = await lab.run(yaml + "          run: 1\n")
    assert done.run.status == "completed", done.lines
    other = await lab.finish(target.id or 0)
    assert other.jobs["long"].status == "canceled"


async def test_a_sub_workflow_runs_with_its_inputs_and_hands_back_outputs(lab: Lab) -> None:
    await lab.create(
        "greeter",
        """
on:
  execute:
    inputs:
      who:
        type: string
      times:
        type: number
        optional: true
jobs:
  greet:
    steps:
      - run: |
          echo hello ${{ inputs.who }}
          echo greeting=hi-${{ inputs.who }} >> $OUTPUTS
""",
    )
    done = await lab.run(
        """
jobs:
  main:
    steps:
      - id: call
        uses: workflow/greeter
        with:
          who: world
      - run: echo got ${{ needs.main.steps.call.outputs.greeting }}
"""
    )
    assert done.run.status == "completed", done.lines
    printed = done.printed("main")
    assert "got hi-world" in printed
    assert any("[greeter/greet] hello world" in line for line in done.job_lines("main"))
    async with lab.runtime.db.session() as session:
        child = (
            await session.exec(
                select(WorkflowRun).where(col(WorkflowRun.parent_run_id) == done.run.id)
            )
        ).one()
    assert (child.status, child.depth, child.plan["chain"]) == (
        "completed", 2, [done.run.plan["workflow"], "greeter"]
    )  # fmt: skip
    bad = await lab.run(
        "jobs:\n  main:\n    steps:\n      - uses: workflow/greeter\n"
        "        with:\n          times: lots\n"
    )
    assert bad.run.status == "error" and "times" in bad.steps["main"][0].reason


async def test_recursion_and_depth_are_refused_before_the_run_starts(lab: Lab) -> None:
    def calling(name: str) -> str:
        return f"jobs:\n  main:\n    steps:\n      - uses: workflow/{name}\n"

    await lab.create("ping", calling("pong"))
    await lab.create("pong", calling("ping"))
    with pytest.raises(Invalid, match="ping → pong → ping calls ping again"):
        await lab.runs.start(lab.principal, ResourceRef(lab.principal.username, "ping"), {})
    # five layers run, six do not
    await lab.create("d5", "jobs:\n  main:\n    steps:\n      - run: echo deepest\n")
    for level in (4, 3, 2, 1):
        await lab.create(f"d{level}", calling(f"d{level + 1}"))
    done = await lab.finish(
        (await lab.runs.start(lab.principal, ResourceRef(lab.principal.username, "d1"), {})).id or 0
    )
    assert done.run.status == "completed"
    assert any("deepest" in line for line in done.lines)
    await lab.create("d0", calling("d1"))
    with pytest.raises(Invalid, match="nest 6 deep"):
        await lab.runs.start(lab.principal, ResourceRef(lab.principal.username, "d0"), {})
    async with lab.runtime.db.session() as session:
        started = list(await session.exec(select(WorkflowRun.slug)))
    assert not any(".ping." in slug or ".d0." in slug for slug in started)


async def test_cancelling_a_run_cancels_its_sub_workflow_and_cancel_jobs_stays_inside(
    lab: Lab,
) -> None:
    await lab.create(
        "inner",
        """
jobs:
  boss:
    steps:
      - run: sleep 1
      - uses: parallelworks/cancel-jobs
  slow:
    steps:
      - run: sleep 200
""",
    )
    done = await lab.run(
        """
jobs:
  outer:
    steps:
      - uses: workflow/inner
  sibling:
    steps:
      - run: sleep 4; echo sibling done
"""
    )
    # cancel-jobs in the sub-workflow cancelled only the sub-workflow's other job
    assert done.jobs["sibling"].status == "completed"
    assert done.run.status == "completed", done.lines
    run = await lab.start("jobs:\n  outer:\n    steps:\n      - uses: workflow/inner\n")
    await lab.engine.tick(run.id or 0, budget=0.5)
    await lab.engine.cancel(run.id or 0)
    cancelled = await lab.finish(run.id or 0)
    assert cancelled.run.status == "canceled"
    async with lab.runtime.db.session() as session:
        child = (
            await session.exec(select(WorkflowRun).where(col(WorkflowRun.parent_run_id) == run.id))
        ).one()
    assert child.status == "canceled"


# --- remote workflows: fetched from their repository at every run -------------------------------


@pytest.fixture
def https_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Callable[[str], None]]]:
    """A real https git server ("dumb" http, static files) on 127.0.0.1 with its own CA, which
    git trusts through ``GIT_SSL_CAINFO``: the URL of its repository, and a function that
    commits a new ``flows/hello.yaml`` and publishes it."""
    import functools
    import http.server
    import ssl
    import subprocess
    import threading

    work = git_repository(tmp_path / "work", {"flows/hello.yaml": _hello("v1")})
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "repo.git")],
                   check=True)  # fmt: skip
    subprocess.run(["git", "update-server-info"], cwd=served / "repo.git", check=True)
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served))
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))

    def publish(text: str) -> None:
        (work / "flows" / "hello.yaml").write_text(text)
        env = {**os.environ, "HOME": str(work), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}  # fmt: skip
        bare = served / "repo.git"
        subprocess.run(["git", "commit", "-qam", "next"], cwd=work, env=env, check=True)
        subprocess.run(["git", "push", "-q", str(bare), "main"], cwd=work, env=env, check=True)
        subprocess.run(["git", "update-server-info"], cwd=bare, check=True)

    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/repo.git", publish
    finally:
        server.shutdown()
        server.server_close()


def _hello(version: str) -> str:
    return f"jobs:\n  main:\n    steps:\n      - run: echo hello {version}\n"


async def test_a_remote_workflow_runs_what_its_repository_holds_at_each_run(
    lab: Lab, https_git: tuple[str, Callable[[str], None]]
) -> None:
    url, publish = https_git
    await lab.runtime.workflows.create(
        lab.principal,
        WorkflowCreate(name="far", source="remote", url=url, path="flows/hello.yaml"),
    )
    ref = ResourceRef(lab.principal.username, "far")
    first = await lab.finish((await lab.runs.start(lab.principal, ref, {})).id or 0)
    assert first.run.status == "completed" and first.printed("main") == ["hello v1"]
    assert first.run.version == 0 and "hello v1" in first.run.yaml
    commit = first.run.plan["commit"]
    assert len(commit) == 40 and any(f"fetched at {commit}" in line for line in first.lines)

    await asyncio.to_thread(publish, _hello("v2"))
    second = await lab.finish((await lab.runs.start(lab.principal, ref, {})).id or 0)
    assert second.printed("main") == ["hello v2"]

    await lab.runtime.workflows.create(
        lab.principal,
        WorkflowCreate(name="nofile", source="remote", url=url, path="flows/missing.yaml"),
    )
    with pytest.raises(Invalid, match=r"flows/missing\.yaml is not in"):
        await lab.runs.start(lab.principal, ResourceRef(lab.principal.username, "nofile"), {})
    await lab.runtime.workflows.create(
        lab.principal,
        WorkflowCreate(name="gone", source="remote", url=url.replace("repo", "nothing")),
    )
    with pytest.raises(ProviderError, match="cannot fetch HEAD from"):
        await lab.runs.start(lab.principal, ResourceRef(lab.principal.username, "gone"), {})


TOKEN = """{permissions}jobs:
  main:
    steps:
      - run: |
          echo "$PW_PLATFORM_HOST $PW_API_KEY $PW_USER"
          sleep 30
"""


@pytest.mark.parametrize(("permissions", "scope"), [("", "sessions"), ("permissions: ['*']\n", "")])
async def test_steps_get_a_token_of_their_run_scoped_by_permissions_and_revoked_at_the_end(
    lab: Lab, permissions: str, scope: str
) -> None:
    """§3.7: the run's token acts as its user with ``permissions: ['*']``, and can only update
    the run's sessions without it; it stops working when the run ends."""
    run = await lab.start(TOKEN.format(permissions=permissions))
    deadline = time.monotonic() + 20
    while not (printed := (await lab.result(run.id or 0)).printed("main")):
        assert time.monotonic() < deadline, "the step printed nothing"
        await lab.engine.tick(run.id or 0, budget=0.2)
    host, token, user = printed[0].split()
    assert host == PLATFORM_URL and user == lab.principal.username
    assert token not in json.dumps(run.plan)  # kept sealed
    principal = await lab.runtime.authn.authenticate(token)
    assert principal.username == lab.principal.username and principal.credential_kind == "run"
    assert principal.scope == (f"run:{run.id}:sessions" if scope else "")
    await lab.engine.cancel(run.id or 0)
    done = await lab.finish(run.id or 0)
    assert done.run.status == "canceled"
    with pytest.raises(NotAuthenticated):
        await lab.runtime.authn.authenticate(token)
