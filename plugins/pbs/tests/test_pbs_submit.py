"""Submitting: the one command that writes the script, runs qsub and removes the script; the
script it sends; and what PBS cannot express."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral_pbs.config import PBSConfig
from corral_pbs.scheduler import PBS
from corral_pbs.submit import interpreter_family, job_name, job_script, qsub_options, walltime
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.providers.scheduler import JobSpec
from corral_sdk.testing import ShellRunner, TranscriptRunner
from corral_sdk.testing import shell_runner as sdk_shell_runner

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


WRITE_SCRIPT = (
    '{ [ -d "$1" ] || mkdir -p -- "$1"; } && umask 077 && cat > "$2" '
    '|| { rm -f -- "$2" 2>/dev/null; echo "corral: cannot write the job script" >&2; exit 1; }'
)
"""What writes the script, in ``sh``: directory and path are its arguments."""
WORD = r"(?:\"\$HOME\"/)?(?:'[^']*'|[^\s';]+)"
SUBMISSION = re.compile(
    re.escape(f"sh -c {shlex.quote(WRITE_SCRIPT)} sh ")
    + rf"(?P<directory>{WORD}) (?P<path>{WORD}) && (?P<qsub>.*) (?P=path); "
    + r"qsub_status=\$\?; rm -f -- (?P=path); exit \$qsub_status",
    re.DOTALL,
)


@dataclass
class Submission:
    """One submission command taken apart."""

    directory: str
    path: str
    """The script's path as the command gives it (``"$HOME"/.corral/jobs/...``)."""
    qsub: str
    """``[cd <dir> && ][prefix ]qsub <options>``, the script's path left out."""
    script: str
    """The command's standard input: the script written to ``path``."""


def submission(runner: TranscriptRunner) -> Submission:
    """The one call a submission made: nothing is uploaded on its own."""
    (call,) = runner.calls
    assert call.kind == "run", "one command, no separate upload"
    match = SUBMISSION.fullmatch(call.command)
    assert match is not None, call.command
    assert call.input is not None
    return Submission(
        directory=match["directory"], path=match["path"], qsub=match["qsub"], script=call.input
    )


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
    sent = submission(runner)
    assert re.fullmatch(r'"\$HOME"/\.corral/jobs/corral-[0-9a-f]{12}\.pbs', sent.path)
    script_word = sent.path
    assert command == (
        f"sh -c '{WRITE_SCRIPT}' sh \"$HOME\"/.corral/jobs {script_word} && "
        "cd -- '/scratch/my dir' && qsub -N my_job_s_run -q debug-scaling "
        "-A 'x'\"'\"'; rm -rf ~ #$(id)`id`' "
        "-l select=2:ncpus=8:mpiprocs=4:ompthreads=2:mem=1024mb:ngpus=2:gpu_type=a100 "
        "-l walltime=36:01:01 -l place=excl -o 'logs/out $USER.txt' -e \"$HOME\"/err.txt "
        "-J 0-99:10%5 -W 'depend=afterok:4683812.aurora-pbs-0001:0[].725ccdf1a5fb' -h -m bea "
        "-M ada@example.org -l filesystems=home:eagle -r y -V "
        f"{script_word}; qsub_status=$?; rm -f -- {script_word}; exit $qsub_status"
    )
    assert runner.written == {}, "nothing is uploaded apart from the command"


@pytest.mark.anyio
async def test_hostile_values_stay_single_words() -> None:
    runner = await submit(full_spec(), PBSConfig(gpu_type_resource="gpu_type"))
    words = shlex.split(runner.commands[0])
    assert words[words.index("-A") + 1] == HOSTILE
    assert words[words.index("-o") + 1] == "logs/out $USER.txt"
    assert "rm" in words  # only the clean-up after qsub: the hostile rm stayed inside -A
    assert words.count("rm") == 1
    assert words[:3] == ["sh", "-c", WRITE_SCRIPT], "the write's logic is one quoted word"


@pytest.mark.anyio
async def test_script_keeps_directives_before_corral_lines() -> None:
    runner = await submit(full_spec(), PBSConfig(gpu_type_resource="gpu_type"))
    assert submission(runner).script == (
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
async def test_minimal_job_has_no_options_and_is_written_privately() -> None:
    runner = TranscriptRunner(target="pbs-login")
    runner.expect(
        match=r"sh -c .*umask 077 .* && qsub \S+; qsub_status=.*",
        input=r"\A#!/bin/sh\ntrue\n\Z",
        stdout="4683812.aurora-pbs-0001\n",
    )
    job = await PBS(runner).submit(JobSpec(script="#!/bin/sh\ntrue\n"))
    assert job.job_id == "4683812.aurora-pbs-0001"
    sent = submission(runner)
    assert sent.qsub == "qsub"
    assert sent.directory == '"$HOME"/.corral/jobs'
    assert sent.script == "#!/bin/sh\ntrue\n"
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
        match=r".* qsub .*",
        stdout="4683812.aurora-pbs-0001\n",
        stderr="rm: cannot remove 'x.pbs': Permission denied\n",
        exit_status=1,
    )
    job = await PBS(runner).submit(JobSpec(script="#!/bin/sh\ntrue\n"))
    assert job.job_id == "4683812.aurora-pbs-0001"


