"""Statuses, the queue, cancel, hold and release, accounting: one command for many jobs, every
squeue shape, sacct for what left the queue, and Slurm's errors."""

from __future__ import annotations

import shlex
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from slurm_transcripts import transcript

from corral_sdk.errors import Conflict, Invalid, NotFound, PermissionDenied, ProviderError
from corral_sdk.providers.scheduler import JobState
from corral_sdk.testing import TranscriptRunner
from corral_slurm.config import SlurmConfig
from corral_slurm.scheduler import Slurm

pytestmark = pytest.mark.anyio

TEXT = SlurmConfig(status_format="text")
JSON = SlurmConfig(status_format="json")
SQUEUE_TEXT = (
    "env SLURM_TIME_FORMAT=%s squeue --noheader '--format=%A|%F|%K|%T|%r|%u|%P|%N|%V|%S|%e|%j'"
)


# what the lab's scontrol printed for a finished job and for an unknown one
FINISHED = "Job has already finished for job {job}\nslurm_suspend error: Job has already finished\n"
INVALID = "Invalid job id specified for job {job}\nslurm_suspend error: Invalid job id specified\n"


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# --- one command for many jobs ----------------------------------------------------------------


async def test_status_of_many_ids_is_one_command() -> None:
    ids = [str(1000 + n) for n in range(200)]
    # lines as the lab's squeue prints them, one per job
    lines = [
        f"{i}|{i}|N/A|RUNNING|None|alice|debug|n1|1700000000|1700000001|NONE|j{i}" for i in ids
    ]
    runner = TranscriptRunner().expect(
        f"{SQUEUE_TEXT} --states=all --jobs={','.join(ids)}", stdout="\n".join(lines) + "\n"
    )
    statuses = await Slurm(runner, TEXT).status(ids)
    assert len(runner.commands) == 1
    assert list(statuses) == ids
    assert {s.state for s in statuses.values()} == {JobState.RUNNING}
    runner.assert_all_used()


async def test_without_sacct_unknown_ids_cost_nothing_more() -> None:
    runner = TranscriptRunner().expect(
        f"{SQUEUE_TEXT} --states=all --jobs=1,2,3",
        stdout="2|2|N/A|PENDING|Priority|alice|debug||1700000000|N/A|N/A|j\n",
    )
    statuses = await Slurm(runner, SlurmConfig(status_format="text", use_sacct=False)).status(
        ["1", "2", "3"]
    )
    assert [s.state for s in statuses.values()] == [
        JobState.UNKNOWN,
        JobState.PENDING,
        JobState.UNKNOWN,
    ]
    assert len(runner.commands) == 1


async def test_duplicate_and_malformed_ids() -> None:
    runner = TranscriptRunner().expect(
        f"{SQUEUE_TEXT} --states=all --jobs=5",
        stdout="5|5|N/A|RUNNING|None|alice|debug|n1|1700000000|1700000001|NONE|j\n",
    )
    statuses = await Slurm(runner, SlurmConfig(status_format="text", use_sacct=False)).status(
        ["5", "5", "not-a-job; rm -rf ~", ""]
    )
    assert list(statuses) == ["5", "not-a-job; rm -rf ~", ""]
    assert statuses["5"].state is JobState.RUNNING
    assert statuses["not-a-job; rm -rf ~"].state is JobState.UNKNOWN
    assert runner.commands == [f"{SQUEUE_TEXT} --states=all --jobs=5"], "never sent to Slurm"


async def test_status_of_nothing_runs_nothing() -> None:
    runner = TranscriptRunner()
    assert await Slurm(runner, None).status([]) == {}
    await Slurm(runner, None).cancel([])
    await Slurm(runner, None).hold([])
    await Slurm(runner, None).release([])
    assert runner.calls == []


