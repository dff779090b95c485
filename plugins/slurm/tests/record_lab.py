"""Record the transcripts in ``transcripts/lab-*.txt`` from the real Slurm lab.

Not a test: run it as root on the machine where ``bash contrib/lab/slurm.sh status`` exits 0
(Debian's Slurm 22.05.8 in network namespaces, users alice and bob, partitions debug and
long, nodes n1 and n2, no accounting daemon)::

    uv run python plugins/slurm/tests/record_lab.py

It drives the plugin itself through a runner that runs each command as ``alice`` on the
lab's login host (``ctl``) from her home directory, as SSH would, and writes every command
with what Slurm printed and, for a submission (``sbatch`` given no script file), a ``<`` line
matching exactly the script the command got on its standard input, which sbatch read. The
tests replay these files and check what the plugin made of them. Job ids and times differ
with every recording; the tests read them from the files' headers.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from corral_sdk.errors import CorralError
from corral_sdk.providers.scheduler import JobSpec, SubmittedJob
from corral_sdk.transport import CommandResult, OutputChunk
from corral_slurm.config import SlurmConfig
from corral_slurm.scheduler import Slurm

HERE = Path(__file__).parent / "transcripts"
SLURM_CONF = "/etc/corral-lab/slurm/slurm.conf"


def input_pattern(text: str) -> str:
    """A transcript ``<`` line's regular expression matching exactly ``text`` (a job script),
    on one line: line breaks and other unprintable characters as ``\\n``, ``\\xNN``."""
    parts = []
    for char in text:
        if char.isprintable():
            parts.append(re.escape(char))
        elif char == "\n":
            parts.append(r"\n")
        else:
            parts.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
    return r"\A" + "".join(parts) + r"\Z"


class LabRunner:
    """A CommandRunner running commands as ``user`` on the lab's login host."""

    def __init__(self, user: str = "alice") -> None:
        self.user = user
        self.entries: list[str] = []
        self.notes: list[str] = []

    @property
    def target(self) -> str:
        return f"{self.user}@ctl (corral lab)"

    def _argv(self, command: str) -> list[str]:
        shell = f"cd || exit 1\n{command}"
        return [
            "ip", "netns", "exec", "crl-ctl", "runuser", "-u", self.user, "--",
            "env", f"SLURM_CONF={SLURM_CONF}", "bash", "-c", shell,
        ]  # fmt: skip

    async def _exec(self, command: str, data: bytes | None = None) -> CommandResult:
        process = await asyncio.create_subprocess_exec(
            *self._argv(command),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate(data)
        assert process.returncode is not None
        return CommandResult(
            command=command,
            exit_status=process.returncode,
            stdout=stdout.decode(),
            stderr=stderr.decode(),
        )

    async def run(
        self,
        command: str,
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> CommandResult:
        result = await self._exec(command, input.encode() if input is not None else None)
        self._record(result, input)
        return result

    def _record(self, result: CommandResult, input: str | None = None) -> None:
        # every command is the same at each run (a submission is sbatch alone, the script on
        # its standard input): the exact command, and the script it got
        lines = [f"$ {result.command}"]
        if input is not None:
            lines.append(f"< {input_pattern(input)}")
        stdout = result.stdout
        if stdout.lstrip().startswith("{"):
            # squeue --json pretty-prints 300 lines a job: keep the document, on one line
            stdout = json.dumps(json.loads(stdout), separators=(",", ":")) + "\n"
            if "compacted" not in " ".join(self.notes):
                self.notes.append("JSON outputs are compacted on one line, content unchanged.")
        lines += [f"> {line}" if line else ">" for line in stdout.splitlines()]
        lines += [f"! {line}" if line else "!" for line in result.stderr.splitlines()]
        if result.exit_status:
            lines.append(f"exit {result.exit_status}")
        self.entries.append("\n".join(lines))

    async def stream(
        self, command: str, *, env: Mapping[str, str] | None = None
    ) -> AsyncIterator[OutputChunk]:
        raise NotImplementedError("the Slurm plugin never streams; the recorder needs run only")
        yield  # pragma: no cover

    async def put(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        directory = remote_path.rpartition("/")[0] or "."
        command = (
            f"mkdir -p {shlex.quote(directory)} && cat > {shlex.quote(remote_path)} && "
            f"chmod {mode:o} {shlex.quote(remote_path)}"
        )
        result = await self._exec(command, data)
        assert result.ok, result

    async def get(self, remote_path: str) -> bytes:
        result = await self._exec(f"cat {shlex.quote(remote_path)}")
        assert result.ok, result
        return result.stdout.encode()

    async def forward(self, remote_host: str, remote_port: int, *, local_port: int = 0) -> Any:
        raise NotImplementedError("the Slurm plugin never forwards ports")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def write(self, name: str, title: str) -> None:
        header = [
            f"# {title}",
            "# Recorded from the Corral Slurm lab (Debian's Slurm 22.05.8, contrib/lab/slurm.sh)",
            f"# by plugins/slurm/tests/record_lab.py on {datetime.now(UTC):%Y-%m-%d}.",
            *(f"# {line}" for line in self.notes),
        ]
        path = HERE / name
        path.write_text("\n".join(header) + "\n\n" + "\n\n".join(self.entries) + "\n")
        print(f"wrote {path} ({len(self.entries)} commands)", file=sys.stderr)


async def expect_error(runner: LabRunner, label: str, call: Awaitable[Any]) -> None:
    try:
        await call
    except CorralError as exc:
        runner.note(f"{label}: {type(exc).__name__}({exc.message!r}, reason={exc.reason!r})")
    else:
        raise AssertionError(f"{label}: no error")


SLEEP = "#!/bin/bash\nsleep {seconds}\n"
HOSTILE_NAME = 'it\'s a "job" $(id) `id` ;|&'
HOSTILE_VALUE = "a,b c'd\"e $(id) `id` $HOME ;|& \\n"


async def jobs_scenario(runner: LabRunner, config: SlurmConfig) -> None:
    """Submit the kinds of jobs Corral runs, then ask about them all at once."""
    slurm = Slurm(runner, config)
    failing = await slurm.submit(JobSpec(script="#!/bin/bash\nexit 3\n", name="corral-fails"))
    hostile = await slurm.submit(
        JobSpec(
            script='#!/bin/sh\nprintf "%s" "$GREETING" > "$HOME/corral-hostile.out"\n',
            name=HOSTILE_NAME,
            env={"GREETING": HOSTILE_VALUE},
            output_path="corral hostile %j.out",
        )
    )
    plain = await slurm.submit(
        JobSpec(script=SLEEP.format(seconds=90), name="corral-plain", time_limit_seconds=600)
    )
    two_nodes = await slurm.submit(
        JobSpec(
            script="#!/bin/bash\nsrun hostname\nsleep 90\n",
            name="corral-two-nodes",
            partition="long",
            nodes=2,
            ntasks=2,
        )
    )
    held = await slurm.submit(JobSpec(script=SLEEP.format(seconds=5), name="held", hold=True))
    array = await slurm.submit(
        JobSpec(script=SLEEP.format(seconds=90), name="corral-array", array="0-3%2")
    )
    ids = {
        "plain": plain.job_id,
        "two_nodes": two_nodes.job_id,
        "held": held.job_id,
        "array": array.job_id,
        "failing": failing.job_id,
        "hostile": hostile.job_id,
    }
    runner.note("jobs: " + " ".join(f"{key}={value}" for key, value in ids.items()))
    await asyncio.sleep(8)
    written = (await runner.get("corral-hostile.out")).decode()
    assert written == HOSTILE_VALUE, f"the job saw {written!r}"
    runner.note("the hostile job's environment arrived intact (checked in the job's output)")
    asked = [*ids.values(), f"{ids['array']}_0", f"{ids['array']}_3", "999999"]
    statuses = await slurm.status(asked)
    runner.note("status: " + " ".join(f"{k}={v.state.value}" for k, v in statuses.items()))
    await slurm.queue()
    await slurm.queue(user="alice", partition="long")
    await expect_error(runner, "hold of the running plain job", slurm.hold([ids["plain"]]))
    await slurm.hold([ids["array"]])
    await slurm.release([ids["array"], ids["plain"]])
    await slurm.cancel([ids["plain"], ids["failing"], "999999"])
    await asyncio.sleep(2)
    await slurm.status([ids["plain"]])
    await slurm.cancel([ids["two_nodes"], ids["held"], ids["array"], ids["hostile"]])


async def cluster_scenario(runner: LabRunner, config: SlurmConfig) -> None:
    slurm = Slurm(runner, config)
    await slurm.partitions()
    await slurm.nodes()
    await slurm.nodes(partition="long")
    await expect_error(runner, "accounting", slurm.accounting(job_ids=["1"]))
    await expect_error(
        runner,
        "submission to a missing partition",
        slurm.submit(JobSpec(script=SLEEP.format(seconds=1), partition="nowhere")),
    )


async def errors_scenario(runner: LabRunner, config: SlurmConfig) -> None:
    """What Slurm says about finished and unknown jobs, and a job it cannot place (more nodes
    than a partition has stay pending with PartitionNodeLimit; too much memory is refused)."""
    slurm = Slurm(runner, config)
    quick = await slurm.submit(JobSpec(script="#!/bin/bash\ntrue\n", name="corral-quick"))
    runner.note(f"jobs: quick={quick.job_id}")
    await asyncio.sleep(4)
    statuses = await slurm.status(["999999"])
    runner.note(f"status: 999999={statuses['999999'].state.value}")
    await expect_error(runner, "hold of the finished job", slurm.hold([quick.job_id]))
    await expect_error(runner, "hold of an unknown job", slurm.hold(["999999"]))
    await slurm.release([quick.job_id])
    await expect_error(runner, "release of an unknown job", slurm.release(["999999"]))
    await slurm.cancel([quick.job_id, "999999"])
    await expect_error(
        runner,
        "more memory than any node has",
        slurm.submit(JobSpec(script="#!/bin/bash\ntrue\n", memory_mb=999999)),
    )


async def timeout_scenario(runner: LabRunner, config: SlurmConfig) -> None:
    slurm = Slurm(runner, config)
    job = await slurm.submit(
        JobSpec(script=SLEEP.format(seconds=600), name="corral-timeout", time_limit_seconds=60)
    )
    runner.note(f"jobs: timeout={job.job_id}")
    await asyncio.sleep(100)
    statuses = await slurm.status([job.job_id])
    runner.note(f"status: {job.job_id}={statuses[job.job_id].state.value}")


async def batch_scenario(runner: LabRunner, config: SlurmConfig) -> None:
    """Several jobs in one command (``submit_many``): accepted ones, one Slurm refuses, one
    Corral refuses before sending anything; then the same when the command prefix fails."""
    slurm = Slurm(runner, config)
    results = await slurm.submit_many(
        [
            JobSpec(script=SLEEP.format(seconds=1), name="corral-batch-1"),
            JobSpec(script=SLEEP.format(seconds=1), partition="nowhere"),
            JobSpec(script="#!/bin/bash\nsleep 1", name="corral-batch-3", env={"A": "b c"}),
            JobSpec(script=SLEEP.format(seconds=1), array="every other"),
        ]
    )
    runner.note("results: " + " | ".join(_outcome(result) for result in results))
    first, _, third, _ = results
    assert isinstance(first, SubmittedJob) and isinstance(third, SubmittedJob)
    runner.note(f"jobs: first={first.job_id} third={third.job_id}")
    broken = Slurm(runner, msgspec.structs.replace(config, command_prefix="corral-no-such-module"))
    results = await broken.submit_many(
        [JobSpec(script=SLEEP.format(seconds=1)), JobSpec(script=SLEEP.format(seconds=2))]
    )
    runner.note("with a failing prefix: " + " | ".join(_outcome(result) for result in results))
    await slurm.cancel([first.job_id, third.job_id])


def _outcome(result: SubmittedJob | CorralError) -> str:
    if isinstance(result, SubmittedJob):
        return f"job {result.job_id}"
    return f"{type(result).__name__}({result.message!r}, reason={result.reason!r})"


Scenario = Callable[[LabRunner, SlurmConfig], Awaitable[None]]

SCENARIOS: dict[str, tuple[str, Scenario, SlurmConfig]] = {
    "lab-jobs-text.txt": (
        "Jobs with status_format=text",
        jobs_scenario,
        SlurmConfig(status_format="text"),
    ),
    "lab-jobs-json.txt": (
        "Jobs with status_format=json (22.05's squeue --json lists every job)",
        jobs_scenario,
        SlurmConfig(status_format="json"),
    ),
    "lab-jobs-auto.txt": (
        "Jobs with status_format=auto, which picks text on 22.05",
        jobs_scenario,
        SlurmConfig(),
    ),
    "lab-cluster.txt": (
        "Partitions, nodes, accounting and errors",
        cluster_scenario,
        SlurmConfig(),
    ),
    "lab-errors.txt": (
        "Finished and unknown jobs, and a job Slurm cannot place",
        errors_scenario,
        SlurmConfig(status_format="text"),
    ),
    "lab-timeout.txt": ("A job killed at its time limit", timeout_scenario, SlurmConfig()),
    "lab-batch.txt": ("Several jobs in one command", batch_scenario, SlurmConfig()),
}


async def wait_for_empty_queue(within: float = 420) -> None:
    """Wait until Slurm forgot every finished job (``MinJobAge``, 5 minutes in the lab), so
    that 22.05's ``squeue --json``, which lists every job, lists only the scenario's."""
    probe = LabRunner()
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await probe.run("squeue --noheader --states=all --all --users=alice,bob")
        if not result.stdout.strip():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the lab's queue did not empty")
        await asyncio.sleep(10)


async def main(names: list[str]) -> None:
    for name, (title, scenario, config) in SCENARIOS.items():
        if names and name not in names:
            continue
        if config.status_format == "json":
            await wait_for_empty_queue()
        runner = LabRunner()
        await scenario(runner, config)
        runner.write(name, title)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
