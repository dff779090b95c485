"""The scheduler against transcripts of real PBS output: status, queue, cancel, hold and
release, partitions, nodes and accounting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from corral_pbs.config import PBSConfig
from corral_pbs.scheduler import PBS
from corral_sdk.errors import Conflict, NotFound, ProviderError
from corral_sdk.providers.scheduler import JobState, NodeState, PowerState
from corral_sdk.testing import TranscriptRunner

Transcripts = Callable[..., TranscriptRunner]
AURORA = "aurora-pbs-0001.hostmgmt.cm.aurora.alcf.anl.gov"


def aurora(sequence: int) -> str:
    return f"{sequence}.{AURORA}"


STATUS_IDS = [aurora(4345644), aurora(4683812), aurora(4000001)] + [
    aurora(n) for n in (4846771, 6631289, 6617175)
]

# --- status -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_status_of_many_ids_is_one_command(pbs_transcript: Transcripts) -> None:
    runner = pbs_transcript("status_aurora")
    statuses = await PBS(runner).status(STATUS_IDS)
    assert len(runner.commands) == 1
    runner.assert_all_used()
    assert list(statuses) == STATUS_IDS
    assert {job_id: s.state for job_id, s in statuses.items()} == {
        aurora(4345644): JobState.HELD,
        aurora(4683812): JobState.PENDING,
        aurora(4000001): JobState.UNKNOWN,
        aurora(4846771): JobState.CANCELLED,
        aurora(6631289): JobState.COMPLETED,
        aurora(6617175): JobState.TIMEOUT,
    }


@pytest.mark.anyio
async def test_status_fields_of_a_finished_job(pbs_transcript: Transcripts) -> None:
    statuses = await PBS(pbs_transcript("status_aurora")).status(STATUS_IDS)
    done = statuses[aurora(6631289)]
    assert done.native_state == "F"
    assert done.exit_code == 0
    assert done.name == "3d-bfield.sh"
    assert done.user == "tianshuw"
    assert done.partition == "tiny"
    assert len(done.nodes) == 30
    assert done.nodes[:2] == ("x4313c2s0b0n0", "x4313c2s1b0n0")
    assert done.submit_time == datetime(2025, 7, 20, 15, 16, 49, tzinfo=UTC)
    assert done.start_time == datetime(2025, 7, 23, 21, 30, 39, tzinfo=UTC)
    assert done.end_time == datetime(2025, 7, 23, 21, 33, 27, tzinfo=UTC)
    assert done.reason.endswith("and finished")
    timeout = statuses[aurora(6617175)]
    assert timeout.exit_code == -29
    assert timeout.reason.endswith("and exceeded resource walltime")


@pytest.mark.anyio
async def test_status_reasons_come_from_the_comment(pbs_transcript: Transcripts) -> None:
    statuses = await PBS(pbs_transcript("status_aurora")).status(STATUS_IDS)
    assert statuses[aurora(4345644)].reason == "job held, too many failed attempts to run"
    assert statuses[aurora(4683812)].reason.startswith("Not Running: Insufficient amount")
    deleted = statuses[aurora(4846771)]
    assert deleted.reason == "Not Running: Not enough free nodes available and terminated"
    assert deleted.exit_code is None
    assert deleted.end_time == datetime(2025, 7, 16, 17, 47, 36, tzinfo=UTC)  # mtime
    assert "does not know" in statuses[aurora(4000001)].reason


@pytest.mark.anyio
async def test_status_of_a_running_job_on_two_hosts(pbs_transcript: Transcripts) -> None:
    job_id = "12860476.meta-pbs.metacentrum.cz"
    status = (await PBS(pbs_transcript("status_running")).status([job_id]))[job_id]
    assert status.state is JobState.RUNNING
    assert status.nodes == ("charon24", "charon21")
    assert status.user == "jan_brezina"
    assert status.start_time == datetime(2022, 10, 4, 21, 23, 33, tzinfo=UTC)
    assert status.end_time is None
    assert status.exit_code is None


@pytest.mark.anyio
async def test_short_ids_find_their_jobs() -> None:
    runner = TranscriptRunner(target="pbs-login")
    runner.expect(
        "TZ=UTC0 qstat -f -F json -x 6631289 6617175.aurora-pbs-0001",
        stdout=(
            '{"Jobs":{"6631289.' + AURORA + '":{"job_state":"R"},'
            '"6617175.' + AURORA + '":{"job_state":"Q"}}}'
        ),
    )
    statuses = await PBS(runner).status(["6631289", "6617175.aurora-pbs-0001"])
    assert statuses["6631289"].state is JobState.RUNNING
    assert statuses["6631289"].job_id == "6631289"
    assert statuses["6617175.aurora-pbs-0001"].state is JobState.PENDING


@pytest.mark.anyio
async def test_unknown_ids_only_in_openpbs_23_layout(pbs_transcript: Transcripts) -> None:
    statuses = await PBS(pbs_transcript("errors")).status(["2000.VMa", "2001.VMa"])
    assert {s.state for s in statuses.values()} == {JobState.UNKNOWN}


@pytest.mark.anyio
async def test_unreachable_server_is_a_retryable_error(pbs_transcript: Transcripts) -> None:
    with pytest.raises(ProviderError) as caught:
        await PBS(pbs_transcript("errors")).status(["9999"])
    assert "cannot connect to server aqua" in caught.value.message
    assert caught.value.retryable


@pytest.mark.anyio
async def test_status_of_an_array_and_its_subjobs(pbs_transcript: Transcripts) -> None:
    ids = ["0[].725ccdf1a5fb", "0[1].725ccdf1a5fb", "0[2].725ccdf1a5fb"]
    statuses = await PBS(pbs_transcript("array")).status(ids)
    array, done, queued = (statuses[i] for i in ids)
    assert array.state is JobState.RUNNING  # B: some subjobs have begun
    assert (array.array_job_id, array.array_task_id) == ("0[].725ccdf1a5fb", "0-1000")
    assert done.state is JobState.COMPLETED  # X: expired, exit status 0
    assert (done.array_job_id, done.array_task_id) == ("0[].725ccdf1a5fb", "1")
    assert done.end_time == datetime(2022, 10, 11, 8, 13, 47, tzinfo=UTC)
    assert queued.state is JobState.PENDING
    assert queued.array_task_id == "2"


# --- history ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_without_job_history_status_asks_again_without_x(
    pbs_transcript: Transcripts,
) -> None:
    runner = pbs_transcript("history_disabled")
    status = (await PBS(runner).status(["3472664.pbshpc"]))["3472664.pbshpc"]
    assert status.state is JobState.RUNNING
    assert runner.commands == [
        "TZ=UTC0 qstat -f -F json -x 3472664.pbshpc",
        "TZ=UTC0 qstat -f -F json 3472664.pbshpc",
    ]


@pytest.mark.anyio
async def test_configured_without_history_status_never_uses_x(
    pbs_transcript: Transcripts,
) -> None:
    runner = pbs_transcript("history_disabled")
    statuses = await PBS(runner, PBSConfig(job_history=False)).status(["3472664.pbshpc"])
    assert statuses["3472664.pbshpc"].nodes == ("khas024",)
    assert runner.commands == ["TZ=UTC0 qstat -f -F json 3472664.pbshpc"]


@pytest.mark.anyio
async def test_accounting_disabled_when_the_server_keeps_no_history(
    pbs_transcript: Transcripts,
) -> None:
    with pytest.raises(ProviderError) as caught:
        await PBS(pbs_transcript("history_disabled")).accounting(job_ids=["3472664.pbshpc"])
    assert caught.value.reason == "accounting-disabled"
    with pytest.raises(ProviderError) as caught:
        await PBS(pbs_transcript("history_disabled")).accounting()
    assert caught.value.reason == "accounting-disabled"


@pytest.mark.anyio
async def test_accounting_disabled_by_configuration_runs_nothing() -> None:
    runner = TranscriptRunner(target="pbs-login")
    with pytest.raises(ProviderError) as caught:
        await PBS(runner, PBSConfig(job_history=False)).accounting()
    assert caught.value.reason == "accounting-disabled"
    assert runner.commands == []


@pytest.mark.anyio
async def test_accounting_records(pbs_transcript: Transcripts) -> None:
    records = await PBS(pbs_transcript("status_aurora")).accounting(job_ids=STATUS_IDS)
    by_id = {record.job_id: record for record in records}
    assert set(by_id) == set(STATUS_IDS) - {aurora(4000001)}
    done = by_id[aurora(6631289)]
    assert done.state is JobState.COMPLETED
    assert done.account == "CoreCollapseModel"
    assert done.elapsed_seconds == 110  # resources_used.walltime 00:01:50
    assert done.cpu_seconds == 804.0  # cput 00:13:24
    assert done.nodes == 30
    assert done.cpus == 6240
    assert done.max_rss_mb == pytest.approx(39709260 / 1024)
    assert by_id[aurora(6617175)].state is JobState.TIMEOUT


@pytest.mark.anyio
async def test_accounting_filters_by_user_and_submit_time(pbs_transcript: Transcripts) -> None:
    pbs = PBS(pbs_transcript("status_aurora"))
    records = await pbs.accounting(job_ids=STATUS_IDS, since=datetime(2025, 5, 1), user="tianshuw")
    assert [record.job_id for record in records] == [aurora(6631289)]


# --- queue -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_queue_lists_current_jobs(pbs_transcript: Transcripts) -> None:
    jobs = await PBS(pbs_transcript("queue_aurora")).queue()
    assert len(jobs) == 6
    assert {job.state for job in jobs} == {JobState.HELD, JobState.PENDING}
    mine = await PBS(pbs_transcript("queue_aurora")).queue(user="mmin")
    assert [job.job_id.split(".")[0] for job in mine] == ["4905429", "4905459", "4905472"]
    assert {job.partition for job in mine} == {"backfill-large"}


@pytest.mark.anyio
async def test_queue_of_one_partition_names_it_to_qstat(pbs_transcript: Transcripts) -> None:
    runner = pbs_transcript("queue_aurora")
    jobs = await PBS(runner).queue(partition="diag")
    assert runner.commands == ["TZ=UTC0 qstat -f -F json diag"]
    assert [job.job_id for job in jobs] == [aurora(4345644)]


# --- cancel, hold, release -------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancel_of_finished_and_unknown_jobs_is_quiet(pbs_transcript: Transcripts) -> None:
    runner = pbs_transcript("errors")
    await PBS(runner).cancel([aurora(6631289), aurora(4000001)])
    assert runner.commands == [f"qdel {aurora(6631289)} {aurora(4000001)}"]


@pytest.mark.anyio
async def test_cancel_nothing_runs_nothing() -> None:
    runner = TranscriptRunner(target="pbs-login")
    await PBS(runner).cancel([])
    assert runner.commands == []


@pytest.mark.anyio
async def test_cancel_refused_is_an_error(pbs_transcript: Transcripts) -> None:
    with pytest.raises(ProviderError) as caught:
        await PBS(pbs_transcript("errors")).cancel([aurora(4345644)])
    assert caught.value.message.startswith("qdel: Unauthorized Request")


@pytest.mark.anyio
async def test_hold_of_a_running_job_is_a_conflict(pbs_transcript: Transcripts) -> None:
    runner = pbs_transcript("status_running")
    with pytest.raises(Conflict) as caught:
        await PBS(runner).hold(["12860476.meta-pbs.metacentrum.cz"])
    assert "running" in caught.value.message
    assert not any(command.startswith("qhold") for command in runner.commands)


@pytest.mark.anyio
async def test_hold_refused_by_qhold_is_a_conflict(pbs_transcript: Transcripts) -> None:
    runner = pbs_transcript("errors", "conformance")  # status says Q, then qhold refuses
    with pytest.raises(Conflict) as caught:
        await PBS(runner).hold([aurora(4683812)])
    assert "Request invalid for state of job" in caught.value.message


@pytest.mark.anyio
async def test_hold_of_an_unknown_job_is_not_found(pbs_transcript: Transcripts) -> None:
    with pytest.raises(NotFound):
        await PBS(pbs_transcript("errors")).hold(["2000.VMa", "2001.VMa"])


@pytest.mark.anyio
async def test_release_leaves_finished_jobs_alone(pbs_transcript: Transcripts) -> None:
    runner = pbs_transcript("errors")
    await PBS(runner).release([aurora(6631289)])
    with pytest.raises(NotFound):
        await PBS(runner).release([aurora(4000001)])


# --- partitions and nodes --------------------------------------------------------------------


@pytest.mark.anyio
async def test_partitions_from_queues_and_server(pbs_transcript: Transcripts) -> None:
    partitions = {p.name: p for p in await PBS(pbs_transcript("partitions_alcf")).partitions()}
    assert list(partitions) == [
        "debug",
        "lustre_scaling",
        "tiny",
        "backfill-tiny",
        "prod",
        "R5822932",
    ]
    assert [name for name, p in partitions.items() if p.default] == ["prod"]
    assert partitions["debug"].max_time_seconds == 3600
    assert partitions["debug"].max_nodes == 2
    assert partitions["tiny"].max_time_seconds == 6 * 3600
    assert partitions["prod"].max_time_seconds is None
    assert partitions["prod"].max_nodes == 2048
    assert not partitions["lustre_scaling"].available  # enabled False
    assert not partitions["R5822932"].available  # started False
    assert partitions["debug"].available
    # Polaris's vnodes (system=polaris) cannot run Aurora's queues' jobs (system=aurora)
    assert {p.nodes_total for p in partitions.values()} == {0}


@pytest.mark.anyio
async def test_nodes_states_and_resources(pbs_transcript: Transcripts) -> None:
    nodes = {n.name: n for n in await PBS(pbs_transcript("partitions_alcf")).nodes()}
    free, busy, down = (nodes[n] for n in ("x3006c0s13b1n0", "x3008c0s37b1n0", "x3009c0s19b0n0"))
    assert (free.state, busy.state, down.state) == (
        NodeState.IDLE,
        NodeState.ALLOCATED,
        NodeState.DOWN,
    )
    assert busy.native_state == "job-exclusive"
    assert busy.cpus == 64
    assert busy.cpus_allocated == 1
    assert busy.gpus == 4
    assert busy.memory_mb == 527672488 // 1024
    assert down.reason == "node down: communication closed"
    assert free.features == ("debug",)
    assert down.features == ("ss11",)
    assert free.power is PowerState.ON
    assert free.partitions == ()


@pytest.mark.anyio
async def test_node_tied_to_a_queue_and_partly_used(pbs_transcript: Transcripts) -> None:
    pbs = PBS(pbs_transcript("nodes_iitd", reusable=True))
    [node] = await pbs.nodes()
    assert node.state is NodeState.MIXED  # 62 of 64 CPUs assigned
    assert node.partitions == ("test",)
    assert node.memory_mb == 514260
    assert node.gpus == 2
    assert await pbs.nodes(partition="test") == [node]
    assert await pbs.nodes(partition="standard") == []
