"""From a :class:`~corral_sdk.providers.scheduler.JobSpec` to ``sbatch``'s options, the job's
environment and the script sbatch reads on its standard input."""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping, Sequence

import msgspec

from corral_sdk.errors import Invalid
from corral_sdk.providers.scheduler import JobSpec
from corral_sdk.transport import CommandResult
from corral_slurm.config import OPTION_NAME, has_control_characters
from corral_slurm.jobs import JOB_ID
from corral_slurm.values import format_duration

__all__ = [
    "MAIL_TYPES",
    "SbatchBatch",
    "SbatchRequest",
    "output_directories",
    "parse_sbatch_output",
    "sbatch_batch",
    "sbatch_request",
]

MAIL_TYPES = frozenset(
    {
        "NONE",
        "BEGIN",
        "END",
        "FAIL",
        "REQUEUE",
        "ALL",
        "INVALID_DEPEND",
        "STAGE_OUT",
        "TIME_LIMIT",
        "TIME_LIMIT_90",
        "TIME_LIMIT_80",
        "TIME_LIMIT_50",
        "ARRAY_TASKS",
    }
)
"""The values ``sbatch --mail-type`` accepts."""

_REFUSED_FLAGS = {
    "wrap": "the job is its script",
    "wait": "sbatch would block until the job ends",
    "test-only": "sbatch would not submit the job",
    "help": "sbatch would not submit the job",
    "usage": "sbatch would not submit the job",
    "version": "sbatch would not submit the job",
    "parsable": "it is always given",
}
"""Options that would change what sbatch does or prints beyond recognition."""

_EXCLUSIVE_WITH = {
    "mem": ("mem-per-cpu", "mem-per-gpu"),
    "exclusive": ("oversubscribe", "share"),
}
"""Options Slurm refuses (or silently overrides) together with one the job spec sets."""

