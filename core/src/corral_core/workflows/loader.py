"""Reading a workflow's YAML: YAML 1.2 (``on`` is a string, not true), unquoted ``{{ ... }}``
values accepted, then every part converted into :mod:`corral_core.workflows.format` and checked,
each problem with its line and column.

:func:`load` returns the typed :class:`~corral_core.workflows.format.Workflow` and the plain
document, or raises :class:`WorkflowInvalid` listing every problem found (all of them, in order
of position, so an editor can show them at once).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from corral_core.workflows import expressions
from corral_core.workflows.durations import parse_duration
from corral_core.workflows.format import (
    INPUT_TYPES,
    Configuration,
    Input,
    Job,
    Session,
    Workflow,
)
from corral_sdk.errors import Invalid

__all__ = ["LoadedWorkflow", "WorkflowInvalid", "WorkflowProblem", "load"]

Path = tuple[str | int, ...]

INPUT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
JOB_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_YAML_BYTES = 1_000_000
_USES = re.compile(
    r"^(?:workflow/[a-z0-9_]{2,255}"
    r"|marketplace/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)?"
    r"|github/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_./-]+)?@[A-Za-z0-9_./-]+"
    r"|(?:parallelworks|corral)/[a-z0-9-]+"
    # a plugin's workflow source (corral_register_workflow_sources), checked when a run starts
    r"|(?!(?:workflow|marketplace|github|parallelworks|corral)/)[a-z][a-z0-9_-]*/[A-Za-z0-9_.@/-]+"
    r")$"
)
# a value that is only a {{ ... }} expression (YAML would read a flow mapping): quote it
_BARE_BRACES = re.compile(
    r"^(?P<lead>\s*(?:-\s+)*(?:(?:'[^']*'|\"[^\"]*\"|[^\s#'\"{][^#]*?):\s+)?)"
    r"(?P<expr>\{\{.*?\}\})(?P<tail>\s*(?:#.*)?)$"
)
_SPEC_KEYS = {"on!": "on"}
"""Keys the spec's own examples misspell, read as what they mean."""


class WorkflowProblem(msgspec.Struct, frozen=True):
    line: int
    """1-based; 0 when the problem is about the whole document."""
    column: int
    """1-based."""
    message: str
    path: str = ""
    """Where in the document, dotted (``jobs.main.steps.0.run``)."""

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line else ""
        return f"{where}{self.message}"


class WorkflowInvalid(Invalid):
    """The YAML is not a valid workflow; ``problems`` has every problem with its position."""

    def __init__(self, problems: list[WorkflowProblem], source: str = "workflow") -> None:
        problems = sorted(problems, key=lambda p: (p.line, p.column))
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"{source}: {first}{more}",
            field="yaml",
            details={"problems": [msgspec.to_builtins(p) for p in problems]},
        )
        self.problems = problems


class LoadedWorkflow(msgspec.Struct, frozen=True):
    workflow: Workflow
    document: dict[str, Any]
    """The plain parsed document (``on`` under its own name)."""


