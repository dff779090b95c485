"""Submitting: the sbatch command line, the script file, and what sbatch refuses."""

from __future__ import annotations

import re
import shlex

import msgspec
import pytest
from slurm_transcripts import transcript

from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.scheduler import JobSpec
from corral_sdk.testing import TranscriptRunner
from corral_slurm.config import SlurmConfig
from corral_slurm.scheduler import Slurm

pytestmark = pytest.mark.anyio

SCRIPT_PATH = re.compile(r"^\.corral/jobs/[0-9a-f]{16}\.sbatch$")

FULL = JobSpec(
    script="#!/bin/bash\n#SBATCH --comment=mine\nsrun hostname\n",
    name="my job",
    partition="gpu",
    account="proj-1",
    qos="high",
    nodes=2,
    ntasks=8,
    ntasks_per_node=4,
    cpus_per_task=2,
    gpus_per_node="a100:2",
    memory_mb=16000,
    time_limit_seconds=90061,
    working_directory="/scratch/alice/run 1",
    output_path="out-%j.txt",
    error_path="err-%A_%a.txt",
    env={"OMP_NUM_THREADS": "2", "GREETING": "a,b c"},
    array="0-9%2",
    depends_on=("100", "101_3"),
    hold=True,
    exclusive=True,
    mail_types=("BEGIN", "end"),
    mail_user="alice@example.org",
    flags={"constraint": "ib", "requeue": None},
    script_headers="#SBATCH --licenses=matlab\n",
)


def sbatch_runner(stdout: str = "4242\n", **kwargs: object) -> TranscriptRunner:
    return TranscriptRunner().expect(match=r"(.* )?sbatch .*", stdout=stdout, **kwargs)  # type: ignore[arg-type]


async def submitted_argv(job: JobSpec, config: SlurmConfig | None = None) -> list[str]:
    runner = sbatch_runner()
    await Slurm(runner, config).submit(job)
    (command,) = runner.commands
    return shlex.split(command)


async def test_full_job_spec_command_line_and_script() -> None:
    runner = sbatch_runner()
    submitted = await Slurm(runner, None).submit(FULL)
    assert submitted.job_id == "4242"
    (command,) = runner.commands
    (path,) = runner.written
    assert SCRIPT_PATH.match(path), path
    assert command == (
        "env 'GREETING=a,b c' OMP_NUM_THREADS=2 sbatch --parsable '--job-name=my job' "
        "--partition=gpu --account=proj-1 --qos=high --nodes=2 --ntasks=8 "
        "--ntasks-per-node=4 --cpus-per-task=2 --gpus-per-node=a100:2 --mem=16000M "
        "--time=1-01:01:01 '--chdir=/scratch/alice/run 1' --output=out-%j.txt "
        "--error=err-%A_%a.txt --export=ALL,GREETING,OMP_NUM_THREADS --array=0-9%2 "
        "--dependency=afterok:100:101_3 --hold --exclusive --mail-type=BEGIN,END "
        f"--mail-user=alice@example.org --constraint=ib --requeue {path}"
    )
    assert runner.written[path] == (
        b"#!/bin/bash\n#SBATCH --licenses=matlab\n#SBATCH --comment=mine\nsrun hostname\n"
    )


async def test_minimal_job_is_just_the_script() -> None:
    argv = await submitted_argv(JobSpec(script="#!/bin/sh\ntrue"))
    assert argv[:2] == ["sbatch", "--parsable"]
    assert len(argv) == 3 and SCRIPT_PATH.match(argv[2])


async def test_script_gets_a_final_newline_and_headers_after_the_shebang() -> None:
    runner = sbatch_runner()
    job = JobSpec(script="#!/bin/sh\necho hi", script_headers="#SBATCH -N 1\n#SBATCH -n 2")
    await Slurm(runner, None).submit(job)
    assert list(runner.written.values()) == [b"#!/bin/sh\n#SBATCH -N 1\n#SBATCH -n 2\necho hi\n"]


HOSTILE = 'it\'s a "job" $(touch /tmp/pwned) `id` ;|& \\ $HOME\ttab'


async def test_hostile_values_reach_sbatch_as_single_literal_arguments() -> None:
    job = JobSpec(
        script="#!/bin/bash\ntrue\n",
        name=HOSTILE,
        partition="debug",
        working_directory="/tmp/$(reboot)/it's",
        output_path="out put %j.txt",
        mail_user="a'b@example.org",
        env={"GREETING": HOSTILE + "\nsecond line,with=comma"},
        flags={"comment": HOSTILE},
    )
    argv = await submitted_argv(job)
    assert argv[:2] == ["env", f"GREETING={HOSTILE}\nsecond line,with=comma"]
    assert f"--job-name={HOSTILE}" in argv
    assert "--chdir=/tmp/$(reboot)/it's" in argv
    assert "--output=out put %j.txt" in argv
    assert "--mail-user=a'b@example.org" in argv
    assert f"--comment={HOSTILE}" in argv
    assert "--export=ALL,GREETING" in argv


async def test_hostile_values_do_not_escape_quoting_in_the_command_text() -> None:
    runner = sbatch_runner()
    await Slurm(runner, None).submit(
        JobSpec(script="#!/bin/bash\ntrue\n", name="$(id)", env={"X": "`id`"})
    )
    (command,) = runner.commands
    # every $ and ` sits inside single quotes, where no shell expands anything
    assert "'--job-name=$(id)'" in command
    assert "'X=`id`'" in command