_ARRAY = re.compile(r"^\d+(?:-\d+(?::\d+)?)?(?:,\d+(?:-\d+(?::\d+)?)?)*(?:%\d+)?$")
_GPUS = re.compile(r"^(?:[A-Za-z0-9_.\-]+:)?[1-9]\d*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SbatchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`corral_slurm.scheduler.Slurm.submit` runs: ``env <environment> sbatch
    --parsable <options>``, with :attr:`script` on its standard input."""

    options: tuple[str, ...]
    """``--name=value`` or ``--flag`` arguments, not yet shell-quoted."""
    environment: tuple[tuple[str, str], ...]
    """Variables set in sbatch's environment and exported to the job by name."""
    script: str
    """The job script, sent to sbatch on its standard input."""


def _check_line(value: str | None, field: str) -> None:
    if value is not None and has_control_characters(value):
        raise Invalid(f"{field.replace('_', ' ')} must be one line of text", field=field)


def _script(job: JobSpec) -> str:
    """The script with ``script_headers`` put right after its ``#!`` line."""
    if not job.script.startswith("#!"):
        raise Invalid(
            "the job script must start with a #! line (sbatch refuses others)", field="script"
        )
    if "\0" in job.script or "\0" in job.script_headers:
        raise Invalid("the job script must not contain NUL characters", field="script")
    first, newline, rest = job.script.partition("\n")
    headers = job.script_headers.strip("\n")
    if headers:
        bad = [line for line in headers.splitlines() if line.strip() and not line.startswith("#")]
        if bad:
            raise Invalid(
                f"script headers must be directive or comment lines, not {bad[0]!r}",
                field="script_headers",
            )
        script = f"{first}\n{headers}\n{rest}"
    else:
        script = f"{first}{newline}{rest}"
    return script if script.endswith("\n") else script + "\n"


def _spec_options(job: JobSpec) -> list[tuple[str, str | None]]:
    """The options the spec's own fields make, in a fixed order."""
    options: list[tuple[str, str | None]] = []

    def add(name: str, value: object) -> None:
        if value is not None:
            options.append((name, str(value)))

    if job.name:
        add("job-name", job.name)
    add("partition", job.partition)
    add("account", job.account)
    add("qos", job.qos)
    add("nodes", job.nodes)
    add("ntasks", job.ntasks)
    add("ntasks-per-node", job.ntasks_per_node)
    add("cpus-per-task", job.cpus_per_task)
    add("gpus-per-node", job.gpus_per_node)
    if job.memory_mb is not None:
        add("mem", f"{job.memory_mb}M")
    if job.time_limit_seconds is not None:
        add("time", format_duration(job.time_limit_seconds))
    add("chdir", job.working_directory)
    add("output", job.output_path)
    add("error", job.error_path)
    if job.env:
        add("export", ",".join(["ALL", *sorted(job.env)]))
    add("array", job.array)
    if job.depends_on:
        add("dependency", "afterok:" + ":".join(job.depends_on))
    if job.hold:
        options.append(("hold", None))
    if job.exclusive:
        options.append(("exclusive", None))
    if job.mail_types:
        add("mail-type", ",".join(mail_type.upper() for mail_type in job.mail_types))
    add("mail-user", job.mail_user)
    return options


def _check(job: JobSpec) -> None:
    for field in (
        "name",
        "partition",
        "account",
        "qos",
        "working_directory",
        "output_path",
        "error_path",
        "mail_user",
    ):
        value = getattr(job, field)
        _check_line(value, field)
        if value is not None and field != "name" and not value.strip():
            raise Invalid(f"{field.replace('_', ' ')} must not be empty", field=field)
    if job.gpus_per_node is not None and not _GPUS.match(job.gpus_per_node):
        raise Invalid("GPUs per node must be a count or type:count (a100:2)", field="gpus_per_node")
    if job.array is not None and not _ARRAY.match(job.array):
        raise Invalid(
            "the array must be Slurm indices such as 0-9, 1,3,5, 0-15:4 or 0-99%10",
            field="array",
        )
    for dependency in job.depends_on:
        if not JOB_ID.match(dependency):
            raise Invalid(f"{dependency!r} is not a Slurm job id", field="depends_on")
    unknown_mail = [t for t in job.mail_types if t.upper() not in MAIL_TYPES]
    if unknown_mail:
        raise Invalid(
            f"unknown mail type {unknown_mail[0]!r}; Slurm knows {', '.join(sorted(MAIL_TYPES))}",
            field="mail_types",
        )
    if "NONE" in {t.upper() for t in job.mail_types} and len(job.mail_types) > 1:
        raise Invalid("mail type NONE cannot be combined with others", field="mail_types")
    for name in job.env:
        if not _ENV_NAME.match(name):
            raise Invalid(f"{name!r} is not an environment variable name", field="env")
    for value in job.env.values():
        if "\0" in value:
            raise Invalid("environment values must not contain NUL characters", field="env")
    if job.nodes is not None and job.ntasks is not None and job.ntasks < job.nodes:
        # sbatch would quietly shrink the job to one node per task
        raise Invalid(
            f"{job.ntasks} tasks cannot use {job.nodes} nodes: ask for at least one task per node",
            field="ntasks",
        )
    if (
        job.nodes is not None
        and job.ntasks is not None
        and job.ntasks_per_node is not None
        and job.ntasks > job.nodes * job.ntasks_per_node
    ):
        raise Invalid(
            f"{job.ntasks} tasks do not fit on {job.nodes} nodes at {job.ntasks_per_node} per node",
            field="ntasks_per_node",
        )


def _flag_options(
    flags: Mapping[str, str | None], taken: set[str], field: str
) -> list[tuple[str, str | None]]:
    options: list[tuple[str, str | None]] = []
    for name, value in flags.items():
        if not OPTION_NAME.match(name):
            raise Invalid(
                f"{name!r} is not a long sbatch option name (like 'constraint')", field=field
            )
        if name in _REFUSED_FLAGS:
            raise Invalid(f"option --{name} is not allowed: {_REFUSED_FLAGS[name]}", field=field)
        if name in taken:
            raise Invalid(f"option --{name} is already set by the job's own settings", field=field)
        clashes = [other for other in _EXCLUSIVE_WITH.get(name, ()) if other in taken] + [
            owner for owner, others in _EXCLUSIVE_WITH.items() if name in others and owner in taken
        ]
        if clashes:
            raise Invalid(f"option --{name} conflicts with --{clashes[0]}", field=field)
        _check_line(value, field)
        options.append((name, value))
    return options


def sbatch_request(job: JobSpec, defaults: Mapping[str, str | None]) -> SbatchRequest:
    """Check ``job`` and turn it into sbatch's options; raises ``Invalid`` naming the field.

    ``defaults`` (the cluster's ``sbatch_options``) come first, so the job's own options win.
    The environment travels in sbatch's own environment and ``--export=ALL,NAME,...`` names
    it: values need no escaping (``--export=K=V`` cannot hold a comma) and any interpreter
    gets them, not only a shell reading ``export`` lines.
    """
    _check(job)
    script = _script(job)
    own = _spec_options(job)
    taken = {name for name, _ in own}
    extra = _flag_options(job.flags, taken, "flags")
    options = [
        (name, value or None)  # "" is how a TOML setting spells a flag
        for name, value in defaults.items()
        if name not in taken and name not in job.flags
    ]
    rendered = [
        f"--{name}" if value is None else f"--{name}={value}"
        for name, value in (*options, *own, *extra)
    ]
    return SbatchRequest(
        options=tuple(rendered),
        environment=tuple(sorted(job.env.items())),
        script=script,
    )


_SBATCH_ID = re.compile(r"^(\d+)(?:;(\S+))?$")


def output_directories(job: JobSpec) -> list[str]:
    """The directories of the job's output and error files that ``mkdir -p`` can make before
    sbatch: those without Slurm's ``%`` patterns, relative ones under the working directory."""
    directories = []
    for path in (job.output_path, job.error_path):
        directory = posixpath.dirname(path or "")
        if not directory or "%" in directory:
            continue
        if not posixpath.isabs(directory) and job.working_directory:
            directory = posixpath.join(job.working_directory, directory)
        if directory not in directories:
            directories.append(directory)
    return directories


def parse_sbatch_output(stdout: str) -> str | None:
    """The job id ``sbatch --parsable`` printed (``1234`` or ``1234;cluster``), or ``None``."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    match = _SBATCH_ID.match(lines[-1])
    return match.group(1) if match else None


class SbatchBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Several sbatch calls as one ``sh -s`` script, and what each of them printed."""

    script: str
    """The script for ``sh -s``'s standard input."""
    marker: str
    """Starts the lines the script prints between calls; never in what a call prints."""
    count: int

    def results(self, result: CommandResult) -> list[CommandResult]:
        """One result per call, from the whole script's; a call the script never finished (the
        command before ``sh -s`` failed, the shell died) gets the whole script's failure."""
        out = _sections(result.stdout, self.marker)
        err = _sections(result.stderr, self.marker)
        calls = []
        for index in range(self.count):
            stdout, status = out.get(index, ("", None))
            stderr = err.get(index, ("", None))[0]
            if status is None:
                stdout = stdout or result.stdout.strip()
                stderr = (
                    stderr or result.stderr.strip() or "the submission stopped before sbatch ended"
                )
                status = result.exit_status or 255
            calls.append(
                CommandResult(
                    command=f"{result.command} (sbatch {index + 1} of {self.count})",
                    exit_status=status,
                    stdout=stdout,
                    stderr=stderr,
                )
            )
        return calls


def _sections(text: str, marker: str) -> dict[int, tuple[str, int | None]]:
    """``{call: (what it printed, its exit status or None)}`` from a stream the batch script
    divided with ``<marker> begin <call>`` and ``<marker> end <call> <status>`` lines."""
    sections: dict[int, tuple[str, int | None]] = {}
    current: int | None = None
    lines: list[str] = []

    def close(status: int | None) -> None:
        if current is not None:
            sections[current] = ("\n".join(lines).strip("\n"), status)

    for line in text.split("\n"):
        words = line.split(" ") if line.startswith(marker + " ") else []
        if len(words) == 3 and words[1] == "begin" and words[2].isdigit():
            close(None)
            current, lines = int(words[2]), []
        elif len(words) == 4 and words[1] == "end" and words[2].isdigit() and words[3].isdigit():
            close(int(words[3]))
            current, lines = None, []
        elif current is not None:
            lines.append(line)
    close(None)
    return sections


def sbatch_batch(calls: Sequence[tuple[str, str]]) -> SbatchBatch:
    """The ``sh -s`` script running each ``(command, script)`` call with its job script as a
    quoted here-document, printing marker lines around what each call prints.

    The marker is a digest of every call and script, so no script can contain it (it would have
    to hold its own digest): neither as a here-document's closing line nor in what sbatch prints.
    """
    digest = hashlib.sha256()
    for command, script in calls:
        digest.update(command.encode() + b"\0" + script.encode() + b"\0")
    marker = f"corral-sbatch-{digest.hexdigest()[:32]}"
    lines = []
    for index, (command, script) in enumerate(calls):
        body = script if script.endswith("\n") else script + "\n"
        lines += [
            f"printf '\\n%s\\n' '{marker} begin {index}'",
            f"printf '\\n%s\\n' '{marker} begin {index}' >&2",
            f"{command} <<'{marker}-{index}'",
            body + f"{marker}-{index}",
            f"printf '\\n{marker} end {index} %d\\n' \"$?\"",
        ]
    return SbatchBatch(script="\n".join(lines) + "\n", marker=marker, count=len(calls))
