"""Submitting: the qsub command line, the uploaded script, and what PBS cannot express."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

import pytest

from corral_pbs.config import PBSConfig
from corral_pbs.scheduler import PBS
from corral_pbs.submit import interpreter_family, job_name, job_script, qsub_options, walltime
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.scheduler import JobSpec
from corral_sdk.testing import TranscriptRunner

SCRIPT = '#!/bin/bash\n#PBS -l filesystems=home\n\n# the work\nsrun ./app "$1"\n'
HOSTILE = "x'; rm -rf ~ #$(id)`id`"


def full_spec(**changes: object) -> JobSpec:
    fields: dict[str, object] = {
        "script": SCRIPT,
        "name": "my job's run",
        "partition": "debug-scaling",
        "account": HOSTILE,
        "nodes": 2,
        "ntasks_per_node": 4,
        "cpus_per_task": 2,
        "memory_mb": 1024,
        "gpus_per_node": "2",
        "time_limit_seconds": 36 * 3600 + 61,
        "working_directory": "/scratch/my dir",
        "output_path": "logs/out $USER.txt",
        "error_path": "~/err.txt",
        "env": {"GREETING": "hello, world", "QUOTED": HOSTILE, "LINES": "a\nb"},
        "array": "0-99:10%5",
        "depends_on": ("4683812.aurora-pbs-0001", "0[].725ccdf1a5fb"),
        "hold": True,
        "exclusive": True,
        "mail_types": ("BEGIN", "END", "FAIL"),
        "mail_user": "ada@example.org",
        "flags": {"filesystems": "home:eagle", "r": "y", "V": None},
        "script_headers": "#PBS -W umask=022",
    }
    fields.update(changes)
    return JobSpec(**fields)  # type: ignore[arg-type]


def prepare(job: JobSpec) -> None:
    """What submit() checks before running anything."""
    qsub_options(job, PBSConfig())
    job_script(job)


async def submit(job: JobSpec, config: PBSConfig | None = None) -> TranscriptRunner:
    runner = TranscriptRunner(target="pbs-login")
    runner.expect(match=r".*qsub .*", stdout="1234.pbs01\n")
    await PBS(runner, config).submit(job)
    runner.assert_all_used()
    return runner


@pytest.mark.anyio
async def test_full_job_spec_command_line() -> None:
    runner = await submit(
        full_spec(gpus_per_node="a100:2"), PBSConfig(gpu_type_resource="gpu_type")
    )
    [command] = runner.commands
    [path] = runner.written
    assert re.fullmatch(r"\.corral/jobs/corral-[0-9a-f]{12}\.pbs", path)
    script_word = f'"$HOME"/{path}'
    assert command == (
        "cd -- '/scratch/my dir' && qsub -N my_job_s_run -q debug-scaling "
        "-A 'x'\"'\"'; rm -rf ~ #$(id)`id`' "
        "-l select=2:ncpus=8:mpiprocs=4:ompthreads=2:mem=1024mb:ngpus=2:gpu_type=a100 "
        "-l walltime=36:01:01 -l place=excl -o 'logs/out $USER.txt' -e \"$HOME\"/err.txt "
        "-J 0-99:10%5 -W 'depend=afterok:4683812.aurora-pbs-0001:0[].725ccdf1a5fb' -h -m bea "
        "-M ada@example.org -l filesystems=home:eagle -r y -V "
        f"{script_word} && rm -f -- {script_word}"
    )


@pytest.mark.anyio
async def test_hostile_values_stay_single_words() -> None:
    runner = await submit(full_spec(), PBSConfig(gpu_type_resource="gpu_type"))
    words = shlex.split(runner.commands[0])
    assert words[words.index("-A") + 1] == HOSTILE
    assert words[words.index("-o") + 1] == "logs/out $USER.txt"
    assert "rm" in words  # only the clean-up after qsub: the hostile rm stayed inside -A
    assert words.count("rm") == 1


@pytest.mark.anyio
async def test_script_keeps_directives_before_corral_lines() -> None:
    runner = await submit(full_spec(), PBSConfig(gpu_type_resource="gpu_type"))
    [data] = runner.written.values()
    assert data.decode() == (
        "#!/bin/bash\n"
        "#PBS -W umask=022\n"
        "#PBS -l filesystems=home\n"
        "\n"
        "# the work\n"
        "# added by Corral: the job's environment and working directory\n"
        "export GREETING='hello, world'\n"
        "export QUOTED='x'\"'\"'; rm -rf ~ #$(id)`id`'\n"
        "export LINES='a\n"
        "b'\n"
        "cd -- '/scratch/my dir' || exit 1\n"
        'srun ./app "$1"\n'
    )


@pytest.mark.anyio
async def test_minimal_job_has_no_options_and_is_put_privately() -> None:
    runner = TranscriptRunner(target="pbs-login")
    runner.expect(match=r"qsub \S+ && rm -f -- \S+", stdout="4683812.aurora-pbs-0001\n")
    job = await PBS(runner).submit(JobSpec(script="#!/bin/sh\ntrue\n"))
    assert job.job_id == "4683812.aurora-pbs-0001"
    [call] = [c for c in runner.calls if c.kind == "put"]
    assert call.data == b"#!/bin/sh\ntrue\n"
    runner.assert_all_used()


@pytest.mark.anyio
async def test_array_submission_returns_the_array_id(
    pbs_transcript: Callable[..., TranscriptRunner],
) -> None:
    runner = pbs_transcript("array")
    pbs = PBS(runner)
    job = await pbs.submit(
        JobSpec(script="#!/bin/bash\necho $PBS_ARRAY_INDEX\n", name="testname", array="0-1000")
    )
    assert job.job_id == "0[].725ccdf1a5fb"


@pytest.mark.anyio
async def test_rejected_submission_carries_qsubs_message(
    pbs_transcript: Callable[..., TranscriptRunner],
) -> None:
    runner = pbs_transcript("errors")
    with pytest.raises(ProviderError) as caught:
        await PBS(runner).submit(JobSpec(script="#!/bin/bash\ntrue\n", partition="nosuchqueue"))
    assert caught.value.message == "qsub: Unknown queue"
    assert caught.value.reason == "submit-rejected"


@pytest.mark.anyio
async def test_an_id_on_stdout_is_a_submitted_job_even_if_clean_up_failed() -> None:
    runner = TranscriptRunner(target="pbs-login")
    runner.expect(
        match=r"qsub .*",
        stdout="4683812.aurora-pbs-0001\n",
        stderr="rm: cannot remove 'x.pbs': Permission denied\n",
        exit_status=1,
    )
    job = await PBS(runner).submit(JobSpec(script="#!/bin/sh\ntrue\n"))
    assert job.job_id == "4683812.aurora-pbs-0001"


@pytest.mark.anyio
async def test_output_that_is_not_an_id_is_an_error() -> None:
    runner = TranscriptRunner(target="pbs-login")
    runner.expect(match=r"qsub .*", stdout="Job submitted\n")
    with pytest.raises(ProviderError) as caught:
        await PBS(runner).submit(JobSpec(script="#!/bin/sh\ntrue\n"))
    assert caught.value.reason == "unreadable-output"


@pytest.mark.anyio
async def test_default_queue_bin_dir_and_prefix_from_config() -> None:
    config = PBSConfig(
        default_queue="workq",
        bin_dir="/opt/pbs/bin",
        command_prefix="source /etc/profile.d/pbs.sh &&",
        script_dir="/scratch/corral",
    )
    runner = await submit(JobSpec(script="#!/bin/bash\ntrue\n"), config)
    assert re.fullmatch(
        r"source /etc/profile\.d/pbs\.sh && /opt/pbs/bin/qsub -q workq "
        r"/scratch/corral/corral-[0-9a-f]{12}\.pbs "
        r"&& rm -f -- /scratch/corral/corral-[0-9a-f]{12}\.pbs",
        runner.commands[0],
    )


@pytest.mark.anyio
async def test_output_alone_joins_error_into_it() -> None:
    options = qsub_options(JobSpec(script="#!/bin/sh\n", output_path="job.log"), PBSConfig())
    assert options == ["-o", "job.log", "-j", "oe"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"qos": "high"}, "qos"),
        ({"array": "1,3,5"}, "array"),
        ({"array": "7"}, "array"),
        ({"array": "9-3"}, "array"),
        ({"array": "0-9:0"}, "array"),
        ({"array": "0-9%0"}, "array"),
        ({"gpus_per_node": "a100:2"}, "gpus_per_node"),
        ({"gpus_per_node": "two"}, "gpus_per_node"),
        ({"env": {"BAD-NAME": "x"}}, "env"),
        ({"ntasks": 7}, "ntasks"),
        ({"mail_types": ("TIME_LIMIT",)}, "mail_types"),
        ({"mail_types": ("NONE", "END")}, "mail_types"),
        ({"account": "a\nb"}, "account"),
        ({"depends_on": ("12:34",)}, "depends_on"),
        ({"flags": {"not a flag": "x"}}, "flags"),
        ({"flags": {"filesystems": None}}, "flags"),
    ],
)
def test_what_pbs_cannot_express_is_invalid(changes: dict[str, object], field: str) -> None:
    job = full_spec(**changes)
    with pytest.raises(Invalid) as caught:
        prepare(job)
    assert caught.value.field == field


def test_throttle_refused_where_the_server_has_none() -> None:
    with pytest.raises(Invalid) as caught:
        qsub_options(JobSpec(script="#!/bin/sh\n", array="0-9%2"), PBSConfig(array_throttle=False))
    assert caught.value.field == "array"
    options = qsub_options(JobSpec(script="#!/bin/sh\n", array="0-9%2"), PBSConfig())
    assert options == ["-J", "0-9%2"]


@pytest.mark.parametrize(
    ("job", "select"),
    [
        ({"nodes": 3}, "3"),
        ({"ntasks": 6}, "6:ncpus=1:mpiprocs=1"),
        ({"ntasks": 8, "nodes": 2}, "2:ncpus=4:mpiprocs=4"),
        ({"ntasks": 8, "ntasks_per_node": 4}, "2:ncpus=4:mpiprocs=4"),
        ({"cpus_per_task": 16}, "1:ncpus=16:ompthreads=16"),
        ({"memory_mb": 4000, "gpus_per_node": "4"}, "1:mem=4000mb:ngpus=4"),
    ],
)
def test_select_statement(job: dict[str, object], select: str) -> None:
    options = qsub_options(JobSpec(script="#!/bin/sh\n", **job), PBSConfig())  # type: ignore[arg-type]
    assert options == ["-l", f"select={select}"]


def test_memory_without_nodes_cannot_be_per_task() -> None:
    with pytest.raises(Invalid) as caught:
        qsub_options(JobSpec(script="#!/bin/sh\n", ntasks=4, memory_mb=100), PBSConfig())
    assert caught.value.field == "nodes"


@pytest.mark.parametrize(
    ("first_line", "family"),
    [
        ("#!/bin/bash", "sh"),
        ("#!/usr/bin/env bash", "sh"),
        ("#!/usr/bin/env -S bash -l", "sh"),
        ("#!/bin/tcsh -f", "csh"),
        ("#!/usr/bin/env python3", "other"),
        ("echo no shebang", "sh"),
    ],
)
def test_interpreter_family(first_line: str, family: str) -> None:
    assert interpreter_family(first_line + "\ntrue\n") == family


def test_csh_scripts_get_setenv() -> None:
    job = JobSpec(script="#!/bin/csh\necho $A\n", env={"A": "b c"}, working_directory="~/w")
    assert job_script(job) == (
        "#!/bin/csh\n"
        "# added by Corral: the job's environment and working directory\n"
        "setenv A 'b c'\n"
        'cd "$HOME"/w || exit 1\n'
        "echo $A\n"
    )


def test_other_interpreters_get_the_environment_through_qsub() -> None:
    job = JobSpec(script="#!/usr/bin/env python3\nprint(1)\n", env={"A": "x,y", "B": "it's"})
    assert job_script(job) == job.script
    assert qsub_options(job, PBSConfig()) == ["-v", shlex.quote("A='x,y',B=\"it's\"")]
    with pytest.raises(Invalid) as caught:
        job_script(JobSpec(script=job.script, working_directory="/scratch"))
    assert caught.value.field == "working_directory"


def test_names_and_walltimes() -> None:
    assert job_name("2024 run #1") == "j2024_run__1"
    assert len(job_name("x" * 300)) == 230
    assert walltime(59) == "00:00:59"
    assert walltime(100 * 3600) == "100:00:00"
