"""A :class:`~corral_sdk.transport.CommandRunner` that replays recorded command transcripts.

Scheduler and session plugins run commands on clusters; their tests give a
:class:`TranscriptRunner` the commands they expect and what each printed (recorded once from the
real ``sbatch``/``squeue``/``qstat``), and the runner answers from that record. A command nobody
expected fails the test with an :class:`AssertionError` naming it. Every call is recorded, so a
test can also check what was run::

    runner = TranscriptRunner.from_text('''
    $~ sbatch --parsable .*
    > 4242
    $ squeue --noheader --format='%i %T' --jobs=4242
    > 4242 RUNNING
    ''')
    slurm = Slurm(runner)
    job = await slurm.submit(JobSpec(script="#!/bin/bash\\nhostname\\n"))
    assert (await slurm.status([job.job_id]))[job.job_id].state is JobState.RUNNING
    runner.assert_all_used()

The text format, one entry per ``$`` line (blank lines and ``#`` comments are ignored, and the
text is dedented first, so it can sit indented in a test); the key is followed by one space, and
what comes after it is kept as it is, leading spaces included:

``$ command``      the exact command (compared after stripping surrounding whitespace)
``$~ regex``       a regular expression the whole command must match (``.`` matches newlines)
``> text``         a line of standard output (``>`` alone: an empty line)
``! text``         a line of standard error
``< regex``        a regular expression the command's standard input must contain
``exit N``         the exit status (default 0)
``times N``        how many calls the entry answers (default 1); ``times *``: any number

The JSON format is a list of objects with the fields of :class:`TranscriptEntry`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from corral_sdk.errors import NotFound, ProviderError
from corral_sdk.transport import CommandResult, OutputChunk

__all__ = [
    "RecordedCall",
    "TranscriptEntry",
    "TranscriptForward",
    "TranscriptRunner",
    "parse_transcript",
]


class TranscriptEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One expected command and what it printed.

    Give exactly one of ``command`` (the exact command) and ``match`` (a regular expression the
    whole command must match, with ``.`` matching newlines so heredoc scripts fit).
    """

    command: str | None = None
    match: str | None = None
    input: str | None = None
    """A regular expression that must be found in the command's standard input."""
    stdout: str = ""
    stderr: str = ""
    exit_status: int = 0
    times: int | None = 1
    """How many calls this entry answers; ``None`` for any number, including none."""

    def __post_init__(self) -> None:
        if (self.command is None) == (self.match is None):
            raise ValueError("a transcript entry needs exactly one of 'command' and 'match'")
        for pattern in (self.match, self.input):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        if self.times is not None and self.times < 1:
            raise ValueError("'times' must be at least 1, or null for any number")

    def command_matches(self, command: str) -> bool:
        """Whether ``command`` is the one this entry expects."""
        if self.command is not None:
            return self.command.strip() == command.strip()
        assert self.match is not None
        return re.fullmatch(self.match, command.strip(), re.DOTALL) is not None

    def input_matches(self, input: str | None) -> bool:
        """Whether ``input`` is what this entry expects on standard input."""
        if self.input is None:
            return True
        return input is not None and re.search(self.input, input, re.DOTALL) is not None

    def describe(self) -> str:
        """The entry as a person reads it in a failure message."""
        text = f"$ {self.command}" if self.command is not None else f"$~ {self.match}"
        if self.input is not None:
            text += f"  (input matching {self.input!r})"
        return text


class RecordedCall(msgspec.Struct, frozen=True, kw_only=True):
    """One call a :class:`TranscriptRunner` received."""

    kind: Literal["run", "stream", "put", "get", "forward"]
    command: str
    """The command; for ``put``/``get`` the path, for ``forward`` ``host:port``."""
    input: str | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    data: bytes | None = None
    """What ``put`` wrote."""


class TranscriptForward:
    """The :class:`~corral_sdk.transport.Forward` a :class:`TranscriptRunner` returns."""

    def __init__(self, local_port: int) -> None:
        self._local_port = local_port
        self.closed = False

    @property
    def local_port(self) -> int:
        return self._local_port

    async def close(self) -> None:
        self.closed = True