async def test_a_single_unknown_id_makes_squeue_fail_and_is_unknown() -> None:
    # as the lab's 22.05 answers `squeue --jobs=999`: it asks for that job alone
    runner = (
        TranscriptRunner()
        .expect(
            f"{SQUEUE_TEXT} --states=all --jobs=999",
            stderr="slurm_load_jobs error: Invalid job id specified\n",
            exit_status=1,
        )
        .expect(
            match=r"env SLURM_TIME_FORMAT=%s sacct .* --jobs=999",
            stderr="Slurm accounting storage is disabled\n",
            exit_status=1,
        )
    )
    statuses = await Slurm(runner, TEXT).status(["999"])
    assert statuses["999"].state is JobState.UNKNOWN
    assert statuses["999"].reason == ""
    runner.assert_all_used()


async def test_other_squeue_failures_are_provider_errors() -> None:
    runner = TranscriptRunner().expect(
        match=r".*squeue .*",
        stderr="squeue: error: slurm_receive_msg: Socket timed out on send/recv operation\n",
        exit_status=1,
    )
    with pytest.raises(ProviderError, match="Socket timed out"):
        await Slurm(runner, TEXT).status(["1"])


async def test_accounting_failure_leaves_jobs_unknown_saying_why() -> None:
    runner = (
        TranscriptRunner()
        .expect(f"{SQUEUE_TEXT} --states=all --jobs=1,2", stdout="")
        .expect(
            match=r".*sacct .*",
            stderr="sacct: error: Problem talking to the database: Connection refused\n",
            exit_status=1,
        )
    )
    statuses = await Slurm(runner, TEXT).status(["1", "2"])
    assert statuses["1"].state is JobState.UNKNOWN
    assert "Connection refused" in statuses["1"].reason


# --- squeue --json in each shape --------------------------------------------------------------


async def test_json_of_slurm_23_11_and_later() -> None:
    runner = transcript("docs-squeue-json.txt")
    ids = ["5001", "5002", "5003", "5004", "5005", "5006", "5007", "5008", "5010"]
    ids += ["5010_0", "5010_5", "5020", "5099"]
    statuses = await Slurm(runner, SlurmConfig(status_format="json", use_sacct=False)).status(ids)
    assert {k: s.state for k, s in statuses.items()} == {
        "5001": JobState.RUNNING,
        "5002": JobState.HELD,
        "5003": JobState.COMPLETED,
        "5004": JobState.FAILED,
        "5005": JobState.CANCELLED,
        "5006": JobState.OUT_OF_MEMORY,
        "5007": JobState.PENDING,
        "5008": JobState.NODE_FAIL,
        "5010": JobState.RUNNING,
        "5010_0": JobState.RUNNING,
        "5010_5": JobState.PENDING,
        "5020": JobState.PENDING,
        "5099": JobState.UNKNOWN,
    }
    assert statuses["5001"].nodes == ("gpu01", "gpu02")
    assert statuses["5001"].start_time == at(1700000010)
    assert statuses["5001"].end_time is None
    assert statuses["5002"].reason == "JobHeldAdmin"
    assert [statuses[i].exit_code for i in ("5003", "5004", "5005", "5006", "5008")] == [
        0,
        2,
        128 + 9,
        128 + 9,
        1,
    ]
    assert statuses["5004"].end_time == at(1700000020)
    assert statuses["5007"].native_state == "CONFIGURING", "nodes powering up: still pending"
    assert statuses["5020"].native_state == "REQUEUED"
    array = statuses["5010"]
    assert array.native_state == "COMPLETED=1,PENDING=8,RUNNING=1"
    assert array.nodes == ("n6", "n7")
    assert statuses["5010_5"].reason == "JobArrayTaskLimit"
    assert statuses["5010_5"].array_task_id == "5"


async def test_json_of_slurm_23_02() -> None:
    runner = transcript("docs-squeue-json.txt")
    statuses = await Slurm(runner, JSON).status(["6001", "6002", "6003", "6004", "6010"])
    assert {k: s.state for k, s in statuses.items()} == {
        "6001": JobState.RUNNING,
        "6002": JobState.FAILED,
        "6003": JobState.TIMEOUT,
        "6004": JobState.HELD,
        "6010": JobState.RUNNING,
    }
    assert statuses["6001"].nodes == ("n1", "n2", "n3")
    assert statuses["6002"].exit_code == 2
    assert statuses["6003"].exit_code == 128 + 15
    assert statuses["6001"].user == "bob"
    assert statuses["6010"].native_state == "PENDING=3,RUNNING=1"
    assert len(runner.commands) == 1, "every job had what squeue can tell"


