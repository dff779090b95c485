"""Every complete YAML example of spec 20 §3-8 run in a real workspace, and what the spec says it
does: printed values, job and step statuses, which steps ran, timeouts, retries, matrices,
cleanups, inputs (with the "AT:" bullets that apply to each example).

Examples run elsewhere with these assertions (not repeated here): §3.4 env precedence, §4.1
needs, §4.4 conditionals and cleanup order after a failure, §4.5 the 2x3 matrix, §6.4 both
outputs examples (``test_workflow_engine.py``); the sessions and ``update-session`` (§7-8.3,
``test_workflow_sessions.py``); the ``ssh:`` example (§4.3) and ``scheduler-agent`` with
``wait-for-agent`` (§8.4) on the lab's Slurm (``tests/test_workflows_lab.py``); ``marketplace/``
(§4.6, ``uses_marketplace.yaml``) in ``test_marketplace.py``; the bucket input (§5.4,
``bucket_input.yaml``) with the real ``aws`` CLI against a bucket on moto
(``tests/test_storage_buckets.py::test_the_spec_bucket_input_example_syncs_with_the_aws_cli``)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import func, select
from workflow_lab import Finished, Lab

from corral_core.identity.names import ResourceRef
from corral_core.testing import git_repository
from corral_core.workflows.models import RunJob, RunStep, WorkflowRun
from corral_sdk.errors import Conflict, Invalid

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).parent / "workflows"


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


def seconds(row: RunStep | RunJob) -> float:
    """How long a job or step ran, from its own timestamps."""
    started, finished = row.started_at, row.finished_at
    assert started is not None and finished is not None
    return (finished - started).total_seconds()


def statuses(done: Finished) -> dict[str, str]:
    return {name: job.status for name, job in done.jobs.items()}


async def until(
    lab: Lab, run_id: int, check: Callable[[Finished], bool], timeout: float = 20
) -> Finished:
    """Tick the run until ``check`` holds of what it has done so far."""
    deadline = time.monotonic() + timeout
    while True:
        await lab.engine.tick(run_id, budget=0.2)
        seen = await lab.result(run_id)
        if check(seen):
            return seen
        assert time.monotonic() < deadline and not seen.run.finished, seen.lines


async def runs_count(lab: Lab) -> int:
    async with lab.runtime.db.session() as session:
        return int((await session.exec(select(func.count()).select_from(WorkflowRun))).one())


# --- §3 top-level keys ---------------------------------------------------------------------------


async def test_jobs_example_runs_its_steps_in_order(lab: Lab) -> None:
    """§3.2: a job's steps run in order; the first failing step fails the job and skips the
    rest; a job with an empty ``steps`` is refused."""
    done = await lab.run(example("jobs_basic.yaml"))
    assert done.run.status == "completed" and statuses(done) == {"job-name": "completed"}
    assert done.printed("job-name") == ["step 1", "step 2"]
    first, second = done.steps["job-name"]
    assert [(first.name, first.status), (second.name, second.status)] == [
        ("Step 1", "completed"), ("Step 2", "completed")
    ]  # fmt: skip
    assert first.finished_at and second.started_at and first.finished_at <= second.started_at

    failing = await lab.run(example("jobs_basic.yaml").replace("run: echo step 1", "run: exit 1"))
    assert (failing.run.status, failing.jobs["job-name"].status) == ("error", "error")
    assert [s.status for s in failing.steps["job-name"]] == ["error", "skipped"]
    assert "step 2" not in failing.printed("job-name")

    with pytest.raises(Invalid, match="at least one step"):
        await lab.start("jobs:\n  job-name:\n    steps: []\n")


def timeouts(step: str, job: str = "1m", workflow: str = "1d") -> str:
    """The §3.5 example with its step, job and workflow timeouts set."""
    text = example("timeouts.yaml")
    for level, value in (("10s", step), ("1m", job), ("1d", workflow)):
        text = text.replace(f"timeout: {level}\n", f"timeout: {value}\n")
    return text


async def test_timeouts_example_kills_the_step_at_its_timeout(lab: Lab) -> None:
    """§3.5: the step is killed at its timeout and the job fails (the example's step timeout
    10s is 3s here; its ``sleep 30`` is never waited for)."""
    began = time.monotonic()
    done = await lab.run(timeouts(step="3s"))
    assert time.monotonic() - began < 10
    assert (done.run.status, done.jobs["main"].status) == ("error", "error")
    [step] = done.steps["main"]
    assert step.status == "error" and "timed out after 3s" in step.reason
    assert 2.9 <= seconds(step) < 5


async def test_timeouts_example_a_tighter_job_timeout_applies(lab: Lab) -> None:
    """§3.5: timeouts are applied, not overwritten: "with a job timeout of 5s, the command
    would be cancelled at 5 s" (step 3s and job 1s here)."""
    done = await lab.run(timeouts(step="3s", job="1s"))
    assert (done.run.status, done.jobs["main"].status) == ("error", "error")
    assert "timed out after 1s" in done.jobs["main"].reason
    [step] = done.steps["main"]
    assert step.status != "completed" and seconds(step) >= 0.5
    assert not re.search(r"\b3s\b", step.reason), step.reason  # stopped at 1 s, not 3 s


