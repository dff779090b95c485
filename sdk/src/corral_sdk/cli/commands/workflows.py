"""``corral workflows``: add, list, show, change, delete and check workflows."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import msgspec

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.commands.cluster import resource_path
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import Invalid
from corral_sdk.wire import (
    RunInfo,
    RunList,
    RunLogs,
    RunStart,
    WorkflowCheck,
    WorkflowCreate,
    WorkflowInfo,
    WorkflowList,
    WorkflowUpdate,
)

__all__ = [
    "create",
    "delete",
    "get",
    "lint",
    "ls",
    "run",
    "runs_cancel",
    "runs_list",
    "runs_logs",
    "runs_view",
    "update",
    "workflow_path",
]

log = logging.getLogger("corral")


def workflow_path(client: ApiClient, ref: str, *rest: str) -> str:
    """The API path of a workflow named ``pw://owner/name``, ``owner/name`` or ``name``."""
    return resource_path(client, "workflows", ref, *rest)


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise Invalid(f"--yaml: cannot read {path}: {exc.strerror}", field="yaml") from None


def _report(error: Invalid, source: str) -> None:
    """Every problem of a refused YAML, as ``file:line:column: message``."""
    problems: list[dict[str, Any]] = error.details.get("problems") or []
    if not problems:
        raise error
    for problem in problems:
        place = f"{problem['line']}:{problem['column']}:" if problem.get("line") else ""
        print(f"{source}:{place} {problem['message']}", file=sys.stderr)


def _print(workflows: list[WorkflowInfo]) -> None:
    print_table(
        ["URI", "SOURCE", "VERSION", "FAVORITE", "TAGS", "DESCRIPTION"],
        [
            [
                w.uri,
                w.source,
                w.version or "",
                "yes" if w.favorite else "",
                ",".join(w.tags),
                w.description,
            ]
            for w in workflows
        ],
    )


def ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        found = client.get(
            "/api/workflows", WorkflowList, favorite=args.favorite or None, limit=200
        ).items
    if args.output == "json":
        print_json(found)
    else:
        _print(found)
    return 0


def get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(workflow_path(client, args.name), msgspec.Raw)
    workflow = msgspec.json.decode(raw, type=WorkflowInfo)
    if args.output == "json":
        print_json(raw)
    elif args.output == "yaml":
        sys.stdout.write(workflow.yaml)
    else:
        _print([workflow])
    return 0


def create(args: argparse.Namespace) -> int:
    source = args.yaml or ""
    body = WorkflowCreate(
        name=args.name,
        description=args.description or "",
        tags=list(args.tag or []),
        app=args.app,
        source="remote" if args.remote else "local",
        yaml=_read(source) if source else "",
        url=args.remote or "",
        ref=args.ref or "",
        path=args.path or "workflow.yaml",
    )
    try:
        with client_for(args) as client:
            raw = client.post("/api/workflows", msgspec.Raw, body)
    except Invalid as exc:
        if exc.details.get("field") != "yaml":
            raise
        _report(exc, source or "yaml")
        return 2
    created = msgspec.json.decode(raw, type=WorkflowInfo)
    if args.output == "json":
        print_json(raw)
    else:
        log.info("created %s (version %s)", created.uri, created.version)
    return 0


def update(args: argparse.Namespace) -> int:
    body = WorkflowUpdate(
        description=args.description,
        tags=args.tag,
        yaml=_read(args.yaml) if args.yaml else None,
        url=args.remote,
        ref=args.ref,
    )
    try:
        with client_for(args) as client:
            raw = client.patch(workflow_path(client, args.name), msgspec.Raw, body)
    except Invalid as exc:
        if exc.details.get("field") != "yaml":
            raise
        _report(exc, args.yaml or "yaml")
        return 2
    updated = msgspec.json.decode(raw, type=WorkflowInfo)
    if args.output == "json":
        print_json(raw)
    else:
        log.info("updated %s (version %s)", updated.uri, updated.version)
    return 0


def delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(workflow_path(client, args.name))
    log.info("deleted %s", args.name)
    return 0


def lint(args: argparse.Namespace) -> int:
    """Check a YAML file: each problem as ``file:line:column: message``; exit 1 with any."""
    text = _read(args.file)
    with client_for(args) as client:
        checked = client.post(
            "/api/workflows/lint", WorkflowCheck, {"yaml": text, "name": args.name or ""}
        )
    if args.output == "json":
        print_json(checked)
    else:
        for problem in checked.problems:
            place = f"{problem.line}:{problem.column}:" if problem.line else ""
            print(f"{args.file}:{place} {problem.message}")
        if checked.valid:
            log.info("%s is a valid workflow", args.file)
    return 0 if checked.valid else 1