async def test_json_before_24_05_lists_every_job_and_is_filtered_here() -> None:
    """22.05's squeue --json ignores --jobs and --user: the lab's answer held every job."""
    runner = transcript("lab-jobs-json.txt")
    recorded = next(e for e in runner.entries if e.command == "squeue --json")
    only = TranscriptRunner().expect(
        "squeue --json --user=bob --partition=long", stdout=recorded.stdout
    )
    assert await Slurm(only, JSON).queue(user="bob", partition="long") == []
    everyone = TranscriptRunner().expect("squeue --json", stdout=recorded.stdout)
    queue = await Slurm(everyone, JSON).queue()
    assert queue and all(not job.state.terminal for job in queue)


async def test_json_on_slurm_without_it_is_a_provider_error() -> None:
    runner = transcript("docs-slurm-20.11.txt")
    with pytest.raises(ProviderError, match="unrecognized option '--json'"):
        await Slurm(runner, JSON).status(["8001"])


async def test_slurm_20_11_in_auto_mode_reads_text() -> None:
    runner = transcript("docs-slurm-20.11.txt")
    statuses = await Slurm(runner, SlurmConfig(use_sacct=False)).status(["8001", "8002", "8003_1"])
    assert statuses["8001"].nodes == ("c01", "c02", "c03", "c04")
    assert statuses["8002"].state is JobState.PENDING
    assert statuses["8003_1"].state is JobState.COMPLETING
    assert statuses["8003_1"].array_job_id == "8003"


# --- the auto command, run by a real shell ----------------------------------------------------

FAKE_SQUEUE = """#!/bin/sh
if [ "$1" = --version ]; then echo "$SQUEUE_VERSION"; exit 0; fi
echo "argv: $*"
"""


@pytest.mark.parametrize(
    ("version", "form"),
    [
        ("slurm 20.11.9", "text"),
        ("slurm-wlm 22.05.8", "text"),
        ("slurm 23.02.7", "text"),
        ("slurm 23.11.10", "text"),
        ("slurm 24.05.0", "text"),
        ("slurm 24.05.1", "json"),
        ("slurm 24.05.10", "json"),
        ("slurm 24.11.0", "json"),
        ("slurm 25.05.2", "json"),
        ("slurm 30.01.0", "json"),
        ("", "text"),
    ],
)
def test_auto_command_picks_json_from_24_05_1(tmp_path: Path, version: str, form: str) -> None:
    """squeue --json honours --jobs from 24.05.1 (Slurm commit ff14834c); before, it lists every
    job of the cluster."""
    squeue = tmp_path / "squeue"
    squeue.write_text(FAKE_SQUEUE)
    squeue.chmod(0o755)
    argv = Slurm(TranscriptRunner(), None)._squeue_argv(["--states=all", "--jobs=1,2"])
    result = subprocess.run(
        ["/bin/sh", "-c", shlex.join(argv)],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "SQUEUE_VERSION": version},
        capture_output=True,
        text=True,
        check=True,
    )
    expected = {
        "json": "argv: --json --states=all --jobs=1,2\n",
        "text": "argv: --noheader --format=%A|%F|%K|%T|%r|%u|%P|%N|%V|%S|%e|%j "
        "--states=all --jobs=1,2\n",
    }
    assert result.stdout == expected[form]


# --- what left the queue: sacct ---------------------------------------------------------------


