"""Submitting: one command, sbatch alone with the script on its standard input (no file, no
``sh -c``), the script it sends, and what sbatch refuses."""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from slurm_transcripts import header, transcript

from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.scheduler import JobSpec, SubmittedJob
from corral_sdk.testing import ShellRunner, TranscriptRunner
from corral_sdk.testing import shell_runner as sdk_shell_runner
from corral_slurm.config import SlurmConfig
from corral_slurm.scheduler import Slurm

pytestmark = pytest.mark.anyio


@dataclass
class Submission:
    """The one call a submission made."""

    command: str
    """``[prefix && ][env K=V ... ]sbatch --parsable <options>``: no script path."""
    script: str
    """The command's standard input, which sbatch reads as the job script."""

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)


def submission(runner: TranscriptRunner) -> Submission:
    """The one call a submission made: a command whose standard input is the script (nothing
    uploaded, no file written)."""
    (call,) = runner.calls
    assert call.kind == "run", "one command, no separate upload"
    assert call.input is not None, "the script is the command's standard input"
    assert runner.written == {}, "nothing is uploaded apart from the command"
    return Submission(command=call.command, script=call.input)


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
    return submission(runner).argv


async def test_full_job_spec_command_line_and_script() -> None:
    runner = sbatch_runner()
    submitted = await Slurm(runner, None).submit(FULL)
    assert submitted.job_id == "4242"
    sent = submission(runner)
    assert sent.command == (
        "env 'GREETING=a,b c' OMP_NUM_THREADS=2 sbatch --parsable '--job-name=my job' "
        "--partition=gpu --account=proj-1 --qos=high --nodes=2 --ntasks=8 "
        "--ntasks-per-node=4 --cpus-per-task=2 --gpus-per-node=a100:2 --mem=16000M "
        "--time=1-01:01:01 '--chdir=/scratch/alice/run 1' --output=out-%j.txt "
        "--error=err-%A_%a.txt --export=ALL,GREETING,OMP_NUM_THREADS --array=0-9%2 "
        "--dependency=afterok:100:101_3 --hold --exclusive --mail-type=BEGIN,END "
        "--mail-user=alice@example.org --constraint=ib --requeue"
    ), "no script file: sbatch reads the script from its standard input"
    assert sent.script == (
        "#!/bin/bash\n#SBATCH --licenses=matlab\n#SBATCH --comment=mine\nsrun hostname\n"
    )


async def test_minimal_job_is_sbatch_alone_with_the_script_on_stdin() -> None:
    runner = sbatch_runner()
    await Slurm(runner, None).submit(JobSpec(script="#!/bin/sh\ntrue"))
    sent = submission(runner)
    assert sent.command == "sbatch --parsable"
    assert sent.script == "#!/bin/sh\ntrue\n"


async def test_script_gets_a_final_newline_and_headers_after_the_shebang() -> None:
    runner = sbatch_runner()
    job = JobSpec(script="#!/bin/sh\necho hi", script_headers="#SBATCH -N 1\n#SBATCH -n 2")
    await Slurm(runner, None).submit(job)
    assert submission(runner).script == "#!/bin/sh\n#SBATCH -N 1\n#SBATCH -n 2\necho hi\n"


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
    sbatch = argv.index("sbatch")
    assert all(arg.startswith("--") for arg in argv[sbatch + 1 :]), "options only, no path"


async def test_hostile_values_do_not_escape_quoting_in_the_command_text() -> None:
    runner = sbatch_runner()
    await Slurm(runner, None).submit(
        JobSpec(script="#!/bin/bash\ntrue\n", name="$(id)", env={"X": "`id`"})
    )
    command = submission(runner).command
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
        command_prefix="module load slurm",
    )
    runner = sbatch_runner()
    await Slurm(runner, config).submit(
        JobSpec(script="#!/bin/sh\ntrue\n", partition="gpu", flags={"constraint": "nvme"})
    )
    sent = submission(runner)
    assert sent.command == (
        "module load slurm && sbatch --parsable --requeue --exclusive --partition=gpu "
        "--constraint=nvme"
    ), "an empty setting is a flag; the job's partition and constraint win"
    assert sent.script == "#!/bin/sh\ntrue\n"