async def test_lab_recorded_hostile_submission_matches() -> None:
    """The exact command whose job printed the hostile value back intact in the lab."""
    runner = transcript("lab-jobs-text.txt")
    slurm = Slurm(runner, SlurmConfig(status_format="text"))
    submitted = await slurm.submit(
        JobSpec(
            script='#!/bin/sh\nprintf "%s" "$GREETING" > "$HOME/corral-hostile.out"\n',
            name='it\'s a "job" $(id) `id` ;|&',
            env={"GREETING": "a,b c'd\"e $(id) `id` $HOME ;|& \\n"},
            output_path="corral hostile %j.out",
        )
    )
    assert submitted.job_id == "17"


async def test_parsable_output_with_cluster_name() -> None:
    runner = sbatch_runner(stdout="5150;cluster2\n", stderr="sbatch: warning: something\n")
    submitted = await Slurm(runner, None).submit(JobSpec(script="#!/bin/sh\ntrue\n"))
    assert submitted.job_id == "5150"
    assert "warning" in submitted.message


async def test_rejected_submission_carries_sbatchs_message() -> None:
    runner = transcript("lab-cluster.txt")
    with pytest.raises(ProviderError) as info:
        await Slurm(runner, None).submit(
            JobSpec(script="#!/bin/bash\nsleep 1\n", partition="nowhere")
        )
    assert info.value.message == (
        "sbatch: error: invalid partition specified: nowhere\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    )
    assert info.value.reason == "provider-error"


async def test_accepted_without_a_job_id_is_an_error() -> None:
    with pytest.raises(ProviderError, match="no job id"):
        await Slurm(sbatch_runner(stdout="Submitted batch job\n"), None).submit(
            JobSpec(script="#!/bin/sh\ntrue\n")
        )


async def test_cluster_options_come_first_and_the_jobs_win() -> None:
    config = SlurmConfig(
        sbatch_options={"constraint": "ib", "requeue": "", "partition": "batch", "exclusive": None},
        script_dir="/scratch/corral/",
        command_prefix="module load slurm",
    )
    runner = sbatch_runner()
    await Slurm(runner, config).submit(
        JobSpec(script="#!/bin/sh\ntrue\n", partition="gpu", flags={"constraint": "nvme"})
    )
    (command,) = runner.commands
    prefix, _, rest = command.partition(" && ")
    assert prefix == "module load slurm"
    argv = shlex.split(rest)
    assert argv[:-1] == [
        "sbatch",
        "--parsable",
        "--requeue",
        "--exclusive",
        "--partition=gpu",
        "--constraint=nvme",
    ], "an empty setting is a flag; the job's partition and constraint win"
    assert re.fullmatch(r"/scratch/corral/[0-9a-f]{16}\.sbatch", argv[-1])


async def test_every_job_gets_its_own_script_file() -> None:
    runner = TranscriptRunner().expect(match=r"sbatch .*", stdout="1\n", times=None)
    slurm = Slurm(runner, None)
    for _ in range(3):
        await slurm.submit(JobSpec(script="#!/bin/sh\ntrue\n"))
    assert len({call.command for call in runner.calls if call.kind == "put"}) == 3


def _spec(**changes: object) -> JobSpec:
    return msgspec.structs.replace(JobSpec(script="#!/bin/sh\ntrue\n"), **changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"script": "echo no shebang\n"}, "script"),
        ({"script_headers": "module load x"}, "script_headers"),
        ({"array": "1-3 && rm -rf ~"}, "array"),
        ({"array": "a-b"}, "array"),
        ({"depends_on": ("12; id",)}, "depends_on"),
        ({"gpus_per_node": "2 --wrap=id"}, "gpus_per_node"),
        ({"mail_types": ("SOMETIMES",)}, "mail_types"),
        ({"mail_types": ("NONE", "END")}, "mail_types"),
        ({"env": {"NOT-A-NAME": "x"}}, "env"),
        ({"name": "two\nlines"}, "name"),
        ({"partition": ""}, "partition"),
        ({"output_path": "a\rb"}, "output_path"),
        ({"nodes": 4, "ntasks": 2}, "ntasks"),
        ({"nodes": 2, "ntasks": 9, "ntasks_per_node": 4}, "ntasks_per_node"),
        ({"flags": {"--constraint": "ib"}}, "flags"),
        ({"flags": {"wrap": "id"}}, "flags"),
        ({"flags": {"wait": None}}, "flags"),
        ({"flags": {"partition": "x"}, "partition": "y"}, "flags"),
        ({"flags": {"export": "NONE"}, "env": {"A": "1"}}, "flags"),
        ({"flags": {"mem-per-cpu": "1G"}, "memory_mb": 1000}, "flags"),
        ({"flags": {"oversubscribe": None}, "exclusive": True}, "flags"),
        ({"flags": {"comment": "a\nb"}}, "flags"),
    ],
)
async def test_invalid_options_name_the_field(changes: dict[str, object], field: str) -> None:
    runner = TranscriptRunner()
    with pytest.raises(Invalid) as info:
        await Slurm(runner, None).submit(_spec(**changes))
    assert info.value.field == field
    assert runner.calls == [], "nothing is written or run for an invalid job"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(1, "0-00:00:01"), (60, "0-00:01:00"), (3600, "0-01:00:00"), (90061, "1-01:01:01")],
)
async def test_time_limit_is_days_hours_minutes_seconds(seconds: int, expected: str) -> None:
    argv = await submitted_argv(_spec(time_limit_seconds=seconds))
    assert f"--time={expected}" in argv
