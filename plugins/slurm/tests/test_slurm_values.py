"""Slurm's states, hostlists, durations, times, exit codes and sizes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from corral_sdk.providers.scheduler import JobState, NodeState, PowerState
from corral_slurm.hostlist import expand_hostlist, hostlist_range
from corral_slurm.states import (
    JOB_STATES,
    aggregate_array_state,
    job_state,
    json_state_name,
    node_state,
)
from corral_slurm.values import (
    format_duration,
    gpu_count,
    json_number,
    parse_duration,
    parse_epoch,
    parse_exit_code,
    parse_size_mb,
    wait_status_exit_code,
)

J = JobState

# Every state of squeue(1)'s and sacct(1)'s JOB STATE CODES, long and short.
STATE_TABLE = [
    ("PENDING", "PD", J.PENDING),
    ("CONFIGURING", "CF", J.PENDING),
    ("REQUEUED", "RQ", J.PENDING),
    ("REQUEUE_FED", "RF", J.PENDING),
    ("REQUEUE_HOLD", "RH", J.HELD),
    ("RESV_DEL_HOLD", "RD", J.HELD),
    ("SPECIAL_EXIT", "SE", J.HELD),
    ("RUNNING", "R", J.RUNNING),
    ("RESIZING", "RS", J.RUNNING),
    ("SIGNALING", "SI", J.RUNNING),
    ("SUSPENDED", "S", J.SUSPENDED),
    ("STOPPED", "ST", J.SUSPENDED),
    ("COMPLETING", "CG", J.COMPLETING),
    ("STAGE_OUT", "SO", J.COMPLETING),
    ("COMPLETED", "CD", J.COMPLETED),
    ("CANCELLED", "CA", J.CANCELLED),
    ("FAILED", "F", J.FAILED),
    ("TIMEOUT", "TO", J.TIMEOUT),
    ("DEADLINE", "DL", J.TIMEOUT),
    ("OUT_OF_MEMORY", "OOM", J.OUT_OF_MEMORY),
    ("NODE_FAIL", "NF", J.NODE_FAIL),
    ("BOOT_FAIL", "BF", J.NODE_FAIL),
    ("PREEMPTED", "PR", J.PREEMPTED),
    ("REVOKED", "RV", J.UNKNOWN),
]


@pytest.mark.parametrize(("long", "short", "expected"), STATE_TABLE)
def test_state_mapping(long: str, short: str, expected: JobState) -> None:
    assert job_state(long) is expected
    assert job_state(short) is expected
    assert job_state(long.lower()) is expected


def test_state_table_covers_every_mapped_name() -> None:
    names = {name for long, short, _ in STATE_TABLE for name in (long, short)}
    assert names == set(JOB_STATES)


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("CANCELLED by 0", J.CANCELLED),
        ("CANCELLED by 1001", J.CANCELLED),
        ("CANCELLED+", J.CANCELLED),
        ("  RUNNING ", J.RUNNING),
        ("", J.UNKNOWN),
        ("?", J.UNKNOWN),
        ("SOMETHING_NEW", J.UNKNOWN),
    ],
)
def test_state_spellings(native: str, expected: JobState) -> None:
    assert job_state(native) is expected


@pytest.mark.parametrize("reason", ["JobHeldUser", "JobHeldAdmin"])
def test_held_pending_jobs_are_held(reason: str) -> None:
    assert job_state("PENDING", reason) is J.HELD
    assert job_state("PD", reason) is J.HELD


def test_other_reasons_keep_jobs_pending() -> None:
    for reason in ("Resources", "Priority", "BeginTime", "Dependency", "JobArrayTaskLimit"):
        assert job_state("PENDING", reason) is J.PENDING
    assert job_state("RUNNING", "JobHeldUser") is J.RUNNING  # held while running: still runs


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("RUNNING", "RUNNING"),  # 22.05 and 23.02: a string
        (["RUNNING"], "RUNNING"),  # 23.11+: base state and flags
        (["RUNNING", "CONFIGURING"], "CONFIGURING"),
        (["PENDING", "REQUEUED"], "REQUEUED"),
        (["COMPLETED", "COMPLETING"], "COMPLETING"),
        (["PENDING", "POWER_UP_NODE", "CONFIGURING"], "CONFIGURING"),
        (["FAILED", "LAUNCH_FAILED"], "FAILED"),
        ([], ""),
        (None, ""),
    ],
)
def test_json_state_like_squeue_prints_it(value: object, expected: str) -> None:
    assert json_state_name(value) == expected


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ([J.RUNNING, J.PENDING, J.COMPLETED], J.RUNNING),
        ([J.PENDING, J.COMPLETED, J.FAILED], J.PENDING),
        ([J.HELD, J.COMPLETED], J.HELD),
        ([J.PENDING, J.HELD], J.PENDING),
        ([J.SUSPENDED, J.PENDING], J.SUSPENDED),
        ([J.COMPLETING, J.COMPLETED], J.COMPLETING),
        ([J.COMPLETED, J.COMPLETED], J.COMPLETED),
        ([J.COMPLETED, J.FAILED, J.CANCELLED], J.FAILED),
        ([J.COMPLETED, J.OUT_OF_MEMORY, J.TIMEOUT], J.OUT_OF_MEMORY),
        ([J.COMPLETED, J.TIMEOUT, J.CANCELLED], J.TIMEOUT),
        ([J.COMPLETED, J.CANCELLED], J.CANCELLED),
        ([J.COMPLETED, J.UNKNOWN], J.COMPLETED),
        ([J.UNKNOWN], J.UNKNOWN),
        ([], J.UNKNOWN),
    ],
)
def test_array_aggregation_rule(tasks: list[JobState], expected: JobState) -> None:
    assert aggregate_array_state(tasks) is expected


@pytest.mark.parametrize(
    ("native", "state", "power", "responding"),
    [
        ("idle", NodeState.IDLE, PowerState.ON, True),
        ("idle~", NodeState.IDLE, PowerState.OFF, True),
        ("idle#", NodeState.IDLE, PowerState.POWERING_UP, True),
        ("idle%", NodeState.IDLE, PowerState.POWERING_DOWN, True),
        ("idle!", NodeState.IDLE, PowerState.ON, True),
        ("mixed#", NodeState.MIXED, PowerState.POWERING_UP, True),
        ("alloc#", NodeState.ALLOCATED, PowerState.POWERING_UP, True),
        ("allocated+", NodeState.ALLOCATED, PowerState.ON, True),
        ("completing", NodeState.ALLOCATED, PowerState.ON, True),
        ("down*", NodeState.DOWN, PowerState.ON, False),
        ("down~", NodeState.DOWN, PowerState.OFF, True),
        ("idle*", NodeState.IDLE, PowerState.ON, False),
        ("drained", NodeState.DRAINED, PowerState.ON, True),
        ("drain", NodeState.DRAINED, PowerState.ON, True),
        ("draining", NodeState.DRAINING, PowerState.ON, True),
        ("drng", NodeState.DRAINING, PowerState.ON, True),
        ("powered_down", NodeState.IDLE, PowerState.OFF, True),
        ("powering_up", NodeState.IDLE, PowerState.POWERING_UP, True),
        ("reserved", NodeState.UNKNOWN, PowerState.ON, True),
        ("future", NodeState.UNKNOWN, PowerState.ON, True),
    ],
)
def test_node_states_and_suffixes(
    native: str, state: NodeState, power: PowerState, responding: bool
) -> None:
    assert node_state(native) == (state, power, responding)


@pytest.mark.parametrize(
    ("expression", "hosts"),
    [
        ("n1", ("n1",)),
        ("n[1-2]", ("n1", "n2")),
        ("n[01-03,07]", ("n01", "n02", "n03", "n07")),
        ("gpu[8-10],login1", ("gpu8", "gpu9", "gpu10", "login1")),
        ("r[1-2]n[1-2]", ("r1n1", "r1n2", "r2n1", "r2n2")),
        (
            "demo-00060-1-[0001-0003]",
            ("demo-00060-1-0001", "demo-00060-1-0002", "demo-00060-1-0003"),
        ),
        ("a[1],b", ("a1", "b")),
        ("", ()),
        ("(null)", ()),
        ("None assigned", ()),
    ],
)
def test_hostlist_expansion(expression: str, hosts: tuple[str, ...]) -> None:
    assert expand_hostlist(expression) == hosts


@pytest.mark.parametrize("expression", ["n[1-2", "n1-2]", "n[a-b]", "n[5-1]", "n[1-100000]"])
def test_bad_hostlists_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="hostlist"):
        expand_hostlist(expression)


def test_hostlist_range_has_four_digits() -> None:
    assert hostlist_range("c-", 12) == "c-[0001-0012]"
    assert hostlist_range("c-", 1) == "c-0001"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("infinite", None),
        ("UNLIMITED", None),
        ("NOT_SET", None),
        ("n/a", None),
        ("", None),
        ("garbage", None),
        ("30", 1800.0),
        ("30:00", 1800.0),
        ("1:00:00", 3600.0),
        ("1-00:00:00", 86400.0),
        ("2-12", 2 * 86400 + 12 * 3600.0),
        ("2-12:30", 2 * 86400 + 12 * 3600 + 1800.0),
        ("7-00:00:01", 7 * 86400 + 1.0),
        ("01:02.345", 62.345),
        ("1:02:03.5", 3723.5),
    ],
)
def test_duration_parsing(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_duration_round_trip() -> None:
    for seconds in (1, 59, 61, 3599, 86399, 86400, 1234567):
        assert parse_duration(format_duration(seconds)) == seconds


def test_epoch_times_in_every_shape() -> None:
    moment = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert parse_epoch("1700000000") == moment
    assert parse_epoch(1700000000) == moment
    assert parse_epoch({"set": True, "infinite": False, "number": 1700000000}) == moment
    for unset in ("N/A", "Unknown", "None", "NONE", "0", 0, {"set": False, "number": 0}, None):
        assert parse_epoch(unset) is None


def test_json_numbers() -> None:
    assert json_number(5) == 5
    assert json_number({"set": True, "infinite": False, "number": 5}) == 5
    assert json_number({"set": False, "infinite": False, "number": 0}) is None
    assert json_number({"set": False, "infinite": True, "number": 0}) is None
    assert json_number(None) is None
    assert json_number(True) is None


def test_exit_codes() -> None:
    assert wait_status_exit_code(0) == 0
    assert wait_status_exit_code(3 << 8) == 3  # the lab's `exit 3` job: 768
    assert wait_status_exit_code(15) == 128 + 15  # the lab's cancelled jobs: SIGTERM
    assert wait_status_exit_code(0xFFFFFFFE) is None  # NO_VAL
    assert wait_status_exit_code(None) is None
    assert parse_exit_code("0:0") == 0
    assert parse_exit_code("2:0") == 2
    assert parse_exit_code("0:9") == 128 + 9
    assert parse_exit_code("") is None


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        ("1024K", 1.0),
        ("5.50M", 5.5),
        ("2G", 2048.0),
        ("1T", 1024.0 * 1024),
        ("2048", 2.0),
        ("", None),
    ],
)
def test_sizes(text: str, mb: float | None) -> None:
    assert parse_size_mb(text) == mb


@pytest.mark.parametrize(
    ("text", "gpus"),
    [
        ("(null)", 0),
        ("gpu:2", 2),
        ("gpu:a100:4", 4),
        ("gpu:a100:4(S:0-1)", 4),
        ("gpu:a100:2(S:0),gpu:v100:1(S:1)", 3),
        ("gpu:1g.5gb:7,shard:8", 7),
        ("billing=4,cpu=4,gres/gpu=2,gres/gpu:a100=2,mem=8G,node=1", 2),
        ("cpu=4,gres/gpu:a100=1,gres/gpu:v100=1", 2),
        ("cpu=4,mem=8G,node=1", 0),
    ],
)
def test_gpu_counts(text: str, gpus: int) -> None:
    assert gpu_count(text) == gpus
