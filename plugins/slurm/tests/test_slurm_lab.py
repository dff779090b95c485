"""Replays of what the real Slurm 22.05.8 lab printed (``transcripts/lab-*.txt``, recorded by
``record_lab.py``): the same calls, and what the plugin made of Slurm's answers."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import record_lab
from slurm_transcripts import TRANSCRIPTS, header, transcript

from corral_sdk.errors import Conflict, NotFound, ProviderError
from corral_sdk.providers.scheduler import JobSpec, JobState, JobStatus, NodeState, PowerState
from corral_sdk.testing.transcript import parse_transcript
from corral_sdk.transport import CommandResult
from corral_slurm.config import SlurmConfig, StatusFormat
from corral_slurm.scheduler import Slurm

pytestmark = pytest.mark.anyio

SLEEP = "#!/bin/bash\nsleep {seconds}\n"


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def submit_all(slurm: Slurm) -> dict[str, str]:
    """The submissions of ``record_lab.jobs_scenario``, in its order."""
    specs = {
        "failing": JobSpec(script="#!/bin/bash\nexit 3\n", name="corral-fails"),
        "hostile": JobSpec(
            script='#!/bin/sh\nprintf "%s" "$GREETING" > "$HOME/corral-hostile.out"\n',
            name='it\'s a "job" $(id) `id` ;|&',
            env={"GREETING": "a,b c'd\"e $(id) `id` $HOME ;|& \\n"},
            output_path="corral hostile %j.out",
        ),
        "plain": JobSpec(
            script=SLEEP.format(seconds=90), name="corral-plain", time_limit_seconds=600
        ),
        "two_nodes": JobSpec(
            script="#!/bin/bash\nsrun hostname\nsleep 90\n",
            name="corral-two-nodes",
            partition="long",
            nodes=2,
            ntasks=2,
        ),
        "held": JobSpec(script=SLEEP.format(seconds=5), name="held", hold=True),
        "array": JobSpec(script=SLEEP.format(seconds=90), name="corral-array", array="0-3%2"),
    }
    return {key: (await slurm.submit(spec)).job_id for key, spec in specs.items()}


@dataclass
class Seen:
    """What the plugin made of one recording."""

    status: Mapping[str, JobStatus]
    status_commands: list[str]
    queue: Sequence[JobStatus]
    queue_long: Sequence[JobStatus]
    hold_running_command: str
    hold_array_command: str
    cancelled: JobStatus


class Replay:
    """The calls of ``record_lab.jobs_scenario`` against one of its recordings."""

    def __init__(self, name: str, status_format: StatusFormat) -> None:
        self.runner = transcript(name)
        self.slurm = Slurm(self.runner, SlurmConfig(status_format=status_format))
        self.ids = header(name, "jobs")
        self.recorded_states = header(name, "status")

    async def run(self) -> Seen:
        slurm, ids, runner = self.slurm, self.ids, self.runner
        assert await submit_all(slurm) == ids
        array = ids["array"]
        asked = [ids[k] for k in ("plain", "two_nodes", "held", "array", "failing", "hostile")]
        asked += ["999999", f"{array}_0", f"{array}_3"]
        before = len(runner.commands)
        status = await slurm.status(asked)
        status_commands = runner.commands[before:]
        queue = await slurm.queue()
        queue_long = await slurm.queue(user="alice", partition="long")
        with pytest.raises(Conflict, match="running"):
            await slurm.hold([ids["plain"]])
        hold_running_command = runner.commands[-1]
        await slurm.hold([array])  # its pending tasks can still be held
        hold_array_command = runner.commands[-1]
        await slurm.release([array, ids["plain"]])
        await slurm.cancel([ids["plain"], ids["failing"], "999999"])
        cancelled = (await slurm.status([ids["plain"]]))[ids["plain"]]
        await slurm.cancel([ids["two_nodes"], ids["held"], array, ids["hostile"]])
        runner.assert_all_used()
        return Seen(
            status=status,
            status_commands=status_commands,
            queue=queue,
            queue_long=queue_long,
            hold_running_command=hold_running_command,
            hold_array_command=hold_array_command,
            cancelled=cancelled,
        )


@pytest.mark.parametrize(
    ("name", "status_format"),
    [("lab-jobs-text.txt", "text"), ("lab-jobs-json.txt", "json"), ("lab-jobs-auto.txt", "auto")],
)
async def test_every_recording_replays_to_the_states_seen(
    name: str, status_format: StatusFormat
) -> None:
    replay = Replay(name, status_format)
    seen = await replay.run()
    assert {key: s.state.value for key, s in seen.status.items()} == replay.recorded_states
    assert len(seen.status_commands) == 2, "one squeue for the nine ids, one sacct for the rest"
    assert "sacct" in seen.status_commands[1]
    assert seen.hold_array_command == f"scontrol hold {replay.ids['array']}"


async def test_text_jobs() -> None:
    replay = Replay("lab-jobs-text.txt", "text")
    seen = await replay.run()
    ids = replay.ids
    plain, two, held, array, failing, hostile = (
        ids[key] for key in ("plain", "two_nodes", "held", "array", "failing", "hostile")
    )
    statuses = seen.status
    squeue, sacct = seen.status_commands
    assert squeue == (
        "env SLURM_TIME_FORMAT=%s squeue --noheader '--format=%A|%F|%K|%T|%r|%u|%P|%N|%V|%S|%e|%j' "
        f"--states=all --jobs={plain},{two},{held},{array},{failing},{hostile},999999,"
        f"{array}_0,{array}_3"
    ), "whole jobs first, then array tasks"
    assert sacct.endswith(f"--jobs={failing},999999"), "only the finished and the unknown"

    running = statuses[plain]
    assert running.nodes == ("n2",)
    assert (running.name, running.user, running.partition) == ("corral-plain", "alice", "debug")
    assert running.submit_time == at(1795299397)
    assert running.start_time == at(1795299397)
    assert running.end_time is None, "a running job's end is only expected"
    assert running.exit_code is None
    assert running.array_job_id is None and running.array_task_id is None

    assert statuses[two].reason == "Resources"
    assert statuses[two].nodes == ()
    assert statuses[two].start_time is None, "a pending job's start is only expected"
    assert statuses[held].reason == "JobHeldUser"
    assert statuses[held].native_state == "PENDING"

    whole = statuses[array]
    assert whole.state is JobState.RUNNING
    assert whole.array_job_id == array and whole.array_task_id is None
    assert whole.native_state == "PENDING=3,RUNNING=1"
    assert whole.nodes == ("n2",)
    task0, task3 = statuses[f"{array}_0"], statuses[f"{array}_3"]
    assert (task0.array_job_id, task0.array_task_id, task0.nodes) == (array, "0", ("n2",))
    assert (task3.array_job_id, task3.array_task_id) == (array, "3")
    assert task3.reason.startswith("Nodes required for job are DOWN")

    assert statuses[failing].reason == "NonZeroExitCode"
    assert statuses[failing].exit_code is None, "squeue's text has no exit code, sacct is off"
    assert statuses[hostile].exit_code == 0
    assert statuses[hostile].name == 'it\'s a "job" $(id) `id` ;|&'
    assert statuses[hostile].end_time == at(1795299397)
    assert statuses["999999"].reason == "", "accounting is off: nothing more to say"

    assert [(job.job_id, job.state) for job in seen.queue] == [
        (f"{array}_[1-3%2]", JobState.PENDING),
        (held, JobState.HELD),
        (plain, JobState.RUNNING),
        (f"{array}_0", JobState.RUNNING),
        (two, JobState.PENDING),
    ]
    assert [job.job_id for job in seen.queue_long] == [two]
    assert seen.hold_running_command.endswith(f"--states=all --jobs={plain}"), "not held"
    assert seen.cancelled.state is JobState.CANCELLED
    assert seen.cancelled.end_time == at(1795299405)
    assert seen.cancelled.nodes == ("n2",), "where it ran"


async def test_auto_picks_text_on_22_05() -> None:
    replay = Replay("lab-jobs-auto.txt", "auto")
    seen = await replay.run()
    assert seen.status_commands[0].startswith(
        'sh -c \'case "$(squeue --version 2>/dev/null)" in '
    ), "one command that asks squeue --version and runs the text or the JSON form"
    two = seen.status[replay.ids["two_nodes"]]
    assert two.state is JobState.RUNNING
    assert two.nodes == ("n1", "n2"), "n[1-2] expanded"


async def test_a_job_killed_at_its_time_limit() -> None:
    runner = transcript("lab-timeout.txt")
    slurm = Slurm(runner, None)
    job = await slurm.submit(
        JobSpec(script=SLEEP.format(seconds=600), name="corral-timeout", time_limit_seconds=60)
    )
    status = (await slurm.status([job.job_id]))[job.job_id]
    assert status.state is JobState.TIMEOUT
    assert status.reason == "TimeLimit"
    assert status.state.terminal
    runner.assert_all_used()


async def test_partitions_nodes_and_no_accounting() -> None:
    runner = transcript("lab-cluster.txt")
    slurm = Slurm(runner, None)
    partitions = await slurm.partitions()
    assert [(p.name, p.default, p.available) for p in partitions] == [
        ("debug", True, True),
        ("long", False, True),
    ]
    debug = partitions[0]
    assert (debug.nodes_total, debug.nodes_idle, debug.cpus_total, debug.gpus_total) == (
        2,
        0,
        4,
        0,
    )
    assert debug.max_time_seconds is None, "MaxTime=INFINITE"
    assert debug.max_nodes is None, "1-infinite"

    nodes = await slurm.nodes()
    assert [(n.name, n.partitions, n.state) for n in nodes] == [
        ("n1", ("debug", "long"), NodeState.ALLOCATED),
        ("n2", ("debug", "long"), NodeState.ALLOCATED),
    ]
    n1 = nodes[0]
    assert (n1.native_state, n1.power, n1.cpus, n1.cpus_allocated, n1.memory_mb) == (
        "completing",
        PowerState.ON,
        2,
        0,
        1000,
    )
    assert (n1.gpus, n1.features, n1.reason) == (0, (), "")
    long_nodes = await slurm.nodes(partition="long")
    assert [(n.name, n.state, n.partitions) for n in long_nodes] == [
        ("n1", NodeState.IDLE, ("long",)),
        ("n2", NodeState.IDLE, ("long",)),
    ]

    with pytest.raises(ProviderError) as info:
        await slurm.accounting(job_ids=["1"])
    assert info.value.reason == "accounting-disabled"
    with pytest.raises(ProviderError, match="Invalid partition name specified"):
        await slurm.submit(JobSpec(script=SLEEP.format(seconds=1), partition="nowhere"))
    runner.assert_all_used()


async def test_json_jobs() -> None:
    replay = Replay("lab-jobs-json.txt", "json")
    seen = await replay.run()
    ids = replay.ids
    squeue, sacct = seen.status_commands
    assert squeue.startswith("squeue --json --states=all --jobs=")
    assert sacct.endswith("--jobs=999999"), "JSON carries exit codes: only the unknown id left"
    failing, hostile = seen.status[ids["failing"]], seen.status[ids["hostile"]]
    assert (failing.state, failing.exit_code) == (JobState.FAILED, 3), "raw wait status 768"
    assert (hostile.state, hostile.exit_code) == (JobState.COMPLETED, 0)
    two = seen.status[ids["two_nodes"]]
    assert (two.state, two.nodes, two.partition) == (JobState.RUNNING, ("n1", "n2"), "long")
    assert seen.status[ids["held"]].state is JobState.HELD
    whole = seen.status[ids["array"]]
    assert (whole.state, whole.native_state) == (JobState.RUNNING, "PENDING=3,RUNNING=1")
    # 22.05 listed every job for `squeue --json --user=alice --partition=long`: filtered here
    assert [job.job_id for job in seen.queue_long] == [ids["two_nodes"]]
    assert all(not job.state.terminal for job in seen.queue)
    assert seen.cancelled.state is JobState.CANCELLED
    assert seen.cancelled.exit_code == 128 + 15, "SIGTERM"


async def test_finished_and_unknown_jobs() -> None:
    name = "lab-errors.txt"
    runner = transcript(name)
    slurm = Slurm(runner, SlurmConfig(status_format="text"))
    quick = header(name, "jobs")["quick"]
    submitted = await slurm.submit(JobSpec(script="#!/bin/bash\ntrue\n", name="corral-quick"))
    assert submitted.job_id == quick
    unknown = await slurm.status(["999999"])
    assert unknown["999999"].state is JobState.UNKNOWN, "squeue failed: Invalid job id specified"
    with pytest.raises(Conflict, match="completed"):
        await slurm.hold([quick])
    with pytest.raises(NotFound):
        await slurm.hold(["999999"])
    await slurm.release([quick])  # "Job has already finished": left alone
    with pytest.raises(NotFound, match="Invalid job id specified"):
        await slurm.release(["999999"])
    await slurm.cancel([quick, "999999"])  # 22.05's scancel says nothing about either
    with pytest.raises(ProviderError) as info:
        await slurm.submit(JobSpec(script="#!/bin/bash\ntrue\n", memory_mb=999999))
    assert info.value.message.endswith("Requested node configuration is not available")
    runner.assert_all_used()


class RecorderReplay(record_lab.LabRunner):
    """``record_lab``'s runner with the lab's answers taken from a recording instead."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.replay = transcript(name)

    async def _exec(self, command: str, data: bytes | None = None) -> CommandResult:
        return await self.replay.run(command, input=None if data is None else data.decode())

    async def get(self, remote_path: str) -> bytes:
        assert remote_path == "corral-hostile.out"
        return record_lab.HOSTILE_VALUE.encode()


async def _no_sleep(seconds: float) -> None:
    pass


@pytest.mark.parametrize("name", sorted(record_lab.SCENARIOS))
async def test_the_recorder_writes_what_the_recordings_hold(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``record_lab.py`` run again would write these files' commands, standard inputs and
    answers (the submissions too: sbatch alone, the script on its standard input)."""
    monkeypatch.setattr(record_lab, "asyncio", SimpleNamespace(sleep=_no_sleep))
    _, scenario, config = record_lab.SCENARIOS[name]
    runner = RecorderReplay(name)
    await scenario(runner, config)
    runner.replay.assert_all_used()
    written = parse_transcript("\n\n".join(runner.entries))
    assert written == parse_transcript((TRANSCRIPTS / name).read_text())
    submissions = [entry for entry in written if entry.input is not None]
    assert submissions, "every scenario submits"
    for entry in submissions:
        assert entry.command is not None, "an exact command: nothing random in it"
        if shlex.split(entry.command)[-2:] == ["sh", "-s"]:
            continue  # several jobs: their sbatch commands are in the script sh reads
        assert shlex.split(entry.command)[-1].startswith("--"), "no script path"
        assert "sbatch --parsable" in entry.command and "sh -c" not in entry.command
