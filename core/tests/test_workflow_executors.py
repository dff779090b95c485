"""Step executors: steps run detached in the workspace or through a runner (a real local shell
here), exactly once, and can be followed, reattached to, timed out, killed and found lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral_core.workflows.executors import (
    RunnerExecutor,
    StepExecutor,
    StepLaunch,
    StepStatus,
    WorkspaceExecutor,
    parse_outputs,
    shell_path,
)
from corral_sdk.errors import Invalid
from corral_sdk.testing.shell import ShellRunner, shell_runner

pytestmark = pytest.mark.anyio


@dataclass
class Target:
    home: Path
    """The steps' ``~``."""
    executor: StepExecutor
    fresh: Callable[[], StepExecutor]
    """Another executor over the same target, as a restarted Corral would make."""
    runner: ShellRunner | None = None


def _start_time(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()[19]


def _gone(pid: int) -> bool:
    """The process has exited (it may linger as a zombie where nothing reaps orphans)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return text[text.rfind(")") + 2 :].split()[0] in "ZX"


def _stop_leftovers(home: Path) -> None:
    """Kill the process groups of steps a failed test left running (only ours: each is checked
    against the start time its wrapper recorded)."""
    for record in home.rglob("pgid"):
        words = record.read_text().split()
        if len(words) == 2 and not (record.parent / "exit_status").exists():
            target = int(words[0])
            if _start_time(abs(target)) == words[1]:
                with contextlib.suppress(OSError):
                    os.killpg(abs(target), signal.SIGKILL) if target < 0 else os.kill(
                        target, signal.SIGKILL
                    )


@pytest.fixture(params=["workspace", "runner"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "workspace":
        home = tmp_path / "home"
        home.mkdir()
        made = Target(
            home=home,
            executor=WorkspaceExecutor(home, kill_grace=1),
            fresh=lambda: WorkspaceExecutor(home, kill_grace=1),
        )
    else:
        runner = shell_runner("/bin/sh", tmp_path, {})
        made = Target(
            home=runner.home,
            executor=RunnerExecutor(runner, kill_grace=1),
            fresh=lambda: RunnerExecutor(
                ShellRunner(runner.shell, runner.home, runner.bin_dir), kill_grace=1
            ),
            runner=runner,
        )
    try:
        yield made
    finally:
        _stop_leftovers(made.home)


def step(directory: str, script: str, **fields: object) -> StepLaunch:
    return StepLaunch(directory=directory, script=script, cwd="~/work", **fields)  # type: ignore[arg-type]


async def finished(executor: StepExecutor, directory: str, within: float = 8.0) -> StepStatus:
    deadline = time.monotonic() + within
    while True:
        status = (await executor.status([directory]))[directory]
        if status.finished:
            return status
        assert time.monotonic() < deadline, f"{directory} still running: {status}"
        await asyncio.sleep(0.05)


async def running(target: Target, directory: str, relative: str) -> None:
    """Wait until the step's process group is recorded, and check it still runs."""
    record = target.home / relative / "pgid"
    deadline = time.monotonic() + 5
    while not record.exists() or not record.read_text().endswith("\n"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    status = (await target.executor.status([directory]))[directory]
    assert status.launched and not status.finished


async def output(executor: StepExecutor, directory: str) -> bytes:
    data, _ = await executor.read_output(directory)
    return data


@pytest.mark.parametrize("code", [0, 3])
async def test_a_step_runs_and_its_output_and_exit_status_are_read(
    target: Target, code: int
) -> None:
    directory = "~/runs/1/step"
    await target.executor.launch(step(directory, f"echo out\necho err >&2\nexit {code}"))
    status = await finished(target.executor, directory)
    assert status.launched and status.exit_status == code
    assert not (status.timed_out or status.canceled or status.lost)
    assert await output(target.executor, directory) == b"out\nerr\n"
    assert status.output_size == len(b"out\nerr\n")
    assert sorted(p.name for p in (target.home / "runs/1/step").iterdir()) == [
        "env", "exit_status", "lock", "output", "pgid", "pid", "script", "wrapper.sh",
    ]  # fmt: skip


async def test_a_step_never_launched_is_reported_so(target: Target) -> None:
    status = await target.executor.status(["~/nowhere", "/nonexistent/step"])
    assert status == {
        "~/nowhere": StepStatus(launched=False, finished=False),
        "/nonexistent/step": StepStatus(launched=False, finished=False),
    }
    assert await target.executor.read_output("~/nowhere", 5) == (b"", 5)
    assert await target.executor.read_outputs("~/nowhere") == {}


async def test_launching_again_or_concurrently_runs_the_step_once(target: Target) -> None:
    directory = "~/runs/once"
    launch = step(directory, 'echo ran >> "$HOME/count"\nsleep 0.3')
    await asyncio.gather(*(target.executor.launch(launch) for _ in range(5)))
    assert (await target.executor.status([directory]))[directory].launched
    await target.executor.launch(launch)
    await finished(target.executor, directory)
    await target.executor.launch(launch)
    await target.fresh().launch(launch)
    await asyncio.sleep(0.3)
    assert (target.home / "count").read_text() == "ran\n"


async def test_a_restarted_corral_reattaches_to_a_running_step(target: Target) -> None:
    directory = "~/runs/reattach"
    await target.executor.launch(
        step(directory, 'echo start\nsleep 1\necho end\necho ran >> "$HOME/count"\nexit 5')
    )
    await running(target, directory, "runs/reattach")
    del target.executor  # the Corral process is gone; the step is not
    restarted = target.fresh()
    await restarted.launch(step(directory, 'echo ran >> "$HOME/count"'))  # resuming the run
    status = await finished(restarted, directory)
    assert status.exit_status == 5 and not status.lost
    assert await output(restarted, directory) == b"start\nend\n"
    assert (target.home / "count").read_text() == "ran\n"


async def test_outputs_are_read_from_the_outputs_file(target: Target) -> None:
    directory = "~/runs/outputs"
    script = "echo PORT=3001 >> $OUTPUTS\necho URL=https://a/b?x=1 >> $OUTPUTS"
    await target.executor.launch(step(directory, script))
    await finished(target.executor, directory)
    assert await target.executor.read_outputs(directory) == {
        "PORT": "3001",
        "URL": "https://a/b?x=1",
    }


def test_outputs_parse_on_the_first_equals_sign_and_later_keys_win() -> None:
    text = "A=1\n\nnot a pair\n=empty key\nB=x=y\nA=2\nC=\nbad key=3\n D = spaced\r\n"
    assert parse_outputs(text) == {"A": "2", "B": "x=y", "C": "", "D": " spaced"}


async def test_env_values_arrive_unchanged_and_the_working_directory_is_made(
    target: Target,
) -> None:
    env = {
        "SPACES": "a b  c",
        "QUOTES": "it's \"quoted\" '' \\",
        "DOLLARS": "$HOME ${x} $(echo no) `echo no`",
        "LINES": "one\ntwo\n\nthree\n",
    }
    script = "\n".join(f'printf %s "${name}" > "$HOME/{name}.txt"' for name in env)
    script += '\nprintf %s "$HOME" > "$HOME/home.txt"\npwd'
    directory = "~/runs/env"
    await target.executor.launch(
        StepLaunch(directory=directory, script=script, cwd="~/pw/jobs/x/00001", env=env)
    )
    assert (await finished(target.executor, directory)).exit_status == 0
    for name, value in env.items():
        assert (target.home / f"{name}.txt").read_text() == value
    assert (target.home / "home.txt").read_text() == str(target.home)
    assert await output(target.executor, directory) == f"{target.home}/pw/jobs/x/00001\n".encode()


async def test_paths_with_spaces_and_absolute_paths(target: Target) -> None:
    base = target.home / "with space"
    directory = f"{base}/step 'one'"
    launch = StepLaunch(directory=directory, script="pwd", cwd=f"{base}/work dir")
    await target.executor.launch(launch)
    assert (await finished(target.executor, directory)).exit_status == 0
    assert await output(target.executor, directory) == f"{base}/work dir\n".encode()
    assert (base / "step 'one'" / "exit_status").exists()


async def test_environment_names_are_checked(target: Target) -> None:
    for name in ("A-B", "1A", "__corral_d"):
        with pytest.raises(Invalid):
            await target.executor.launch(
                StepLaunch(directory="~/runs/bad", script="true", cwd="~", env={name: "x"})
            )
    assert not (await target.executor.status(["~/runs/bad"]))["~/runs/bad"].launched


async def test_a_timeout_kills_the_step_and_its_children(target: Target) -> None:
    directory = "~/runs/timeout"
    script = 'sleep 300 &\necho $! > "$HOME/child.pid"\nsleep 30'
    started = time.monotonic()
    await target.executor.launch(step(directory, script, timeout_seconds=1))
    status = await finished(target.executor, directory)
    assert time.monotonic() - started < 8
    assert status.exit_status == 124 and status.timed_out
    assert not status.canceled and not status.lost
    assert (target.home / "runs/timeout/timed_out").exists()
    child = int((target.home / "child.pid").read_text())
    deadline = time.monotonic() + 3
    while not _gone(child):
        assert time.monotonic() < deadline, "the step's child outlived the timeout"
        await asyncio.sleep(0.05)


async def test_a_step_ending_within_its_timeout_is_not_timed_out(target: Target) -> None:
    directory = "~/runs/in-time"
    await target.executor.launch(step(directory, "exit 7", timeout_seconds=5))
    status = await finished(target.executor, directory)
    assert status.exit_status == 7 and not status.timed_out
    assert not (target.home / "runs/in-time/timed_out").exists()


async def test_kill_cancels_a_running_step_and_is_idempotent(target: Target) -> None:
    directory = "~/runs/kill"
    await target.executor.launch(step(directory, "sleep 300"))
    await running(target, directory, "runs/kill")
    await target.executor.kill(directory)
    status = await finished(target.executor, directory)
    assert status.exit_status not in (None, 0)
    assert status.canceled and not status.lost and not status.timed_out
    assert (target.home / "runs/kill/canceled").exists()
    await target.executor.kill(directory)  # again: nothing changes
    assert (await target.executor.status([directory]))[directory] == status
    await target.executor.kill("~/runs/never")  # never launched: nothing to do
    assert not (target.home / "runs/never").exists()


async def test_kill_escalates_to_kill_after_the_grace_period(target: Target) -> None:
    directory = "~/runs/stubborn"
    await target.executor.launch(step(directory, "trap '' TERM\necho ready\nsleep 300"))
    deadline = time.monotonic() + 5
    while await output(target.executor, directory) != b"ready\n":  # TERM is ignored by now
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await target.executor.kill(directory)
    status = await finished(target.executor, directory)
    assert status.exit_status == 137 and status.canceled and not status.lost


async def test_killing_a_finished_step_changes_nothing(target: Target) -> None:
    directory = "~/runs/done"
    await target.executor.launch(step(directory, "echo done"))
    before = await finished(target.executor, directory)
    await target.executor.kill(directory)
    assert (await target.executor.status([directory]))[directory] == before
    assert not (target.home / "runs/done/canceled").exists()


async def test_the_status_of_many_steps_takes_one_call(target: Target) -> None:
    directories = [f"~/runs/many/{index}" for index in range(20)]
    for index, directory in enumerate(directories[:10]):
        await target.executor.launch(step(directory, f"echo {index}\nexit {index}"))
    for directory in directories[:10]:
        await finished(target.executor, directory)
    calls = len(target.runner.results) if target.runner else 0
    statuses = await target.executor.status(directories)
    if target.runner:
        assert len(target.runner.results) == calls + 1
    assert list(statuses) == directories
    for index, directory in enumerate(directories):
        if index < 10:
            expected = StepStatus(
                launched=True, finished=True, exit_status=index, output_size=len(f"{index}\n")
            )
        else:
            expected = StepStatus(launched=False, finished=False)
        assert statuses[directory] == expected


async def test_live_output_is_read_in_increments(target: Target) -> None:
    directory = "~/runs/live"
    lines = [f"line {n}" for n in range(1, 21)]
    await target.executor.launch(
        step(directory, "for n in $(seq 1 20); do echo line $n; sleep 0.05; done")
    )
    received, offset, reads = b"", 0, 0
    while True:
        done = (await target.executor.status([directory]))[directory].finished
        while True:
            data, next_offset = await target.executor.read_output(directory, offset, limit=16)
            assert next_offset == offset + len(data) and len(data) <= 16
            if not data:
                break
            received, offset, reads = received + data, next_offset, reads + 1
        if done:
            break
        await asyncio.sleep(0.03)
    assert received.decode().splitlines() == lines
    assert reads > 1


async def test_a_step_whose_wrapper_died_is_reported_lost(target: Target) -> None:
    directory = "~/runs/lost"
    await target.executor.launch(step(directory, "sleep 300"))
    await running(target, directory, "runs/lost")
    wrapper = int((target.home / "runs/lost/pid").read_text().split()[0])
    group = os.getpgid(wrapper)
    assert group != os.getpgrp()
    os.killpg(group, signal.SIGKILL)  # as a reboot or the OOM killer would: no exit_status
    step_group = int((target.home / "runs/lost/pgid").read_text().split()[0])
    status = await finished(target.fresh(), directory)
    assert status.lost and status.exit_status == 137 and not status.canceled
    assert (target.home / "runs/lost/lost").exists()
    deadline = time.monotonic() + 3
    while not _gone(abs(step_group)):  # what was left of the step is killed
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert (await target.executor.status([directory]))[directory] == status


async def test_a_step_ignoring_term_is_killed_and_still_reported_timed_out(
    target: Target,
) -> None:
    directory = "~/runs/stubborn-timeout"
    await target.executor.launch(step(directory, "trap '' TERM\nsleep 300", timeout_seconds=1))
    status = await finished(target.executor, directory)
    assert status.exit_status == 124 and status.timed_out and not status.canceled


async def test_a_lock_without_a_wrapper_is_lost_once_stale(target: Target) -> None:
    (target.home / "runs/starting/lock").mkdir(parents=True)
    (target.home / "runs/stale/lock").mkdir(parents=True)
    old = time.time() - 180
    os.utime(target.home / "runs/stale/lock", (old, old))
    statuses = await target.executor.status(["~/runs/starting", "~/runs/stale"])
    assert statuses["~/runs/starting"] == StepStatus(launched=True, finished=False)
    assert statuses["~/runs/stale"].lost and statuses["~/runs/stale"].exit_status == 137


async def test_a_wrapper_from_another_boot_is_lost_and_nothing_is_killed(
    target: Target,
) -> None:
    bystander = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    try:
        start = _start_time(bystander.pid) or "-"
        record = target.home / "runs/rebooted"
        (record / "lock").mkdir(parents=True)
        # The pid and start time of a live process, but recorded before a reboot.
        (record / "pid").write_text(f"{bystander.pid} {start} another-boot\n")
        (record / "pgid").write_text(f"-{bystander.pid} {start}\n")
        status = (await target.executor.status(["~/runs/rebooted"]))["~/runs/rebooted"]
        assert status.lost and status.exit_status == 137
        assert bystander.returncode is None and not _gone(bystander.pid)
    finally:
        bystander.kill()
        await bystander.wait()


@pytest.fixture
def bare_workspace(tmp_path: Path) -> Iterator[tuple[WorkspaceExecutor, Path]]:
    """A workspace whose PATH has neither GNU timeout nor setsid."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("sh", "bash", "mkdir", "mv", "rm", "sleep", "nohup", "cat"):
        found = shutil.which(name)
        assert found
        (tools / name).symlink_to(found)
    home = tmp_path / "home"
    home.mkdir()
    try:
        yield WorkspaceExecutor(home, kill_grace=1, environment={"PATH": str(tools)}), home
    finally:
        _stop_leftovers(home)


async def test_without_gnu_timeout_or_setsid_timeouts_and_kills_still_work(
    bare_workspace: tuple[WorkspaceExecutor, Path],
) -> None:
    executor, home = bare_workspace
    await executor.launch(step("~/timeout", "exec sleep 30", timeout_seconds=1))
    await executor.launch(step("~/kill", "exec sleep 300"))
    await executor.launch(step("~/plain", "echo PATH=$PATH >> $OUTPUTS\nexit 2"))
    timed_out = await finished(executor, "~/timeout")
    assert timed_out.exit_status == 124 and timed_out.timed_out
    assert (await finished(executor, "~/plain")).exit_status == 2
    assert await executor.read_outputs("~/plain") == {"PATH": str(home.parent / "tools")}
    target = Target(home=home, executor=executor, fresh=lambda: executor)
    await running(target, "~/kill", "kill")
    await executor.kill("~/kill")
    killed = await finished(executor, "~/kill")
    assert killed.canceled and killed.exit_status not in (None, 0)


async def test_remove_deletes_the_step_directory(target: Target) -> None:
    directory = "~/runs/clean"
    await target.executor.launch(step(directory, "echo x > $OUTPUTS"))
    await finished(target.executor, directory)
    await target.executor.remove(directory)
    assert not (target.home / "runs/clean").exists()
    assert not (await target.executor.status([directory]))[directory].launched
    await target.executor.remove(directory)  # already gone
    with pytest.raises(Invalid):
        await target.executor.remove("~")


def test_remote_paths_leave_the_home_to_the_remote_shell() -> None:
    assert shell_path("~/pw/jobs/a b") == "\"$HOME\"/'pw/jobs/a b'"
    assert shell_path("~") == '"$HOME"'
    assert shell_path("relative") == '"$HOME"/relative'
    assert shell_path("/abs/x") == "/abs/x"