@pytest.mark.anyio
async def test_output_that_is_not_an_id_is_an_error() -> None:
    runner = TranscriptRunner(target="pbs-login")
    runner.expect(match=r".* qsub .*", stdout="Job submitted\n")
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
    sent = submission(runner)
    assert sent.directory == "/scratch/corral"
    assert re.fullmatch(r"/scratch/corral/corral-[0-9a-f]{12}\.pbs", sent.path)
    assert sent.qsub == "source /etc/profile.d/pbs.sh && /opt/pbs/bin/qsub -q workq"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("script_dir", "directory", "path"),
    [
        (
            "~/corral jobs/",
            "\"$HOME\"/'corral jobs'",
            r"\"\$HOME\"/'corral jobs/corral-[0-9a-f]{12}\.pbs'",
        ),
        ("~", '"$HOME"', r'"\$HOME"/corral-[0-9a-f]{12}\.pbs'),
        ("/", "/", r"/corral-[0-9a-f]{12}\.pbs"),
    ],
    ids=["tilde and space", "tilde", "root"],
)
async def test_script_paths_are_relative_to_the_login_directory(
    script_dir: str, directory: str, path: str
) -> None:
    runner = await submit(JobSpec(script="#!/bin/sh\ntrue\n"), PBSConfig(script_dir=script_dir))
    sent = submission(runner)
    assert sent.directory == directory
    assert re.fullmatch(path, sent.path), sent.path


@pytest.mark.anyio
async def test_a_script_that_cannot_be_written_says_so_and_names_the_path() -> None:
    runner = TranscriptRunner(target="pbs-login")
    runner.expect(
        match=r".* qsub .*",
        stderr="mkdir: cannot create directory '/scratch': Permission denied\n"
        "corral: cannot write the job script\n",
        exit_status=1,
    )
    with pytest.raises(ProviderError) as caught:
        await PBS(runner, PBSConfig(script_dir="/scratch/corral")).submit(
            JobSpec(script="#!/bin/sh\ntrue\n")
        )
    path = submission(runner).path
    assert caught.value.reason == "write-failed"
    assert caught.value.message == (
        f"cannot write the job script {path} on pbs-login: "
        "mkdir: cannot create directory '/scratch': Permission denied"
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


# --- the command in a real shell, with a stand-in qsub -----------------------------------------

SHELLS = [shell for shell in ("sh", "bash") if shutil.which(shell)]

FAKE_QSUB = """#!/bin/sh
# records what it was given, as the real one would read it, and prints a job id
for last; do :; done
printf '%s\\n' "$@" > "$HOME/qsub-argv"
pwd > "$HOME/qsub-cwd"
find "$last" -perm 600 > "$HOME/qsub-private"
cat -- "$last" > "$HOME/qsub-script" || exit 1
echo 1234.pbs01
"""


def shell_runner(shell: str, tmp_path: Path, qsub: str = FAKE_QSUB) -> ShellRunner:
    return sdk_shell_runner(shell, tmp_path, {"qsub": qsub})


@pytest.mark.anyio
@pytest.mark.parametrize("shell", SHELLS)
async def test_one_command_writes_submits_and_removes_the_script(
    shell: str, tmp_path: Path
) -> None:
    runner = shell_runner(shell, tmp_path)
    work = tmp_path / "work dir"
    work.mkdir()
    job = JobSpec(
        script='#!/bin/bash\necho "$GREETING" \\\n  `id` $(id) %s\n\techo tab\nno newline',
        name="run",
        account=HOSTILE,
        working_directory=str(work),
        env={"GREETING": HOSTILE + "\nline,2"},
    )
    submitted = await PBS(runner).submit(job)  # type: ignore[arg-type]
    assert submitted.job_id == "1234.pbs01"
    home = runner.home
    argv = (home / "qsub-argv").read_text().splitlines()
    assert argv[:4] == ["-N", "run", "-A", HOSTILE]
    assert re.fullmatch(
        rf"{re.escape(str(home))}/\.corral/jobs/corral-[0-9a-f]{{12}}\.pbs", argv[4]
    )
    assert (home / "qsub-cwd").read_text().strip() == str(work), "qsub ran in the job's directory"
    assert (home / "qsub-script").read_text() == job_script(job), "qsub read the whole script"
    assert (home / "qsub-private").read_text().strip() == argv[4], "mode 0600"
    assert list((home / ".corral" / "jobs").iterdir()) == [], "removed once submitted"
    assert runner.results[-1].exit_status == 0


@pytest.mark.anyio
@pytest.mark.parametrize("shell", SHELLS)
async def test_qsubs_refusal_keeps_its_status_and_message_and_removes_the_script(
    shell: str, tmp_path: Path
) -> None:
    refusing = "#!/bin/sh\necho 'qsub: Unknown queue' >&2\nexit 170\n"
    runner = shell_runner(shell, tmp_path, qsub=refusing)
    with pytest.raises(ProviderError) as caught:
        await PBS(runner).submit(JobSpec(script="#!/bin/sh\ntrue\n", partition="nosuchqueue"))  # type: ignore[arg-type]
    assert caught.value.reason == "submit-rejected"
    assert caught.value.message == "qsub: Unknown queue"
    assert runner.results[-1].exit_status == 170, "qsub's own exit status"
    assert list((runner.home / ".corral" / "jobs").iterdir()) == []


@pytest.mark.anyio
@pytest.mark.parametrize("shell", SHELLS)
async def test_a_failed_write_stops_before_qsub_and_names_the_path(
    shell: str, tmp_path: Path
) -> None:
    runner = shell_runner(shell, tmp_path)
    (runner.home / ".corral").write_text("a file where the directory should be\n")
    with pytest.raises(ProviderError) as caught:
        await PBS(runner).submit(JobSpec(script="#!/bin/sh\ntrue\n"))  # type: ignore[arg-type]
    assert caught.value.reason == "write-failed"
    assert re.match(
        rf"cannot write the job script \.corral/jobs/corral-[0-9a-f]{{12}}\.pbs on {shell} in "
        r"home: mkdir: .*\.corral.*",
        caught.value.message,
    ), caught.value.message
    assert "corral: cannot write" not in caught.value.message
    assert not (runner.home / "qsub-argv").exists(), "qsub did not run"
