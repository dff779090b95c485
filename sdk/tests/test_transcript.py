"""The transcript runner replays recorded commands and rejects unexpected ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from corral_sdk.errors import NotFound, ProviderError
from corral_sdk.testing import TranscriptEntry, TranscriptRunner
from corral_sdk.testing.transcript import parse_transcript
from corral_sdk.transport import CommandRunner, OutputChunk

pytestmark = pytest.mark.anyio

SLURM = """
    # submit, then look at the job
    $~ sbatch --parsable( .*)?
    < hostname
    > 4242
    $ squeue --noheader --format='%i %T' --jobs=4242
    >  4242 RUNNING
    times *
    $ scancel 9999
    ! scancel: error: Kill job error on job id 9999: Invalid job id specified
    exit 1
"""


def test_is_a_command_runner() -> None:
    assert isinstance(TranscriptRunner(), CommandRunner)


async def test_replays_output_and_records_commands() -> None:
    runner = TranscriptRunner.from_text(SLURM, target="login1")
    submitted = await runner.run("sbatch --parsable", input="#!/bin/bash\nhostname\n")
    assert submitted.stdout == "4242\n"
    assert submitted.ok
    for _ in range(2):
        status = await runner.run("squeue --noheader --format='%i %T' --jobs=4242")
        assert status.stdout == " 4242 RUNNING\n", "leading spaces of output are kept"
    failed = await runner.run("scancel 9999")
    assert failed.exit_status == 1
    assert "Invalid job id" in failed.stderr
    assert runner.commands == [
        "sbatch --parsable",
        "squeue --noheader --format='%i %T' --jobs=4242",
        "squeue --noheader --format='%i %T' --jobs=4242",
        "scancel 9999",
    ]
    assert runner.calls[0].input == "#!/bin/bash\nhostname\n"
    runner.assert_all_used()


async def test_unexpected_command_fails_naming_it() -> None:
    runner = TranscriptRunner.from_text(SLURM, target="login1")
    with pytest.raises(AssertionError) as info:
        await runner.run("rm -rf /home")
    message = str(info.value)
    assert "unexpected command on login1: 'rm -rf /home'" in message
    assert "$~ sbatch --parsable( .*)?" in message, "the message lists what was expected"
    assert runner.unexpected == ["rm -rf /home"]
    with pytest.raises(AssertionError, match="rm -rf /home"):
        runner.assert_all_used()


async def test_input_must_match() -> None:
    runner = TranscriptRunner.from_text(SLURM)
    with pytest.raises(AssertionError, match="its input was '#!/bin/bash\\\\nsleep 1\\\\n'"):
        await runner.run("sbatch --parsable", input="#!/bin/bash\nsleep 1\n")


async def test_entries_are_used_up() -> None:
    runner = TranscriptRunner().expect("date", stdout="Mon\n")
    await runner.run("date")
    with pytest.raises(AssertionError, match="used up already"):
        await runner.run("date")


async def test_assert_all_used_lists_commands_not_run() -> None:
    runner = TranscriptRunner.from_text(SLURM)
    await runner.run("scancel 9999")
    with pytest.raises(AssertionError) as info:
        runner.assert_all_used()
    assert "$~ sbatch --parsable( .*)?" in str(info.value)
    assert "squeue" not in str(info.value), "entries with `times *` are optional"


async def test_ordered_mode_enforces_order() -> None:
    runner = TranscriptRunner(
        [{"command": "first"}, {"command": "second"}], ordered=True, target="n1"
    )
    with pytest.raises(AssertionError, match="expected next: \\$ first"):
        await runner.run("second")
    in_order = TranscriptRunner([{"command": "first"}, {"command": "second"}], ordered=True)
    await in_order.run("first")
    await in_order.run("second")
    in_order.assert_all_used()


async def test_check_raises_provider_error_with_stderr() -> None:
    runner = TranscriptRunner.from_text(SLURM, target="login1")
    with pytest.raises(ProviderError, match="Invalid job id specified"):
        await runner.run("scancel 9999", check=True)


async def test_stream_yields_lines_then_exit_status() -> None:
    runner = TranscriptRunner().expect("tail log", stdout="a\nb\n", stderr="warn\n", exit_status=3)
    chunks = [chunk async for chunk in runner.stream("tail log")]
    assert chunks == [
        OutputChunk(stream="stdout", data="a\n"),
        OutputChunk(stream="stdout", data="b\n"),
        OutputChunk(stream="stderr", data="warn\n"),
        OutputChunk(stream="exit", exit_status=3),
    ]


async def test_put_records_files_and_get_returns_them() -> None:
    runner = TranscriptRunner(files={"/etc/slurm/slurm.conf": "ClusterName=c1\n"})
    assert await runner.get("/etc/slurm/slurm.conf") == b"ClusterName=c1\n"
    await runner.put(b"#!/bin/bash\n", "/home/u/job.sh", mode=0o755)
    assert await runner.get("/home/u/job.sh") == b"#!/bin/bash\n"
    assert runner.written == {"/home/u/job.sh": b"#!/bin/bash\n"}
    with pytest.raises(NotFound, match="/nope"):
        await runner.get("/nope")


async def test_forward_needs_configuring() -> None:
    runner = TranscriptRunner(forwards={("node1", 8888): 40123}, target="login1")
    forward = await runner.forward("node1", 8888)
    assert forward.local_port == 40123
    await forward.close()
    with pytest.raises(AssertionError, match="unexpected port forward to node1:22 on login1"):
        await runner.forward("node1", 22)


def test_json_and_text_files(tmp_path: Path) -> None:
    entries = [{"match": "squeue .*", "stdout": "1 PENDING\n", "times": None}, {"command": "id"}]
    (tmp_path / "t.json").write_text(json.dumps(entries))
    (tmp_path / "t.transcript").write_text("$~ squeue .*\n> 1 PENDING\ntimes *\n$ id\n")
    from_json = TranscriptRunner.from_file(tmp_path / "t.json")
    from_text = TranscriptRunner.from_file(tmp_path / "t.transcript")
    assert from_json.entries == from_text.entries
    assert from_json.entries[0] == TranscriptEntry(
        match="squeue .*", stdout="1 PENDING\n", times=None
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("> orphan output\n", "line 1: '>' before the first '$' line"),
        ("$ ls\nexit nope\n", "line 2: exit status 'nope'"),
        ("$ ls\n% weird\n", "line 2: '% weird' does not start with"),
        ("$~ ([unclosed\n", "bad regular expression"),
        ("$ ls\ntimes 0\n", "'times' must be at least 1"),
    ],
)
def test_text_format_errors_name_the_line(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        parse_transcript(text)


def test_json_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="invalid transcript"):
        TranscriptRunner.from_json(b'[{"command": "ls", "stdoot": "x"}]')
    with pytest.raises(ValueError, match="exactly one of 'command' and 'match'"):
        TranscriptEntry(command="ls", match="ls")