# --- runs ----------------------------------------------------------------------------------------

TERMINAL_RUN_STATES = frozenset({"completed", "error", "canceled"})


def _inputs(pairs: list[str] | None) -> dict[str, Any]:
    """``-i key=value`` (repeatable) or ``-i '{"key": value}'`` (JSON)."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        text = pair.strip()
        if text.startswith("{"):
            try:
                decoded = msgspec.json.decode(text)
            except msgspec.DecodeError as exc:
                raise Invalid(f"-i: not JSON: {exc}", field="inputs") from None
            if not isinstance(decoded, dict):
                raise Invalid("-i: JSON inputs must be an object", field="inputs")
            values.update(decoded)
            continue
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise Invalid(f"-i {pair!r}: expected key=value", field="inputs")
        try:
            values[key] = msgspec.json.decode(value) if value[:1] in '[{"' else value
        except msgspec.DecodeError:
            values[key] = value
    return values


def _follow(client: ApiClient, run_id: int, *, offset: int = 0, job: str | None = None) -> str:
    """Print the run's log from ``offset`` until the run ends; returns its status."""
    import time

    while True:
        logs = client.get(f"/api/runs/{run_id}/logs", RunLogs, offset=offset, job=job)
        for line in logs.lines:
            prefix = f"{line.job}: " if line.job else ""
            print(f"{prefix}{line.line}", flush=True)
        offset = logs.next_offset
        if logs.finished:
            return logs.status
        if not logs.lines:
            time.sleep(0.5)


def _exit(status: str) -> int:
    return 0 if status == "completed" else 1


def run(args: argparse.Namespace) -> int:
    """Start a run; ``--wait`` follows its log and exits 0 when it completes, 1 otherwise."""
    body = RunStart(inputs=_inputs(args.input), configuration=args.configuration or "")
    with client_for(args) as client:
        started = client.post(workflow_path(client, args.name, "runs"), RunInfo, body)
        if args.output == "json" and not args.wait:
            print_json(started)
            return 0
        log.info("run %05d of %s started (id %s)", started.number, started.workflow, started.id)
        if not args.wait:
            return 0
        status = _follow(client, started.id)
        if args.output == "json":
            print_json(client.get(f"/api/runs/{started.id}", RunInfo))
    return _exit(status)


def runs_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        found = client.get(workflow_path(client, args.name, "runs"), RunList, limit=200).items
    if args.output == "json":
        print_json(found)
        return 0
    print_table(
        ["ID", "RUN", "WORKFLOW", "STATUS", "SUBMITTED", "RUNTIME (MIN)"],
        [
            [
                r.id,
                f"{r.number:05d}",
                r.workflow,
                r.status,
                r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "" if r.runtime_seconds is None else f"{r.runtime_seconds / 60:.1f}",
            ]
            for r in found
        ],
    )
    return 0


def runs_view(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        found = client.get(f"/api/runs/{args.run}", RunInfo)
    if args.output == "json":
        print_json(found)
        return 0
    print(f"run {found.number:05d} of {found.workflow}: {found.status}"
          + (f" ({found.reason})" if found.reason else ""))  # fmt: skip
    rows: list[list[Any]] = []
    for job in found.jobs:
        rows.append([job.name, "", job.status, "", "", job.reason])
        for step in job.steps:
            exit_status = "" if step.exit_status is None else step.exit_status
            name = step.name or f"step {step.index + 1}"
            rows.append(["", name, step.status, exit_status, step.attempt + 1, step.reason])
    print_table(["JOB", "STEP", "STATUS", "EXIT", "ATTEMPTS", "REASON"], rows)
    return 0


def runs_logs(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if args.follow:
            return _exit(_follow(client, args.run, job=args.job))
        offset, lines = 0, []
        while True:
            logs = client.get(f"/api/runs/{args.run}/logs", RunLogs, offset=offset, job=args.job)
            lines += logs.lines
            if not logs.lines:
                break
            offset = logs.next_offset
    if args.output == "json":
        print_json(lines)
        return 0
    shown = lines[-args.tail :] if args.tail else lines
    for line in shown:
        print(f"{line.job + ': ' if line.job else ''}{line.line}")
    return 0


def runs_cancel(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        found = client.post(f"/api/runs/{args.run}/cancel", RunInfo)
    log.info("cancelling run %05d of %s", found.number, found.workflow)
    return 0