async def test_timeouts_example_a_tighter_workflow_timeout_applies(lab: Lab) -> None:
    """§3.5: the workflow's timeout applies too (step 3s, workflow 1s here): the run ends in
    error at about 1 s."""
    done = await lab.run(timeouts(step="3s", workflow="1s"))
    assert done.run.status == "error" and "timed out after 1s" in done.run.reason
    [step] = done.steps["main"]
    assert step.status != "completed" and seconds(step) >= 0.5
    assert not re.search(r"\b3s\b", step.reason), step.reason  # stopped at 1 s, not 3 s


async def test_organization_variables_example_refuses_until_both_are_set(lab: Lab) -> None:
    """§3.6 with the example's own names: execute is refused naming what is missing, and no
    run is created, until an admin has set both."""
    service = lab.runtime.org_variables
    before = await runs_count(lab)
    with pytest.raises(Conflict) as caught:
        await lab.start(example("org_variables.yaml"))
    assert caught.value.details["missing"] == ["AWS_REGION", "LICENSE_KEY"]
    assert "AWS_REGION" in caught.value.message and "LICENSE_KEY" in caught.value.message
    await service.set_variable(lab.principal, "default", "AWS_REGION", "us-east-1")
    with pytest.raises(Conflict) as caught:
        await lab.start(example("org_variables.yaml"))
    assert caught.value.details["missing"] == ["LICENSE_KEY"]
    assert await runs_count(lab) == before
    await service.set_variable(lab.principal, "default", "LICENSE_KEY", "k-123")
    done = await lab.run(example("org_variables.yaml"))
    assert done.run.status == "completed"


async def test_configurations_example_prefills_the_inputs(lab: Lab) -> None:
    """§3.8: choosing ``config_1`` runs with its inputs (``echo hello!``); the ``'on!'`` typo
    reads as ``on``; what the user then changes on the form wins."""
    await lab.create("configured", example("configurations.yaml"))
    ref = ResourceRef(lab.principal.username, "configured")

    async def execute(inputs: dict[str, str], configuration: str = "") -> Finished:
        run = await lab.runs.start(lab.principal, ref, inputs, configuration=configuration)
        return await lab.finish(run.id or 0)

    done = await execute({}, "config_1")
    assert done.run.status == "completed"
    assert done.run.inputs == {"input_1": "hello!"}
    assert done.printed("echo") == ["hello!"]
    assert (await execute({"input_1": "edited"}, "config_1")).printed("echo") == ["edited"]
    assert (await execute({"input_1": "by hand"})).printed("echo") == ["by hand"]


# --- §4 jobs and steps ---------------------------------------------------------------------------


async def test_cleanup_example_after_a_cancel_in_its_last_step(lab: Lab) -> None:
    """§4.4 AT "the cleanup order exactly matches the example, including after a cancel": the
    run is cancelled while ``echo second`` (given a ``sleep 30`` to be cancelled in) runs."""
    text = example("cleanup_order.yaml").replace("run: echo second", "run: echo second; sleep 30")
    run = await lab.start(text)
    await until(lab, run.id or 0, lambda seen: "second" in seen.printed("main"))
    await lab.engine.cancel(run.id or 0)
    done = await lab.finish(run.id or 0, timeout=30)
    assert done.run.status == "canceled"
    printed = [line for line in done.printed("main") if not line.startswith(("error:", "canceled"))]
    assert "fail" in printed[0], printed  # `fail` ran first (command not found)
    assert printed[1:] == ["first", "second", "third", "fourth", "fifth"], done.lines
    kinds = [(s.kind, s.status) for s in done.steps["main"]]
    assert kinds[:3] == [("step", "error"), ("step", "completed"), ("step", "canceled")]
    assert kinds[3:] == [("cleanup", "completed")] * 3