async def test_every_job_is_one_command_with_its_own_script() -> None:
    runner = TranscriptRunner().expect(match=r"sbatch --parsable", stdout="1\n", times=None)
    slurm = Slurm(runner, None)
    for number in range(3):
        await slurm.submit(JobSpec(script=f"#!/bin/sh\necho {number}\n"))
    assert [call.kind for call in runner.calls] == ["run"] * 3, "one round trip per job"
    assert [call.command for call in runner.calls] == ["sbatch --parsable"] * 3
    assert [call.input for call in runner.calls] == [f"#!/bin/sh\necho {n}\n" for n in range(3)]


async def test_a_failing_prefix_is_reported_as_the_shell_said_it() -> None:
    runner = TranscriptRunner().expect(
        match=r"module load slurm && sbatch --parsable",
        stderr="bash: module: command not found\n",
        exit_status=127,
    )
    with pytest.raises(ProviderError) as info:
        await Slurm(runner, SlurmConfig(command_prefix="module load slurm")).submit(_spec())
    assert info.value.message == "bash: module: command not found"
    assert info.value.reason == "provider-error"


async def test_sbatch_refusing_the_job_carries_its_message() -> None:
    runner = sbatch_runner(
        stdout="",
        stderr="sbatch: error: Batch job submission failed: Invalid account\n",
        exit_status=1,
    )
    with pytest.raises(ProviderError) as info:
        await Slurm(runner, None).submit(_spec(account="nope"))
    assert info.value.message == "sbatch: error: Batch job submission failed: Invalid account"
    assert info.value.reason == "provider-error"


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
    assert runner.calls == [], "nothing is run for an invalid job"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(1, "0-00:00:01"), (60, "0-00:01:00"), (3600, "0-01:00:00"), (90061, "1-01:01:01")],
)
async def test_time_limit_is_days_hours_minutes_seconds(seconds: int, expected: str) -> None:
    argv = await submitted_argv(_spec(time_limit_seconds=seconds))
    assert f"--time={expected}" in argv


# --- the command in a real shell, with a stand-in sbatch ---------------------------------------

SHELLS = [shell for shell in ("sh", "bash") if shutil.which(shell)]

FAKE_SBATCH = """#!/bin/sh
# records what it was given and reads the script from its standard input, as the real one
# does when given no file name, and prints a job id
printf '%s\\n' "$@" > "$HOME/sbatch-argv"
printf '%s' "$GREETING" > "$HOME/sbatch-greeting"
printf '%s' "${FROM_PREFIX-unset}" > "$HOME/sbatch-prefix"
cat > "$HOME/sbatch-script" || exit 1
echo 4242
"""
SBATCH_WROTE = {"sbatch-argv", "sbatch-greeting", "sbatch-prefix", "sbatch-script"}
"""What the stand-in sbatch writes: all that a submission leaves in the home directory."""


def shell_runner(shell: str, tmp_path: Path, sbatch: str = FAKE_SBATCH) -> ShellRunner:
    return sdk_shell_runner(shell, tmp_path, {"sbatch": sbatch})


@pytest.mark.parametrize("shell", SHELLS)
async def test_sbatch_reads_the_script_from_its_standard_input_and_no_file_is_written(
    shell: str, tmp_path: Path
) -> None:
    runner = shell_runner(shell, tmp_path)
    script = "#!/bin/bash\necho \"$GREETING\" \\\n  `id` $(id) 'quoted' %s\n\techo tab\nno newline"
    job = JobSpec(script=script, name=HOSTILE, env={"GREETING": HOSTILE + "\nline,2"})
    submitted = await Slurm(runner, None).submit(job)  # type: ignore[arg-type]
    assert submitted.job_id == "4242"
    home = runner.home
    assert (home / "sbatch-script").read_text() == script + "\n", (
        "sbatch read the script, byte for byte, with a final newline"
    )
    assert (home / "sbatch-argv").read_text().splitlines() == [
        "--parsable",
        f"--job-name={HOSTILE}",
        "--export=ALL,GREETING",
    ], "no script path: sbatch reads standard input"
    assert (home / "sbatch-greeting").read_text() == HOSTILE + "\nline,2"
    assert {path.name for path in home.iterdir()} == SBATCH_WROTE, "no script file, no directory"


@pytest.mark.parametrize("shell", SHELLS)
async def test_the_prefix_runs_first_and_leaves_stdin_to_sbatch(shell: str, tmp_path: Path) -> None:
    runner = shell_runner(shell, tmp_path)
    config = SlurmConfig(command_prefix="export FROM_PREFIX='it ran'", sbatch_options={"hold": ""})
    # larger than a pipe's buffer: the whole script still reaches sbatch
    script = "#!/bin/sh\n" + "# padding line of the job script\n" * 4000 + "true\n"
    await Slurm(runner, config).submit(_spec(script=script, array="0-3"))  # type: ignore[arg-type]
    home = runner.home
    assert (home / "sbatch-prefix").read_text() == "it ran"
    assert (home / "sbatch-argv").read_text().splitlines() == [
        "--parsable",
        "--hold",
        "--array=0-3",
    ]
    assert (home / "sbatch-script").read_text() == script
    assert {path.name for path in home.iterdir()} == SBATCH_WROTE


