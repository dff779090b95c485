"""Reading PBS's output: state mapping, exit codes, times, sizes, exec_host, JSON repairs,
vnode states and which vnodes serve which queue."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from corral_pbs.parse import (
    array_parts,
    decode_json,
    exec_hosts,
    job_state,
    node_state,
    owner_name,
    parse_duration,
    parse_size_mb,
    parse_time,
)
from corral_pbs.scheduler import _queue_members
from corral_sdk.errors import ProviderError
from corral_sdk.providers.scheduler import JobState, NodeState, PowerState


@pytest.mark.parametrize(
    ("attributes", "state"),
    [
        ({"job_state": "Q", "substate": 10}, JobState.PENDING),
        ({"job_state": "W", "substate": 30}, JobState.PENDING),
        ({"job_state": "T", "substate": 0}, JobState.PENDING),
        ({"job_state": "H", "substate": 20}, JobState.HELD),
        ({"job_state": "H", "substate": 22}, JobState.PENDING),  # held for a dependency
        ({"job_state": "R", "substate": 42}, JobState.RUNNING),
        ({"job_state": "B", "substate": 70}, JobState.RUNNING),
        ({"job_state": "E", "substate": 50}, JobState.COMPLETING),
        ({"job_state": "S", "substate": 43}, JobState.SUSPENDED),
        ({"job_state": "U", "substate": 45}, JobState.SUSPENDED),
        ({"job_state": "M", "substate": 94}, JobState.UNKNOWN),
        ({"job_state": "F", "substate": 92, "Exit_status": 0}, JobState.COMPLETED),
        ({"job_state": "F", "substate": 93, "Exit_status": 1}, JobState.FAILED),
        ({"job_state": "F", "substate": 93, "Exit_status": -29}, JobState.TIMEOUT),
        ({"job_state": "F", "substate": 93, "Exit_status": -27}, JobState.OUT_OF_MEMORY),
        ({"job_state": "F", "substate": 93, "Exit_status": -26}, JobState.OUT_OF_MEMORY),
        ({"job_state": "F", "substate": 93, "Exit_status": -20}, JobState.NODE_FAIL),
        ({"job_state": "F", "substate": 93, "Exit_status": 271}, JobState.CANCELLED),
        ({"job_state": "F", "substate": 93, "Exit_status": 265}, JobState.FAILED),  # SIGKILL
        ({"job_state": "F", "substate": 91, "Exit_status": 271}, JobState.CANCELLED),
        ({"job_state": "F", "substate": 91}, JobState.CANCELLED),  # deleted while queued
        ({"job_state": "F", "substate": 92}, JobState.COMPLETED),  # an array, all done
        ({"job_state": "F", "substate": 93}, JobState.FAILED),  # an array, a subjob failed
        ({"job_state": "X", "substate": 92, "Exit_status": 0}, JobState.COMPLETED),
        ({"job_state": "X", "substate": 93, "Exit_status": 2}, JobState.FAILED),
        ({"job_state": "Z"}, JobState.UNKNOWN),
        ({}, JobState.UNKNOWN),
    ],
)
def test_job_state(attributes: dict[str, Any], state: JobState) -> None:
    assert job_state(attributes)[0] is state


def test_job_state_reasons() -> None:
    assert job_state({"job_state": "F", "Exit_status": 3})[1] == "exited with status 3"
    assert job_state({"job_state": "F", "Exit_status": 265})[1] == "killed by signal 9"
    assert "walltime" in job_state({"job_state": "F", "Exit_status": -29})[1]
    assert job_state({"job_state": "F", "Exit_status": -1})[1].endswith("(JOB_EXEC code -1)")


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        ("node1/0*2+node2/0*2", ("node1", "node2")),
        ("charon24/0*2+charon21/0*2", ("charon24", "charon21")),
        ("qot-calc0/10+qot-calc0/11+qot-calc0/12", ("qot-calc0",)),
        ("khas024/4", ("khas024",)),
        ("", ()),
        (None, ()),
    ],
)
def test_exec_hosts(value: str | None, hosts: tuple[str, ...]) -> None:
    assert exec_hosts(value) == hosts


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue Oct  4 21:23:20 2022", datetime(2022, 10, 4, 21, 23, 20, tzinfo=UTC)),
        ("Mon Jan  1 12:00:00 2024", datetime(2024, 1, 1, 12, 0, tzinfo=UTC)),
        ("Thu May  8 08:42:45 2025", datetime(2025, 5, 8, 8, 42, 45, tzinfo=UTC)),
        ("Wed Jul 23 21:33:27 2025", datetime(2025, 7, 23, 21, 33, 27, tzinfo=UTC)),
        ("UNKNOWN", None),
        ("Foo Bar 99 99:99:99 2025", None),
        (1665476097, None),
    ],
)
def test_parse_time(value: Any, expected: datetime | None) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize(
    ("value", "megabytes"),
    [
        ("527672488kb", 527672488 / 1024),
        ("235gb", 235 * 1024),
        ("512mb", 512),
        ("0gb", 0),
        ("692tb", 692 * 1024**2),
        ("1048576", 1),
        ("128kw", 1),  # words are 8 bytes
        ("lots", None),
        (True, None),
    ],
)
def test_parse_size_mb(value: Any, megabytes: float | None) -> None:
    assert parse_size_mb(value) == megabytes


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("06:00:00", 21600), ("00:13:24", 804), ("2090:06:18", 7524378), (3600, 3600), ("x", None)],
)
def test_parse_duration(value: Any, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


def test_owner_and_array_ids() -> None:
    assert owner_name("amalbavera@aurora-uan-0011.hostmgmt1000.cm.aurora.alcf.anl.gov") == (
        "amalbavera"
    )
    assert owner_name("jan_brezina@META") == "jan_brezina"
    assert array_parts("1234[3].pbs01") == ("1234[].pbs01", "3")
    assert array_parts("1234[].pbs01") == ("1234[].pbs01", "")
    assert array_parts("1234.pbs01") is None


def test_json_that_older_pbs_prints_wrong_is_repaired() -> None:
    # openpbs/openpbs#1255: an environment value of digits printed as a bare number
    numbers = '{"Jobs":{"53.testpbs":{"Variable_List":{"foo":005,\n"bar":1}}}}'
    assert decode_json(numbers, "qstat")["Jobs"]["53.testpbs"]["Variable_List"]["foo"] == "005"
    # openpbs/openpbs#2049: escapes JSON does not have
    escapes = '{"Jobs":{"1.x":{"Variable_List":{"MYVAR":"ab\\,c","Q":"\\\'x\\\'"}}}}'
    variables = decode_json(escapes, "qstat")["Jobs"]["1.x"]["Variable_List"]
    assert variables == {"MYVAR": "ab,c", "Q": "'x'"}
    with pytest.raises(ProviderError) as caught:
        decode_json("qstat: not json", "qstat -f -F json")
    assert caught.value.reason == "unreadable-output"


@pytest.mark.parametrize(
    ("attributes", "state", "power"),
    [
        ({"state": "free"}, NodeState.IDLE, PowerState.ON),
        (
            {
                "state": "free",
                "resources_available": {"ncpus": 64},
                "resources_assigned": {"ncpus": 62},
            },
            NodeState.MIXED,
            PowerState.ON,
        ),
        (
            {
                "state": "free",
                "resources_available": {"ncpus": 8},
                "resources_assigned": {"ncpus": 8},
            },
            NodeState.ALLOCATED,
            PowerState.ON,
        ),
        ({"state": "job-busy"}, NodeState.ALLOCATED, PowerState.ON),
        ({"state": "job-exclusive"}, NodeState.ALLOCATED, PowerState.ON),
        ({"state": "resv-exclusive"}, NodeState.ALLOCATED, PowerState.ON),
        ({"state": "offline"}, NodeState.DRAINED, PowerState.ON),
        ({"state": "offline,job-busy", "jobs": ["1.x"]}, NodeState.DRAINING, PowerState.ON),
        ({"state": "down,offline"}, NodeState.DOWN, PowerState.ON),
        ({"state": "state-unknown,down"}, NodeState.DOWN, PowerState.ON),
        ({"state": "sleep"}, NodeState.IDLE, PowerState.OFF),
        ({"state": "provisioning"}, NodeState.UNKNOWN, PowerState.POWERING_UP),
        ({"state": "weird"}, NodeState.UNKNOWN, PowerState.ON),
    ],
)
def test_node_state(attributes: dict[str, Any], state: NodeState, power: PowerState) -> None:
    assert node_state(attributes) == (state, power)


def test_queue_members() -> None:
    # qexp is IT4Innovations Barbora's queue (It4innovations/hyperqueue,
    # crates/hyperqueue/src/server/client/autoalloc.rs, commit 167715c); the vnode is UTS's
    # hpcnode03 as its documentation shows it, copied here with Qlist set to qexp
    qexp = {
        "queue_type": "Execution",
        "default_chunk": {"ncpus": 36, "Qlist": "qexp"},
        "enabled": "True",
        "started": "True",
    }
    hpcnode03 = {
        "state": "free",
        "resources_available": {"mem": "384000000kb", "ncpus": 56, "Qlist": "normal"},
    }
    queues = {
        "qexp": qexp,
        "qprod": {"queue_type": "Execution", "default_chunk": {"Qlist": "qprod"}},
        "workq": {"queue_type": "Execution"},
        "test": {"queue_type": "Execution"},
        "main": {"queue_type": "Route", "route_destinations": "qexp,qprod,elsewhere@other"},
        "M1150389": {"queue_type": "Execution"},
    }
    nodes = {
        "hpcnode03": hpcnode03,
        "n1": {**hpcnode03, "resources_available": {"Qlist": "qexp,qprod", "ncpus": 36}},
        "n2": {**hpcnode03, "resources_available": {"Qlist": "qprod", "broken": "True"}},
        "aice003": {"state": "free", "queue": "test"},
        "x3006c0s13b1n0": {"state": "free", "resv": "M1150389.polaris-pbs-01.hsn.cm.polaris"},
    }
    members = _queue_members(queues, nodes)
    assert members["qexp"] == ["n1"]
    assert members["qprod"] == ["n1", "n2"]
    assert members["workq"] == ["hpcnode03", "n1", "n2", "x3006c0s13b1n0"]  # not tied: any
    assert members["test"] == ["aice003"]  # tied by its queue attribute
    assert members["main"] == ["n1", "n2"]
    assert members["M1150389"] == ["x3006c0s13b1n0"]
    booleans = {"q": {"queue_type": "Execution", "default_chunk": {"broken": "False"}}}
    assert _queue_members(booleans, nodes)["q"] == ["hpcnode03", "n1", "x3006c0s13b1n0"]


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, corral_pbs.plugin as p; "
        "p.corral_register_schedulers(); "
        "print('corral_pbs.scheduler' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