async def test_cleanup_example_cancelled_in_its_first_step(lab: Lab) -> None:
    """§4.4: ``always`` steps can be cancelled, and a step that never ran gets no cleanup: a
    cancel during the first step (``fail`` given a ``sleep 30`` first) leaves only its cleanup,
    ``echo fifth``."""
    text = example("cleanup_order.yaml").replace("run: fail", "run: sleep 30; fail")
    run = await lab.start(text)
    await until(
        lab,
        run.id or 0,
        lambda seen: [s.status for s in seen.steps.get("main", [])][:1] == ["running"],
    )
    await lab.engine.cancel(run.id or 0)
    done = await lab.finish(run.id or 0, timeout=30)
    assert done.run.status == "canceled"
    assert [line for line in done.printed("main") if not line.startswith("canceled")] == ["fifth"]
    steps = [(s.kind, s.index, s.status) for s in done.steps["main"]]
    assert steps == [
        ("step", 0, "canceled"), ("step", 1, "canceled"), ("step", 2, "canceled"),
        ("cleanup", 0, "completed"),
    ], steps  # fmt: skip


async def test_matrix_include_example(lab: Lab) -> None:
    """§4.5: an include matching a combination adds ``experimental: true`` to it; one matching
    none adds a combination (the example's ``strategy`` under a job that echoes it)."""
    done = await lab.run(example("matrix_include.yaml"))
    assert done.run.status == "completed"
    matrices = sorted((j.matrix for j in done.jobs.values()), key=lambda m: (m["os"], m["version"]))
    assert matrices == [
        {"os": "centos", "version": 1},
        {"os": "centos", "version": 2},
        {"os": "fedora", "version": 3},
        {"os": "ubuntu", "version": 1},
        {"experimental": True, "os": "ubuntu", "version": 2},
    ]
    printed = sorted(line.strip() for job in done.jobs for line in done.printed(job))
    assert printed == ["centos v1", "centos v2", "fedora v3", "ubuntu v1", "ubuntu v2 true"]
    assert {j.status for j in done.jobs.values()} == {"completed"}


async def test_matrix_example_with_an_exclude_and_an_include(lab: Lab) -> None:
    """§4.5 AT: the 2x3 example with one exclude and one include makes the expected set."""
    text = example("matrix.yaml").replace(
        "        version: [1, 2, 3]\n",
        "        version: [1, 2, 3]\n"
        "        exclude:\n          - os: centos\n            version: 3\n"
        "        include:\n          - os: fedora\n            version: 1\n",
    )
    done = await lab.run(text)
    assert done.run.status == "completed"
    printed = sorted(line for job in done.jobs for line in done.printed(job))
    assert printed == sorted(
        ["ubuntu v1", "ubuntu v2", "ubuntu v3", "centos v1", "centos v2", "fedora v1"]
    )
    assert len(done.jobs) == 6


async def test_matrix_max_parallel_example_and_fail_fast_off(lab: Lab, tmp_path: Path) -> None:
    """§4.5: three regions, at most two at once; with ``fail-fast: false`` a failing region
    lets the others finish. The step also records its start and end (and sleeps 0.6 s) to see
    how many run at once."""
    done = await lab.run(example("matrix_parallel.yaml"))
    assert done.run.status == "completed"
    regions = ("us-east-1", "us-west-2", "eu-west-1")
    assert statuses(done) == {f"deploy ({r})": "completed" for r in regions}
    assert {r: done.printed(f"deploy ({r})") for r in regions} == {r: [r] for r in regions}

    seen = tmp_path / "concurrency"
    recorded = example("matrix_parallel.yaml").replace(
        "run: echo ${matrix.region}",
        f"run: echo ${{matrix.region}}; echo start >> {seen}; sleep 0.6; echo end >> {seen}",
    )
    assert (await lab.run(recorded)).run.status == "completed"
    level = peak = 0
    for event in seen.read_text().split():
        level += 1 if event == "start" else -1
        peak = max(peak, level)
    assert peak == 2

    failing = example("matrix_parallel.yaml").replace(
        "run: echo ${matrix.region}",
        "run: echo ${matrix.region}; sleep 0.3; test ${matrix.region} != us-west-2",
    )
    done = await lab.run(failing)
    assert done.run.status == "error"
    assert statuses(done) == {
        "deploy (us-east-1)": "completed", "deploy (us-west-2)": "error",
        "deploy (eu-west-1)": "completed",
    }  # fmt: skip