async def test_jobs_that_left_the_queue_come_from_sacct() -> None:
    runner = transcript("docs-sacct.txt")
    ids = ["7001", "7002", "7003", "7004", "7010", "7020", "7030"]
    statuses = await Slurm(runner, TEXT).status(ids)
    assert len(runner.commands) == 2
    assert {k: s.state for k, s in statuses.items()} == {
        "7001": JobState.COMPLETED,
        "7002": JobState.CANCELLED,
        "7003": JobState.OUT_OF_MEMORY,
        "7004": JobState.NODE_FAIL,
        "7010": JobState.FAILED,
        "7020": JobState.FAILED,
        "7030": JobState.RUNNING,
    }
    assert statuses["7002"].native_state == "CANCELLED by 0"
    assert statuses["7002"].nodes == ()
    assert statuses["7002"].start_time is None
    assert statuses["7004"].nodes == ("n4", "n5")
    assert statuses["7020"].exit_code == 1, "the exit code squeue's text could not give"
    assert statuses["7003"].exit_code == 128 + 125
    array = statuses["7010"]
    assert array.native_state == "COMPLETED=2,FAILED=1"
    assert array.exit_code == 2
    assert array.start_time == at(1700000005)
    assert array.end_time == at(1700000066)


async def test_accounting_folds_steps_into_their_job() -> None:
    runner = transcript("docs-sacct.txt")
    records = await Slurm(runner, None).accounting(job_ids=["7001", "7010"])
    assert [r.job_id for r in records] == ["7001", "7010_0", "7010_[3-4]"]
    job = records[0]
    assert (job.state, job.user, job.account, job.partition, job.name) == (
        JobState.COMPLETED,
        "alice",
        "proj",
        "gpu",
        "done",
    )
    assert (job.nodes, job.cpus, job.gpus, job.elapsed_seconds) == (1, 4, 2, 60)
    assert job.cpu_seconds == 210.5
    assert job.max_rss_mb == 2048.0, "the largest of its steps"
    assert job.exit_code == 0
    assert (job.submit_time, job.start_time, job.end_time) == (
        at(1700000000),
        at(1700000005),
        at(1700000065),
    )
    assert records[1].max_rss_mb == 5.5
    pending = records[2]
    assert (pending.state, pending.start_time, pending.exit_code) == (JobState.PENDING, None, None)


async def test_accounting_since_a_time_of_a_user_or_everyone() -> None:
    runner = transcript("docs-sacct.txt")
    slurm = Slurm(runner, None)
    since = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    mine = await slurm.accounting(since=since, user="alice")
    assert [r.job_id for r in mine] == ["7001"]
    everyone = await slurm.accounting(since=since)
    assert [(r.job_id, r.user, r.state) for r in everyone] == [
        ("7001", "alice", JobState.COMPLETED),
        ("7040", "bob", JobState.RUNNING),
    ]
    assert everyone[1].name == "bob's job"
    assert everyone[1].end_time is None


async def test_accounting_since_a_local_time_is_given_in_utc() -> None:
    runner = TranscriptRunner().expect(match=r".*--starttime=2023-11-14T22:13:20 --allusers")
    paris = timezone(timedelta(hours=1))
    await Slurm(runner, None).accounting(since=datetime(2023, 11, 14, 23, 13, 20, tzinfo=paris))
    runner.assert_all_used()


async def test_accounting_disabled_is_its_own_reason() -> None:
    runner = transcript("lab-cluster.txt")
    with pytest.raises(ProviderError) as info:
        await Slurm(runner, None).accounting(job_ids=["1"])
    assert info.value.reason == "accounting-disabled"


async def test_accounting_of_no_jobs_runs_nothing() -> None:
    runner = TranscriptRunner()
    assert await Slurm(runner, None).accounting(job_ids=[]) == []
    assert runner.calls == []


# --- cancel, hold, release --------------------------------------------------------------------


async def test_cancel_is_one_command_and_idempotent() -> None:
    # scancel is quiet about finished and unknown ids unless verbose (SCANCEL_VERBOSE), as here
    runner = TranscriptRunner().expect(
        "scancel 10 11 12 13_2",
        stderr=(
            "scancel: error: Kill job error on job id 11: Job/step already completing or "
            "completed\nscancel: error: Kill job error on job id 12: Invalid job id specified\n"
        ),
        exit_status=1,
    )
    await Slurm(runner, None).cancel(["10", "11", "12", "13_2", "10"])
    runner.assert_all_used()


