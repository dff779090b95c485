"""``corral workflows``: add, list, show, change, delete and check workflows."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import Invalid
from corral_sdk.wire import (
    ResourceInfo,
    WorkflowCheck,
    WorkflowCreate,
    WorkflowInfo,
    WorkflowList,
    WorkflowUpdate,
)

__all__ = ["create", "delete", "get", "lint", "ls", "update", "workflow_path"]

log = logging.getLogger("corral")


def workflow_path(client: ApiClient, ref: str, *rest: str) -> str:
    """The API path of a workflow named ``pw://owner/name``, ``owner/name`` or ``name``."""
    raw = ref.removeprefix("pw://").strip("/")
    owner, _, name = raw.rpartition("/")
    if not name or "/" in owner:
        raise Invalid(f"{ref!r} is not a workflow (pw://owner/name, owner/name or name)")
    if not owner:
        found = client.get("/api/resources/lookup", ResourceInfo, ref=name)
        owner, name = found.owner, found.name
    return "/".join(["/api/workflows", *(quote(p, safe="") for p in (owner, name, *rest))])


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