async def test_matrix_fail_fast_cancels_the_other_instances(lab: Lab) -> None:
    """§4.5 AT: with fail-fast true (the default: the example without ``fail-fast: false``),
    one failure cancels the others: the running one (a ``sleep 30`` added) promptly, and the
    one still waiting for a slot."""
    text = (
        example("matrix_parallel.yaml")
        .replace("      fail-fast: false\n", "")
        .replace(
            "run: echo ${matrix.region}",
            "run: |\n          echo ${matrix.region}\n"
            "          if [ ${matrix.region} = us-west-2 ]; then exit 1; fi\n          sleep 30",
        )
    )
    began = time.monotonic()
    done = await lab.run(text)
    assert time.monotonic() - began < 10
    assert done.run.status == "error"
    east = done.steps["deploy (us-east-1)"][0]
    assert east.status == "canceled" and seconds(east) < 5
    assert statuses(done) == {
        "deploy (us-east-1)": "canceled", "deploy (us-west-2)": "error",
        "deploy (eu-west-1)": "canceled",
    }, {name: job.reason for name, job in done.jobs.items()}  # fmt: skip
    assert done.printed("deploy (eu-west-1)") == []


# --- §4.2 AT bullets with no example of their own, not covered elsewhere ------------------------


async def test_retry_timeout_kills_each_attempt(lab: Lab) -> None:
    """§4.2 AT "retry timeout: 2s with sleep 5 → each attempt is killed at 2 s" (1s here), and
    the attempts show in the log."""
    yaml = """jobs:
  main:
    steps:
      - run: echo trying; sleep 5
        retry:
          max-retries: 1
          interval: 100ms
          timeout: 1s
"""
    began = time.monotonic()
    done = await lab.run(yaml)
    assert time.monotonic() - began < 5
    [step] = done.steps["main"]
    assert (done.run.status, step.status, step.attempt) == ("error", "error", 1)
    assert 2 <= seconds(step) < 4  # two attempts of 1 s and the interval
    assert done.printed("main").count("trying") == 2
    assert any("(attempt 2)" in line for line in done.job_lines("main")), done.lines
    assert "timed out after 1s" in step.reason  # the log said "timed out after 0s"


async def test_early_cancel_when_another_job_fails(lab: Lab) -> None:
    """§4.2 AT: ``early-cancel: any-job-failed``: j1 sleeps, j2 fails → j1's step is cancelled
    promptly."""
    yaml = """jobs:
  j1:
    steps:
      - run: sleep 30
        early-cancel: any-job-failed
  j2:
    steps:
      - run: sleep 0.5; exit 1
"""
    began = time.monotonic()
    done = await lab.run(yaml)
    assert time.monotonic() - began < 10
    assert done.run.status == "error" and done.jobs["j2"].status == "error"
    assert done.steps["j1"][0].status == "canceled"
    assert seconds(done.steps["j1"][0]) < 5


async def test_a_custom_working_directory_is_created(lab: Lab) -> None:
    """§4.1 AT: a custom ``working-directory`` is created if missing; the step's one wins."""
    yaml = """jobs:
  main:
    working-directory: ~/custom/job
    steps:
      - run: pwd
      - run: pwd
        working-directory: ~/custom/step
"""
    done = await lab.run(yaml)
    assert done.run.status == "completed", done.lines
    home = lab.root / lab.principal.username
    assert done.printed("main") == [str(home / "custom/job"), str(home / "custom/step")]


# --- §5 inputs and §6.3 schema references --------------------------------------------------------


async def test_dynamic_dropdown_example(lab: Lab) -> None:
    """§5.3: ``partition``'s options are those of the chosen ``scheduler``."""
    text = example("dynamic_dropdown.yaml")
    done = await lab.run(text, {"scheduler": "pbs", "partition": "workq"})
    assert done.run.status == "completed" and done.printed("main") == ["pbs workq"]
    slurm = await lab.run(text, {"scheduler": "slurm", "partition": "gpu"})
    assert slurm.printed("main") == ["slurm gpu"]
    with pytest.raises(Invalid) as caught:
        await lab.start(text, {"scheduler": "pbs", "partition": "gpu"})
    assert caught.value.field == "inputs.partition" and "workq" in caught.value.message