async def test_cancel_of_someone_elses_job_is_refused() -> None:
    runner = TranscriptRunner().expect(
        "scancel 42",
        stderr="scancel: error: Kill job error on job id 42: Access/permission denied\n",
        exit_status=1,
    )
    with pytest.raises(PermissionDenied, match="Access/permission denied"):
        await Slurm(runner, None).cancel(["42"])


async def test_cancel_refuses_malformed_ids() -> None:
    with pytest.raises(Invalid) as info:
        await Slurm(TranscriptRunner(), None).cancel(["1", "2; reboot"])
    assert info.value.field == "job_ids"


async def test_hold_of_a_running_job_is_a_conflict_and_holds_nothing() -> None:
    runner = TranscriptRunner().expect(
        f"{SQUEUE_TEXT} --states=all --jobs=7,8",
        stdout=(
            "7|7|N/A|RUNNING|None|alice|debug|n1|1795299336|1795299337|NONE|t1.sbatch\n"
            "8|8|N/A|PENDING|Priority|alice|debug||1795299336|N/A|N/A|t1.sbatch\n"
        ),
    )
    with pytest.raises(Conflict, match="job 7 is running"):
        await Slurm(runner, TEXT).hold(["7", "8"])
    assert not any(command.startswith("scontrol") for command in runner.commands)


async def test_hold_of_a_finished_or_unknown_job() -> None:
    finished = TranscriptRunner().expect(
        f"{SQUEUE_TEXT} --states=all --jobs=1",
        stdout="1|1|N/A|COMPLETED|None|alice|debug|n1|1795299142|1795299143|1795299143|wrap\n",
    )
    with pytest.raises(Conflict, match="completed"):
        await Slurm(finished, TEXT).hold(["1"])
    unknown = TranscriptRunner().expect(
        f"{SQUEUE_TEXT} --states=all --jobs=999",
        stderr="slurm_load_jobs error: Invalid job id specified\n",
        exit_status=1,
    )
    with pytest.raises(NotFound):
        await Slurm(unknown, TEXT).hold(["999"])


async def test_hold_and_release_of_pending_jobs() -> None:
    runner = (
        TranscriptRunner()
        .expect(
            f"{SQUEUE_TEXT} --states=all --jobs=9",
            stdout="9|9|N/A|PENDING|Resources|alice|debug||1795299336|N/A|N/A|t1.sbatch\n",
        )
        .expect("scontrol hold 9")
        .expect("scontrol release 9,1")
    )
    slurm = Slurm(runner, TEXT)
    await slurm.hold(["9"])
    await slurm.release(["9", "1"])
    runner.assert_all_used()


async def test_release_leaves_finished_jobs_alone_but_not_unknown_ones() -> None:
    runner = (
        TranscriptRunner()
        .expect(
            "scontrol release 1",
            stderr=FINISHED.format(job=1),
            exit_status=1,
        )
        .expect(
            "scontrol release 999",
            stderr=INVALID.format(job=999),
            exit_status=1,
        )
    )
    slurm = Slurm(runner, None)
    await slurm.release(["1"])
    with pytest.raises(NotFound, match="Invalid job id specified"):
        await slurm.release(["999"])


async def test_hold_that_slurm_refuses_after_the_check() -> None:
    """The job finished between the check and the hold."""
    runner = (
        TranscriptRunner()
        .expect(
            f"{SQUEUE_TEXT} --states=all --jobs=9",
            stdout="9|9|N/A|PENDING|Resources|alice|debug||1795299336|N/A|N/A|t1.sbatch\n",
        )
        .expect(
            "scontrol hold 9",
            stderr=FINISHED.format(job=9),
            exit_status=1,
        )
    )
    with pytest.raises(Conflict, match="already finished"):
        await Slurm(runner, TEXT).hold(["9"])


async def test_command_prefix_runs_before_every_command() -> None:
    runner = TranscriptRunner().expect("module load slurm/23.02 && scancel 5")
    await Slurm(runner, SlurmConfig(command_prefix="module load slurm/23.02")).cancel(["5"])
    runner.assert_all_used()


async def test_queue_filters_are_single_names() -> None:
    with pytest.raises(Invalid) as info:
        await Slurm(TranscriptRunner(), None).queue(user="alice,bob")
    assert info.value.field == "user"
