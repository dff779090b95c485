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
from corral_sdk.errors import Invalid, TransportError
from corral_sdk.wire import (
    RunClean,
    RunCleaned,
    RunError,
    RunInfo,
    RunList,
    RunLogEnd,
    RunLogLineInfo,
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
    "runs_clean",
    "runs_errors",
    "runs_list",
    "runs_logs",
    "runs_rerun",
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
        marketplace = True if args.marketplace else False if args.mine else None
        found = client.get(
            "/api/workflows",
            WorkflowList,
            favorite=args.favorite or None,
            marketplace=marketplace,
            limit=200,
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


def _print_line(line: RunLogLineInfo) -> None:
    print(f"{line.job + ': ' if line.job else ''}{line.line}", flush=True)


def _follow(
    client: ApiClient,
    run: str | int,
    *,
    job: str | None = None,
    step: str | None = None,
    offset: int = 0,
) -> str:
    """Print the run's log from ``offset`` as it is written (Server-Sent Events) until the run
    ends; a dropped stream is opened again after the last line received, so no line is lost or
    repeated. Returns the run's status."""
    import time

    failures = 0
    while True:
        try:
            for event in client.events(f"/api/runs/{run}/logs/stream", offset=offset, job=job,
                                       step=step):  # fmt: skip
                if event.data is None:
                    continue
                if event.event == "end":
                    return msgspec.json.decode(event.data, type=RunLogEnd).status
                line = msgspec.json.decode(event.data, type=RunLogLineInfo)
                _print_line(line)
                offset, failures = line.offset + 1, 0
        except TransportError as exc:
            failures += 1
            if failures > 30:
                raise
            log.debug("log stream broke (%s): reconnecting from line %s", exc.message, offset)
        time.sleep(min(0.2 * failures, 2.0))


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
    """Your runs, newest first: of every workflow, or of one (``NAME`` or ``--workflow``)."""
    with client_for(args) as client:
        found = client.get(
            "/api/runs", RunList, workflow=args.workflow or args.name, status=args.status,
            search=args.search, limit=args.limit, offset=args.offset,
        ).items  # fmt: skip
    if args.output == "json":
        print_json(found)
        return 0
    print_table(
        ["ID", "SLUG", "WORKFLOW", "STATUS", "SUBMITTED", "RUNTIME (MIN)"],
        [
            [
                r.id,
                r.slug,
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
    """A run's log (``--failed``, ``--job``, ``--step``, ``--tail`` N lines per step), or
    ``-f`` as it is written: exit 0 when the run completed, 1 otherwise."""
    if args.step and not args.job:
        raise Invalid("--step needs --job", field="step")
    if args.follow and args.failed:
        raise Invalid("--failed cannot follow (-f): a step fails only at its end", field="failed")
    with client_for(args) as client:
        if args.follow:
            offset = 0
            if args.tail:  # the last lines of each step first, then what comes next
                while True:
                    logs = client.get(
                        f"/api/runs/{args.run}/logs", RunLogs, offset=offset, job=args.job,
                        step=args.step, tail=args.tail,
                    )  # fmt: skip
                    for line in logs.lines:
                        _print_line(line)
                    offset = logs.next_offset
                    if not logs.lines or logs.finished:
                        break
            return _exit(_follow(client, args.run, job=args.job, step=args.step, offset=offset))
        offset, lines = 0, []
        while True:
            logs = client.get(
                f"/api/runs/{args.run}/logs", RunLogs, offset=offset, job=args.job,
                step=args.step, failed=args.failed or None, tail=args.tail or None,
            )  # fmt: skip
            lines += logs.lines
            if not logs.lines or logs.finished:
                break
            offset = logs.next_offset
    if args.output == "json":
        print_json(lines)
        return 0
    for line in lines:
        _print_line(line)
    return 0


def runs_errors(args: argparse.Namespace) -> int:
    """The failed steps (and jobs) of a run with the end of their logs."""
    with client_for(args) as client:
        found = client.get(f"/api/runs/{args.run}/errors", list[RunError], tail=args.tail)
    if args.output == "json":
        print_json(found)
        return 0
    for error in found:
        where = error.job or "run"
        if error.step is not None:
            where += f" / {error.name or f'step {error.step + 1}'}"
        exit_status = "" if error.exit_status is None else f" (exit {error.exit_status})"
        print(
            f"{where}: {error.status}{exit_status}" + (f": {error.reason}" if error.reason else "")
        )
        for text in error.log_tail:
            print(f"    {text}")
    return 0


def runs_clean(args: argparse.Namespace) -> int:
    """Delete your finished runs matching every filter given."""
    slugs = [s.strip() for s in args.slugs.split(",") if s.strip()] if args.slugs else None
    body = RunClean(older_than_days=args.older_than_days, slugs=slugs, status=args.status)
    with client_for(args) as client:
        cleaned = client.post("/api/runs/clean", RunCleaned, body)
    if args.output == "json":
        print_json(cleaned)
        return 0
    for slug in cleaned.deleted:
        print(slug)
    log.info("deleted %d run(s)", len(cleaned.deleted))
    if cleaned.skipped:
        log.warning(
            "not deleted (unfinished, unknown or not yours): %s", ", ".join(cleaned.skipped)
        )
    return 0


def runs_rerun(args: argparse.Namespace) -> int:
    """Run a run's workflow again with the same YAML and inputs; ``--wait`` as for ``run``."""
    with client_for(args) as client:
        started = client.post(f"/api/runs/{args.run}/rerun", RunInfo)
        if args.output == "json" and not args.wait:
            print_json(started)
            return 0
        log.info("run %05d of %s started (%s)", started.number, started.workflow, started.slug)
        if not args.wait:
            return 0
        return _exit(_follow(client, started.id))


def runs_cancel(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        found = client.post(f"/api/runs/{args.run}/cancel", RunInfo)
    log.info("cancelling run %05d of %s", found.number, found.workflow)
    return 0