class TranscriptRunner:
    """A :class:`~corral_sdk.transport.CommandRunner` answering from a transcript.

    :param entries: the expected commands, as :class:`TranscriptEntry` or mappings of its fields.
    :param ordered: when true, commands must come in the transcript's order (an entry with
        ``times=None`` may be skipped); when false (the default) each command is answered by
        the first entry that matches it and has calls left.
    :param files: files present on the target, returned by :meth:`get`.
    :param forwards: ``{(remote_host, remote_port): local_port}``: forwards :meth:`forward` may
        open, each reported as listening on ``local_port`` (say, a test server you started).
    :param target: the name shown in messages.
    """

    def __init__(
        self,
        entries: Iterable[TranscriptEntry | Mapping[str, Any]] = (),
        *,
        ordered: bool = False,
        files: Mapping[str, bytes | str] | None = None,
        forwards: Mapping[tuple[str, int], int] | None = None,
        target: str = "transcript",
    ) -> None:
        self.entries: list[TranscriptEntry] = []
        self._left: list[int | None] = []
        self._used: list[int] = []
        self.ordered = ordered
        self.files: dict[str, bytes] = {
            path: data.encode() if isinstance(data, str) else data
            for path, data in (files or {}).items()
        }
        self.forwards: dict[tuple[str, int], int] = dict(forwards or {})
        self._target = target
        self.calls: list[RecordedCall] = []
        self.unexpected: list[str] = []
        self.opened_forwards: list[TranscriptForward] = []
        for entry in entries:
            self.add(entry)

    # --- building ---------------------------------------------------------------------------

    def add(self, entry: TranscriptEntry | Mapping[str, Any]) -> TranscriptRunner:
        """Append an expected command; returns the runner, so calls chain."""
        if not isinstance(entry, TranscriptEntry):
            entry = msgspec.convert(dict(entry), TranscriptEntry)
        self.entries.append(entry)
        self._left.append(entry.times)
        self._used.append(0)
        return self

    def expect(
        self,
        command: str | None = None,
        *,
        match: str | None = None,
        stdout: str = "",
        stderr: str = "",
        exit_status: int = 0,
        input: str | None = None,
        times: int | None = 1,
    ) -> TranscriptRunner:
        """Append an expected command (see :class:`TranscriptEntry`); returns the runner."""
        return self.add(
            TranscriptEntry(
                command=command,
                match=match,
                input=input,
                stdout=stdout,
                stderr=stderr,
                exit_status=exit_status,
                times=times,
            )
        )

    @classmethod
    def from_json(cls, data: str | bytes, **kwargs: Any) -> TranscriptRunner:
        """Build a runner from a JSON list of :class:`TranscriptEntry` objects."""
        try:
            entries = msgspec.json.decode(data, type=list[TranscriptEntry])
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid transcript: {exc}") from None
        return cls(entries, **kwargs)

    @classmethod
    def from_text(cls, text: str, **kwargs: Any) -> TranscriptRunner:
        """Build a runner from the text format described in this module's docstring."""
        return cls(parse_transcript(text), **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> TranscriptRunner:
        """Build a runner from a ``.json`` file, or from any other file in the text format."""
        path = Path(path)
        if path.suffix == ".json":
            return cls.from_json(path.read_bytes(), **kwargs)
        return cls.from_text(path.read_text(), **kwargs)

    # --- inspecting -------------------------------------------------------------------------

    @property
    def target(self) -> str:
        return self._target

    @property
    def commands(self) -> list[str]:
        """The commands run so far (``run`` and ``stream``), in order."""
        return [call.command for call in self.calls if call.kind in ("run", "stream")]

    @property
    def written(self) -> dict[str, bytes]:
        """The files written with :meth:`put`, by path (the last write wins)."""
        return {call.command: call.data for call in self.calls if call.data is not None}

    def unused(self) -> list[TranscriptEntry]:
        """Entries still waiting for a call (those with ``times=None`` never wait)."""
        return [
            entry
            for entry, left in zip(self.entries, self._left, strict=True)
            if left is not None and left > 0
        ]

    def assert_all_used(self) -> None:
        """Fail unless every expected command was run and nothing unexpected was."""
        problems = []
        if self.unexpected:
            problems.append(
                "unexpected commands:\n" + "\n".join(f"  {cmd!r}" for cmd in self.unexpected)
            )
        unused = self.unused()
        if unused:
            problems.append(
                "expected commands that were not run:\n"
                + "\n".join(f"  {entry.describe()}" for entry in unused)
            )
        if problems:
            raise AssertionError(f"transcript for {self.target}: " + "\n".join(problems))

    # --- CommandRunner ----------------------------------------------------------------------

    async def run(
        self,
        command: str,
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> CommandResult:
        """Answer ``command`` from the transcript; see :meth:`CommandRunner.run
        <corral_sdk.transport.CommandRunner.run>`."""
        self.calls.append(
            RecordedCall(kind="run", command=command, input=input, env=dict(env or {}))
        )
        entry = self._answer(command, input)
        result = CommandResult(
            command=command,
            exit_status=entry.exit_status,
            stdout=entry.stdout,
            stderr=entry.stderr,
        )
        if check and not result.ok:
            raise ProviderError(
                f"command failed with exit status {result.exit_status} on {self.target}: "
                f"{result.stderr.strip() or result.stdout.strip()}",
                log_message=f"{command!r} exited {result.exit_status}",
            )
        return result

    async def stream(
        self, command: str, *, env: Mapping[str, str] | None = None
    ) -> AsyncIterator[OutputChunk]:
        """Answer ``command`` from the transcript as output chunks, one per line, then the
        exit status."""
        self.calls.append(RecordedCall(kind="stream", command=command, env=dict(env or {})))
        entry = self._answer(command, None)
        for line in entry.stdout.splitlines(keepends=True):
            yield OutputChunk(stream="stdout", data=line)
        for line in entry.stderr.splitlines(keepends=True):
            yield OutputChunk(stream="stderr", data=line)
        yield OutputChunk(stream="exit", exit_status=entry.exit_status)

    async def put(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        """Record a file write; later :meth:`get` calls return it."""
        self.calls.append(RecordedCall(kind="put", command=remote_path, data=bytes(data)))
        self.files[remote_path] = bytes(data)

    async def get(self, remote_path: str) -> bytes:
        """Return a file given in ``files`` or written with :meth:`put`; raises ``NotFound``
        for any other path."""
        self.calls.append(RecordedCall(kind="get", command=remote_path))
        try:
            return self.files[remote_path]
        except KeyError:
            raise NotFound(f"{remote_path} does not exist on {self.target}") from None

    async def forward(
        self, remote_host: str, remote_port: int, *, local_port: int = 0
    ) -> TranscriptForward:
        """Return a forward configured in ``forwards``; anything else fails the test."""
        self.calls.append(RecordedCall(kind="forward", command=f"{remote_host}:{remote_port}"))
        try:
            port = self.forwards[(remote_host, remote_port)]
        except KeyError:
            message = (
                f"unexpected port forward to {remote_host}:{remote_port} on {self.target}; "
                f"configure it with TranscriptRunner(forwards={{({remote_host!r}, "
                f"{remote_port}): <local port>}})"
            )
            self.unexpected.append(f"forward {remote_host}:{remote_port}")
            raise AssertionError(message) from None
        forward = TranscriptForward(port)
        self.opened_forwards.append(forward)
        return forward

    # --- matching ---------------------------------------------------------------------------

    def _answer(self, command: str, input: str | None) -> TranscriptEntry:
        index = self._find(command, input)
        if index is None:
            self.unexpected.append(command)
            raise AssertionError(self._unexpected_message(command, input))
        left = self._left[index]
        if left is not None:
            self._left[index] = left - 1
        self._used[index] += 1
        return self.entries[index]

    def _find(self, command: str, input: str | None) -> int | None:
        for index, (entry, left) in enumerate(zip(self.entries, self._left, strict=True)):
            if left == 0:
                continue
            if entry.command_matches(command) and entry.input_matches(input):
                return index
            if self.ordered and left is not None:
                return None  # the next expected command is a different one
        return None

    def _unexpected_message(self, command: str, input: str | None) -> str:
        lines = [f"unexpected command on {self.target}: {command!r}"]
        wrong_input = [
            entry
            for entry in self.entries
            if entry.command_matches(command) and not entry.input_matches(input)
        ]
        if wrong_input:
            lines.append(f"it matches {wrong_input[0].describe()} but its input was {input!r}")
        waiting = [
            entry
            for entry, left in zip(self.entries, self._left, strict=True)
            if left is None or left > 0
        ]
        if self.ordered and waiting:
            lines.append(f"expected next: {waiting[0].describe()}")
        elif waiting:
            lines.append("expected one of:")
            lines.extend(f"  {entry.describe()}" for entry in waiting)
        else:
            lines.append("the transcript has no commands left")
        used = [
            entry.describe()
            for entry, count in zip(self.entries, self._used, strict=True)
            if count and entry.command_matches(command)
        ]
        if used:
            lines.append(f"(a matching entry was used up already: {used[0]})")
        return "\n".join(lines)


_LINE = re.compile(r"^(?P<key>\$~|\$|>|!|<|exit|times)(?:\s(?P<rest>.*))?$")


def parse_transcript(text: str) -> list[TranscriptEntry]:
    """Parse the text format described in this module's docstring; raises ``ValueError`` with
    the line number of a malformed line."""
    entries: list[TranscriptEntry] = []
    current: dict[str, Any] | None = None
    out: list[str] = []
    err: list[str] = []

    def finish() -> None:
        if current is not None:
            if out:
                current["stdout"] = "".join(line + "\n" for line in out)
            if err:
                current["stderr"] = "".join(line + "\n" for line in err)
            entries.append(TranscriptEntry(**current))

    for number, raw in enumerate(textwrap.dedent(text).splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(
                f"transcript line {number}: {line!r} does not start with "
                "'$', '$~', '>', '!', '<', 'exit' or 'times'"
            )
        key, rest = match["key"], match["rest"] or ""
        if key in ("$", "$~"):
            try:
                finish()
            except ValueError as exc:
                raise ValueError(f"transcript line {number}: {exc}") from None
            current = {"command": rest} if key == "$" else {"match": rest}
            out, err = [], []
            continue
        if current is None:
            raise ValueError(f"transcript line {number}: {key!r} before the first '$' line")
        if key == ">":
            out.append(rest)
        elif key == "!":
            err.append(rest)
        elif key == "<":
            current["input"] = rest
        elif key == "exit":
            try:
                current["exit_status"] = int(rest)
            except ValueError:
                raise ValueError(f"transcript line {number}: exit status {rest!r}") from None
        elif rest.strip() == "*":
            current["times"] = None
        elif rest.strip().isdigit():
            current["times"] = int(rest)
        else:
            raise ValueError(f"transcript line {number}: times {rest!r}")
    try:
        finish()
    except ValueError as exc:
        raise ValueError(f"transcript entry at the end: {exc}") from None
    return entries