async def test_wizard_example_flattens_its_steps(lab: Lab) -> None:
    """§5.5 AT: with the wizard flattening (the default), ``inputs.name`` resolves; with
    ``flatten: false``, ``inputs.step1.name`` does."""
    done = await lab.run(example("wizard.yaml"), {"name": "Ada"})
    assert done.run.status == "completed" and done.printed("main") == ["Ada"]
    nested = (
        example("wizard.yaml")
        .replace("          mode: wizard\n", "          mode: wizard\n          flatten: false\n")
        .replace("${ inputs.name }", "${ inputs.step1.name }")
    )
    done = await lab.run(nested, {"step1": {"name": "Ada"}})
    assert done.run.status == "completed" and done.printed("main") == ["Ada"]


async def test_ignored_inputs_are_absent_at_run_time(lab: Lab) -> None:
    """§5 AT: an input with ``ignore: true`` is not in ``inputs``: ``echo ${ inputs.x }``
    prints an empty value."""
    yaml = """jobs:
  main:
    steps:
      - run: echo "x=(${ inputs.x })"
on:
  execute:
    inputs:
      x:
        type: string
        ignore: true
        default: shown-only-on-the-form
"""
    done = await lab.run(yaml, {"x": "typed"})
    assert done.run.status == "completed" and done.printed("main") == ["x=()"]
    assert "x" not in done.run.inputs


async def test_schema_references_example(lab: Lab) -> None:
    """§6.3: field_2 to field_7 resolve as their comments say, and the calculated value
    follows ``base_value`` (the example's inputs under a job that echoes it)."""
    done = await lab.run(example("schema_references.yaml"), {"field_1": 3})
    assert done.run.status == "completed" and done.printed("main") == ["20"]
    values = done.run.inputs
    assert values["field_2"] == "3"
    assert json.loads(values["field_3"]) == {"type": "number"}  # the field_1 schema object
    assert values["field_4"] == "number"
    assert json.loads(values["field_5"]) == {"type": "number"}
    assert values["field_6"] == "number"
    assert values["field_7"] == "string"
    assert (values["show_advanced"], values["base_value"], values["calculated_value"]) == (
        False, 10, 20
    )  # fmt: skip
    changed = await lab.run(example("schema_references.yaml"), {"base_value": 7})
    assert changed.printed("main") == ["14"]


# --- §8 built-in actions -------------------------------------------------------------------------


async def test_checkout_example_sparse_in_the_run_directory(lab: Lab, tmp_path: Path) -> None:
    """§8.1: the example checks out only ``utils`` and ``platforms`` into the run directory.
    Its github.com URL is replaced by a local repository with the same layout."""
    files = ("utils/a.sh", "platforms/b.txt", "other/c.txt", "README.md")
    repo = git_repository(tmp_path / "repo", {path: path + "\n" for path in files})
    text = example("checkout.yaml").replace(
        "https://github.com/parallelworks/interactive_session.git", str(repo)
    )
    done = await lab.run(text)
    assert done.run.status == "completed", done.lines
    directory = lab.root / lab.principal.username / "pw/jobs" / done.run.plan["workflow"] / "00001"
    assert sorted(p.name for p in directory.iterdir() if p.name != ".git") == [
        "platforms", "utils"
    ]  # fmt: skip
    assert (directory / "utils/a.sh").read_text() == "utils/a.sh\n"


async def test_cancel_jobs_example(lab: Lab) -> None:
    """§8.2 AT: after about 2 s, j1 is canceled and j2 keeps running (the example verbatim; the
    run is then cancelled rather than waiting out j2's ``sleep 200``)."""
    run = await lab.start(example("cancel_jobs.yaml"))
    began = time.monotonic()
    seen = await until(
        lab,
        run.id or 0,
        lambda seen: all(seen.jobs[j].status not in ("pending", "running") for j in ("main", "j1")),
    )
    assert 1.9 <= time.monotonic() - began < 8
    assert statuses(seen) == {"main": "completed", "j1": "canceled", "j2": "running"}
    assert seen.steps["j1"][0].status == "canceled"
    assert seen.steps["j2"][0].status == "running"
    await lab.engine.cancel(run.id or 0)
    done = await lab.finish(run.id or 0, timeout=30)
    assert done.run.status == "canceled" and done.jobs["j2"].status == "canceled"