@pytest.mark.parametrize("shell", SHELLS)
async def test_a_failing_prefix_stops_before_sbatch(shell: str, tmp_path: Path) -> None:
    runner = shell_runner(shell, tmp_path)
    config = SlurmConfig(command_prefix="corral-no-such-command load slurm")
    with pytest.raises(ProviderError) as info:
        await Slurm(runner, config).submit(_spec())  # type: ignore[arg-type]
    assert info.value.reason == "provider-error"
    assert "corral-no-such-command" in info.value.message, info.value.message
    assert not (runner.home / "sbatch-argv").exists(), "sbatch did not run"


@pytest.mark.parametrize("shell", SHELLS)
async def test_sbatchs_refusal_reaches_the_user_as_it_said_it(shell: str, tmp_path: Path) -> None:
    refusing = (
        "#!/bin/sh\n"
        "echo 'sbatch: error: Batch job submission failed: Invalid account or account/partition "
        "combination specified' >&2\n"
        "exit 1\n"
    )
    runner = shell_runner(shell, tmp_path, sbatch=refusing)
    with pytest.raises(ProviderError) as info:
        await Slurm(runner, None).submit(_spec(account="nope"))  # type: ignore[arg-type]
    assert info.value.reason == "provider-error"
    assert info.value.message == (
        "sbatch: error: Batch job submission failed: Invalid account or account/partition "
        "combination specified"
    )
    assert list(runner.home.iterdir()) == [], "sbatch refused without reading; no file either"


# --- several jobs in one command (submit_many) ---------------------------------------------------

COUNTING_SBATCH = """#!/bin/sh
# as the real one: reads the script from standard input; refuses the partition "nowhere"
n=$(( $(cat "$HOME/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$HOME/count"
printf '%s\\n' "$@" > "$HOME/argv-$n"
printf '%s' "${GREETING-unset}" > "$HOME/greeting-$n"
cat > "$HOME/script-$n" || exit 1
case " $* " in *--partition=nowhere*)
  echo 'sbatch: error: invalid partition specified: nowhere' >&2; exit 1;;
esac
echo "$(( 5000 + n ))"
"""


@pytest.mark.parametrize("shell", SHELLS)
async def test_many_jobs_go_in_one_command_and_each_script_arrives_verbatim(
    shell: str, tmp_path: Path
) -> None:
    runner = shell_runner(shell, tmp_path, sbatch=COUNTING_SBATCH)
    marker_like = "corral-sbatch-0123456789abcdef0123456789abcdef"
    scripts = [
        "#!/bin/bash\necho \"$GREETING\" `id` $(id) 'q' \\\\ %s\n\techo tab\nno newline",
        f"#!/bin/sh\ncat <<'EOF'\nEOF\n{marker_like}-0\n{marker_like} end 0 0\ntrue\n",
        "#!/bin/sh\ntrue\n",
        "#!/bin/sh\r\necho crlf\r\n",
    ]
    jobs = [
        JobSpec(script=scripts[0], name=HOSTILE, env={"GREETING": HOSTILE + "\nline,2"}),
        JobSpec(script=scripts[1]),
        JobSpec(script=scripts[2], partition="nowhere"),
        JobSpec(script="#!/bin/sh\ntrue\n", array="every other"),
        JobSpec(script=scripts[3], name="last"),
    ]
    results = await Slurm(runner, None).submit_many(jobs)  # type: ignore[arg-type]
    calls = [result.command for result in runner.results]
    assert len(calls) == 1 and calls[0] == "sh -s", calls
    first, second, refused, invalid, last = results
    assert isinstance(first, SubmittedJob) and first.job_id == "5001"
    assert isinstance(second, SubmittedJob) and second.job_id == "5002"
    assert isinstance(refused, ProviderError)
    assert refused.message == "sbatch: error: invalid partition specified: nowhere"
    assert isinstance(invalid, Invalid) and invalid.field == "array", "refused before sending"
    assert isinstance(last, SubmittedJob) and last.job_id == "5004"
    home = runner.home
    assert (home / "count").read_text() == "4\n", "the invalid job never reached sbatch"
    assert (home / "script-1").read_text() == scripts[0] + "\n"
    assert (home / "script-2").read_text() == scripts[1], "marker-like lines end nothing"
    assert (home / "script-4").read_bytes() == scripts[3].encode(), "carriage returns kept"
    assert (home / "greeting-1").read_text() == HOSTILE + "\nline,2"
    assert (home / "greeting-2").read_text() == "unset", "one job's environment is its own"
    assert (home / "argv-1").read_text().splitlines() == [
        "--parsable",
        f"--job-name={HOSTILE}",
        "--export=ALL,GREETING",
    ]