class _Positions:
    """Line and column of every key and value of a ruamel document, by path."""

    def __init__(self) -> None:
        self.keys: dict[Path, tuple[int, int]] = {}
        self.values: dict[Path, tuple[int, int]] = {}

    def of(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        table = self.keys if key else self.values
        for depth in range(len(path), -1, -1):
            found = table.get(path[:depth]) or self.values.get(path[:depth])
            if found is not None:
                return found
        return (1, 1)


def _plain(node: Any, path: Path, positions: _Positions) -> Any:
    """The ruamel tree as dicts and lists, recording positions (1-based)."""
    if isinstance(node, CommentedMap):
        result: dict[str, Any] = {}
        for key, value in node.items():
            name = _SPEC_KEYS.get(str(key), str(key)) if not path else str(key)
            child = (*path, name)
            try:
                line, column = node.lc.key(key)
                positions.keys[child] = (line + 1, column + 1)
                vline, vcolumn = node.lc.value(key)
                positions.values[child] = (vline + 1, vcolumn + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            result[name] = _plain(value, child, positions)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            try:
                line, column = node.lc.item(index)
                positions.values[child] = (line + 1, column + 1)
            except (KeyError, TypeError, AttributeError, IndexError):
                pass
            items.append(_plain(value, child, positions))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _quote_bare_braces(text: str) -> str:
    """``if: {{ always }}`` and ``default: {{ inputs.x }}`` as the spec writes them: YAML would
    read a flow mapping, so such values are quoted first (single quotes, doubled inside)."""
    lines = []
    for line in text.split("\n"):
        if "{{" in line:
            match = _BARE_BRACES.match(line)
            if match is not None:
                quoted = match["expr"].replace("'", "''")
                lines.append(f"{match['lead']}'{quoted}'{match['tail']}")
                continue
        lines.append(line)
    return "\n".join(lines)


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


class _Checker:
    def __init__(self, positions: _Positions) -> None:
        self.positions = positions
        self.problems: list[WorkflowProblem] = []

    def problem(self, path: Path, message: str, *, key: bool = False) -> None:
        line, column = self.positions.of(path, key=key)
        self.problems.append(WorkflowProblem(line, column, message, _dotted(path)))

    def convert(self, value: Any, kind: type[Any], path: Path) -> Any:
        """``value`` as ``kind``, or None after recording where and why it is not one."""
        try:
            return msgspec.convert(value, kind, strict=True)
        except msgspec.ValidationError as exc:
            message, at = _split_msgspec(str(exc))
            where = (*path, *at)
            if unknown := re.match(r"Object contains unknown field `(.+)`", message):
                self.problem((*where, unknown[1]), f"unknown key '{unknown[1]}'", key=True)
            elif missing := re.match(r"Object missing required field `(.+)`", message):
                self.problem(where, f"missing required key '{missing[1]}'", key=True)
            else:
                described = message[0].lower() + message[1:]
                self.problem(where, f"{_dotted(where) or 'the document'}: {described}")
            return None


def _split_msgspec(text: str) -> tuple[str, Path]:
    message, _, at = text.partition(" - at `")
    at = at.rstrip("`")
    path: list[str | int] = []
    for part in re.findall(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]", at.removeprefix("$")):
        name, index = part
        if name:
            path.append(name)
        elif index == "...":
            break  # a mapping's key msgspec does not name: stop at the mapping
        else:
            path.append(int(index))
    return message, tuple(path)


def _walk_expressions(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_expressions(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_expressions(item, (*path, index))


def load(text: str, *, source: str = "workflow", name: str = "") -> LoadedWorkflow:
    """Parse and check a workflow; ``name`` is the workflow's own name (to refuse a
    ``uses: workflow/<name>`` that calls itself)."""
    if len(text.encode()) > MAX_YAML_BYTES:
        raise WorkflowInvalid(
            [WorkflowProblem(0, 0, f"the YAML is larger than {MAX_YAML_BYTES} bytes")], source
        )
    yaml = YAML(typ="rt", pure=True)
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(_quote_bare_braces(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        what = exc.problem or exc.context or "invalid YAML"
        if mark is not None and "\t" in text.split("\n")[mark.line][: mark.column + 1]:
            what = f"{what} (a tab: YAML indents with spaces only)"
        raise WorkflowInvalid([WorkflowProblem(line, column, f"YAML: {what}")], source) from None
    except YAMLError as exc:
        raise WorkflowInvalid([WorkflowProblem(0, 0, f"YAML: {exc}")], source) from None
    positions = _Positions()
    document = _plain(tree, (), positions)
    if not isinstance(document, dict):
        raise WorkflowInvalid(
            [WorkflowProblem(1, 1, "a workflow is a mapping with at least 'jobs'")], source
        )
    checker = _Checker(positions)
    workflow = _check(document, checker, name)
    if checker.problems or workflow is None:
        raise WorkflowInvalid(checker.problems, source)
    return LoadedWorkflow(workflow=workflow, document=document)


def _check(document: dict[str, Any], checker: _Checker, name: str) -> Workflow | None:
    jobs_raw = document.get("jobs")
    top = {k: v for k, v in document.items() if k not in ("jobs", "sessions", "configurations")}
    converted_top = checker.convert({**top, "jobs": {"_": {"steps": [{"run": ""}]}}}, Workflow, ())
    jobs: dict[str, Job] = {}
    if not isinstance(jobs_raw, dict) or not jobs_raw:
        checker.problem(("jobs",), "a workflow needs 'jobs' with at least one job", key=True)
    else:
        for job_name, raw in jobs_raw.items():
            path: Path = ("jobs", job_name)
            if not JOB_NAME.match(job_name):
                checker.problem(
                    path, f"job name {job_name!r}: letters, digits, '-' and '_' only", key=True
                )
            if not isinstance(raw, dict):
                checker.problem(path, f"job {job_name!r} must be a mapping with 'steps'")
                continue
            if isinstance(raw.get("steps"), list) and not raw["steps"]:
                checker.problem((*path, "steps"), f"job {job_name!r} needs at least one step")
                continue
            for step in raw.get("steps") or []:
                for key in ("run", "cleanup", "name"):
                    # `run: true` is the command true, not a boolean
                    if isinstance(step, dict) and isinstance(step.get(key), bool | int | float):
                        step[key] = expressions.to_text(step[key])
            job = checker.convert(raw, Job, path)
            if job is not None:
                jobs[job_name] = job
                _check_job(job_name, job, raw, checker, name)
    sessions: dict[str, Session | None] = {}
    raw_sessions = document.get("sessions")
    if raw_sessions is not None and not isinstance(raw_sessions, dict):
        checker.problem(("sessions",), "sessions is a mapping of session names")
    elif raw_sessions:
        for session_name, raw in raw_sessions.items():
            sessions[session_name] = (
                None if raw is None else checker.convert(raw, Session, ("sessions", session_name))
            )
        redirects = [n for n, s in sessions.items() if s is not None and s.redirect]
        if len(redirects) > 1:
            checker.problem(
                ("sessions", redirects[1], "redirect"),
                f"only one session may redirect (both {redirects[0]!r} and {redirects[1]!r} do)",
            )
    configurations: dict[str, Configuration] = {}
    raw_configurations = document.get("configurations")
    if raw_configurations is not None and not isinstance(raw_configurations, dict):
        checker.problem(("configurations",), "configurations is a mapping of names")
    elif raw_configurations:
        for config_name, raw in raw_configurations.items():
            found = checker.convert(raw, Configuration, ("configurations", config_name))
            if found is not None:
                configurations[config_name] = found
    if converted_top is None:
        return None
    inputs = (
        converted_top.on.execute.inputs
        if converted_top.on is not None and converted_top.on.execute is not None
        else {}
    )
    _check_inputs(inputs, ("on", "execute", "inputs"), checker)
    if converted_top.timeout is not None:
        _check_duration(converted_top.timeout, ("timeout",), checker)
    for path, text in _walk_expressions(document, ()):
        for problem in expressions.lint(text):
            line, column = checker.positions.of(path)
            checker.problems.append(
                WorkflowProblem(
                    line,
                    column,
                    f"malformed expression {problem.expression!r}: {problem.message}",
                    _dotted(path),
                )
            )
    if len(jobs) != len(jobs_raw or {}):
        return None
    _check_needs(jobs, checker)
    if checker.problems:
        return None
    complete: Workflow = msgspec.structs.replace(
        converted_top, jobs=jobs, sessions=sessions, configurations=configurations
    )
    return complete


def _check_duration(value: str | int, path: Path, checker: _Checker) -> None:
    if isinstance(value, str) and expressions.has_expressions(value):
        return
    try:
        parse_duration(value)
    except ValueError as exc:
        checker.problem(path, str(exc))


def _check_job(
    job_name: str, job: Job, raw: dict[str, Any], checker: _Checker, workflow: str
) -> None:
    path: Path = ("jobs", job_name)
    if job.timeout is not None:
        _check_duration(job.timeout, (*path, "timeout"), checker)
    if job.strategy is not None:
        matrix = job.strategy.matrix
        for axis, values in matrix.items():
            if axis in ("include", "exclude"):
                if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
                    checker.problem(
                        (*path, "strategy", "matrix", axis), f"{axis} is a list of mappings"
                    )
            elif (not isinstance(values, list) or not values) and not (
                isinstance(values, str) and expressions.has_expressions(values)
            ):
                checker.problem(
                    (*path, "strategy", "matrix", axis),
                    f"matrix axis {axis!r} must be a non-empty list",
                )
    ids: set[str] = set()
    for index, step in enumerate(job.steps):
        where: Path = (*path, "steps", index)
        if (step.run is None) == (step.uses is None):
            checker.problem(where, "a step has exactly one of 'run' or 'uses'")
        if step.id:
            if step.id in ids:
                checker.problem((*where, "id"), f"step id {step.id!r} is used twice in this job")
            ids.add(step.id)
        if step.uses is not None and not expressions.has_expressions(step.uses):
            if not _USES.match(step.uses):
                checker.problem(
                    (*where, "uses"),
                    f"uses {step.uses!r}: expected workflow/<name>, marketplace/<slug>[/<version>]"
                    ", github/<owner>/<repo>[/<path>]@<ref>, parallelworks/<action> or "
                    "<source>/<reference> (an installed workflow source's)",
                )
            elif workflow and step.uses == f"workflow/{workflow}":
                checker.problem(
                    (*where, "uses"), f"workflow {workflow!r} cannot use itself (recursion)"
                )
        if step.timeout is not None:
            _check_duration(step.timeout, (*where, "timeout"), checker)
        if step.retry is not None:
            for name in ("interval", "timeout"):
                _check_duration(getattr(step.retry, name), (*where, "retry", name), checker)


def _check_needs(jobs: dict[str, Job], checker: _Checker) -> None:
    graph: dict[str, list[str]] = {}
    for job_name, job in jobs.items():
        needs = [job.needs] if isinstance(job.needs, str) else list(job.needs)
        for index, needed in enumerate(needs):
            if needed not in jobs:
                checker.problem(
                    ("jobs", job_name, "needs", index)
                    if not isinstance(job.needs, str)
                    else ("jobs", job_name, "needs"),
                    f"job {job_name!r} needs {needed!r}, which is not a job of this workflow",
                )
        graph[job_name] = [n for n in needs if n in jobs]
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
            if state.get(nxt) is None:
                found = visit(nxt, [*trail, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for job_name in graph:
        if state.get(job_name) is None:
            cycle = visit(job_name, [job_name])
            if cycle:
                checker.problem(
                    ("jobs", cycle[0], "needs"),
                    "the jobs' needs make a cycle: " + " -> ".join(cycle),
                )
                return


def _check_inputs(inputs: dict[str, Any], path: Path, checker: _Checker) -> None:
    for input_name, raw in inputs.items():
        where: Path = (*path, input_name)
        if input_name == "$meta":
            continue
        if not INPUT_NAME.match(input_name):
            checker.problem(
                where,
                f"input name {input_name!r}: letters, digits, '-' and '_' only",
                key=True,
            )
            continue
        if not isinstance(raw, dict):
            checker.problem(where, f"input {input_name!r} must be a mapping with a 'type'")
            continue
        kind = raw.get("type")
        if kind not in INPUT_TYPES:
            checker.problem(
                (*where, "type") if "type" in raw else where,
                f"input {input_name!r}: unknown type {kind!r}"
                if kind is not None
                else f"input {input_name!r} needs a 'type'",
            )
            continue
        found = checker.convert(raw, Input, where)
        if found is None:
            continue
        if kind == "group" and isinstance(found.items, dict):
            _check_inputs(found.items, (*where, "items"), checker)
        if kind == "step" and isinstance(found.options, dict):
            _check_inputs(found.options, (*where, "options"), checker)
        if kind == "step" and not found.title:
            checker.problem(where, f"wizard step {input_name!r} needs a 'title'")
        if kind == "dropdown" and found.option_key is None and isinstance(found.options, dict):
            checker.problem(
                (*where, "options"),
                f"input {input_name!r}: options by key need an 'option-key' expression",
            )