@pytest.mark.parametrize("shell", SHELLS)
async def test_a_failing_prefix_fails_every_job_of_the_batch(shell: str, tmp_path: Path) -> None:
    runner = shell_runner(shell, tmp_path, sbatch=COUNTING_SBATCH)
    config = SlurmConfig(command_prefix="corral-no-such-command load slurm")
    results = await Slurm(runner, config).submit_many([_spec(), _spec()])  # type: ignore[arg-type]
    for result in results:
        assert isinstance(result, ProviderError)
        assert "corral-no-such-command" in result.message, result.message
    assert not (runner.home / "count").exists(), "sbatch did not run"


async def test_one_job_of_many_is_a_plain_submission() -> None:
    runner = transcript("conformance.txt", target="alice@login1")
    job = JobSpec(script="#!/bin/bash\necho corral-conformance\n", name="corral-conformance")
    (result,) = await Slurm(runner, None).submit_many([job])
    assert isinstance(result, SubmittedJob) and result.job_id == "4242"
    assert submission(runner).argv[0] == "sbatch", "no sh -s for a single job"


async def test_a_batch_recorded_from_the_lab() -> None:
    jobs = header("lab-batch.txt", "jobs")
    runner = transcript("lab-batch.txt", target="alice@ctl")
    slurm = Slurm(runner, None)
    first, refused, third, invalid = await slurm.submit_many(
        [
            JobSpec(script=SLEEP_1, name="corral-batch-1"),
            JobSpec(script=SLEEP_1, partition="nowhere"),
            JobSpec(script="#!/bin/bash\nsleep 1", name="corral-batch-3", env={"A": "b c"}),
            JobSpec(script=SLEEP_1, array="every other"),
        ]
    )
    assert isinstance(first, SubmittedJob) and first.job_id == jobs["first"]
    assert isinstance(third, SubmittedJob) and third.job_id == jobs["third"]
    assert isinstance(refused, ProviderError)
    assert refused.message == (
        "sbatch: error: invalid partition specified: nowhere\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    )
    assert isinstance(invalid, Invalid)
    broken = Slurm(runner, SlurmConfig(command_prefix="corral-no-such-module"))
    for result in await broken.submit_many([JobSpec(script=SLEEP_1), JobSpec(script=SLEEP_2)]):
        assert isinstance(result, ProviderError)
        assert result.message == "bash: line 2: corral-no-such-module: command not found"


SLEEP_1 = "#!/bin/bash\nsleep 1\n"
SLEEP_2 = "#!/bin/bash\nsleep 2\n"


@pytest.mark.parametrize("shell", SHELLS)
async def test_the_output_files_directories_are_made_before_sbatch(
    shell: str, tmp_path: Path
) -> None:
    """slurmd cannot open an output file in a missing directory: the job would fail at launch
    (JobLaunchFailure) with nothing written anywhere."""
    runner = shell_runner(shell, tmp_path)
    home = runner.home
    job = _spec(
        output_path=f"{home}/.corral/jobs dir/a.out",
        error_path="logs/%u/%j.err",  # Slurm's patterns: not a directory mkdir can make
        working_directory=str(home / "work"),
    )
    await Slurm(runner, None).submit(job)  # type: ignore[arg-type]
    assert (home / ".corral" / "jobs dir").is_dir()
    assert not (home / "work").exists(), "a directory with % patterns is left to the user"
    (tmp_path / "again").mkdir()
    runner = shell_runner(shell, tmp_path / "again", sbatch=COUNTING_SBATCH)
    home = runner.home
    jobs = [_spec(output_path="out/a.out", working_directory=str(home / "w")), _spec()]
    results = await Slurm(runner, None).submit_many(jobs)  # type: ignore[arg-type]
    assert all(isinstance(result, SubmittedJob) for result in results), results
    assert (home / "w" / "out").is_dir(), "relative to the job's working directory"
