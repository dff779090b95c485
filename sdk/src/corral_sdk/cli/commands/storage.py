"""``corral storage``: buckets, disks, NFS and Lustre file systems: yours and those shared with
you. Create, change, start (provision) and stop (delete at the cloud, data included), follow
their provision and deletion logs, share them with groups."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

import msgspec

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.commands.cluster import resource_path
from corral_sdk.cli.commands.networks import parse_option
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import Invalid, Timeout
from corral_sdk.wire import (
    StorageCreate,
    StorageDetails,
    StorageList,
    StorageLogs,
    StorageSessionList,
    StorageShare,
    StorageShareInfo,
    StorageSummary,
    StorageTypeInfo,
    StorageUpdate,
)

__all__ = [
    "create",
    "delete",
    "format_line",
    "get",
    "logs",
    "ls",
    "share",
    "start",
    "stop",
    "storage_path",
    "types",
    "update",
]

log = logging.getLogger("corral")

STORAGE = "/api/storage"
SETTLED = {"start": ("active", "failed"), "stop": ("stopped", "failed")}


def storage_path(client: ApiClient, ref: str, *rest: str) -> str:
    """The API path of a storage named ``pw://owner/name``, ``owner/name`` or a name of the
    caller's, followed by ``rest``."""
    return resource_path(client, "storage", ref, *rest)


def format_line(at: datetime, message: str) -> str:
    """A log line as the server's download gives it: ISO time (milliseconds) and message."""
    return f"{at.replace(tzinfo=None).isoformat(timespec='milliseconds')}: {message}"


def _options(args: argparse.Namespace) -> dict[str, Any] | None:
    found: dict[str, Any] | None = None
    if getattr(args, "options_json", None):
        try:
            found = json.loads(args.options_json)
        except json.JSONDecodeError as exc:
            raise Invalid(f"--options-json is not JSON: {exc}", field="storage_options") from None
        if not isinstance(found, dict):
            raise Invalid("--options-json must be a JSON object", field="storage_options")
    if getattr(args, "option", None):
        found = {**(found or {}), **dict(parse_option(v) for v in args.option)}
    return found


def _tags(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _print_list(items: list[StorageSummary]) -> None:
    print_table(
        ["URI", "TYPE", "CATEGORY", "STATUS", "ACCESS", "CSP URI"],
        [
            [
                s.uri,
                s.type_label,
                s.category + (" (ephemeral)" if s.ephemeral else ""),
                s.status + ("*" if s.favorite else ""),
                s.permission,
                s.csp_uri or "-",
            ]
            for s in items
        ],
    )


def _show(args: argparse.Namespace, raw: msgspec.Raw) -> StorageDetails:
    details = msgspec.json.decode(raw, type=StorageDetails)
    if args.output == "json":
        print_json(raw)
        return details
    rows = [
        ("uri", details.uri),
        ("type", f"{details.type_label} ({details.type}, {details.category})"),
        ("status", details.status + (f" ({details.reason})" if details.reason else "")),
        ("session", details.session or "-"),
        ("cloud account", details.cloud_account or "-"),
        ("group", details.group or "-"),
        ("ephemeral", "yes" if details.ephemeral else "no"),
        ("storage options", json.dumps(details.storage_options, sort_keys=True)),
        ("csp uri", details.csp_uri or "-"),
        ("region", details.region or "-"),
        ("description", details.description or "-"),
        ("tags", ", ".join(details.tags) or "-"),
        ("access", details.permission),
    ]
    print_table(["FIELD", "VALUE"], rows)
    return details


def ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(STORAGE, msgspec.Raw, category=args.category, owner=args.owner, limit=200)
    if args.output == "json":
        print_json(raw)
    else:
        _print_list(msgspec.json.decode(raw, type=StorageList).items)
    return 0


def types(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(f"{STORAGE}/types", msgspec.Raw)
    if args.output == "json":
        print_json(raw)
        return 0
    print_table(
        ["NAME", "LABEL", "CATEGORY", "CSP", "FEATURES"],
        [
            [t.name, t.label, t.category, t.csp or "-", ", ".join(t.features) or "-"]
            for t in msgspec.json.decode(raw, type=list[StorageTypeInfo])
        ],
    )
    return 0


def get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(storage_path(client, args.name), msgspec.Raw)
    _show(args, raw)
    return 0


def create(args: argparse.Namespace) -> int:
    body = StorageCreate(
        name=args.name,
        type=args.type,
        cloud_account=args.cloud_account or "",
        storage_options=_options(args) or {},
        ephemeral=args.ephemeral,
        group=args.group or "",
        description=args.description or "",
        tags=_tags(args.tags) or [],
    )
    with client_for(args) as client:
        raw: msgspec.Raw = client.post(STORAGE, msgspec.Raw, body)
        if args.start:
            path = storage_path(client, msgspec.json.decode(raw, type=StorageDetails).uri)
            raw = client.post(f"{path}/start", msgspec.Raw)
            if args.wait:
                raw = _wait(args, client, path, "start")
    details = _show(args, raw)
    return 1 if args.wait and details.status == "failed" else 0


def update(args: argparse.Namespace) -> int:
    body = StorageUpdate(
        storage_options=_options(args),
        cloud_account=args.cloud_account,
        group=args.group,
        description=args.description,
        tags=_tags(args.tags),
    )
    with client_for(args) as client:
        raw = client.patch(storage_path(client, args.name), msgspec.Raw, body)
    _show(args, raw)
    return 0


def delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(storage_path(client, args.name))
    log.info("storage %s deleted", args.name)
    return 0


def _wait(args: argparse.Namespace, client: ApiClient, path: str, doing: str) -> msgspec.Raw:
    deadline = time.monotonic() + args.wait_timeout
    while True:
        raw: msgspec.Raw = client.get(path, msgspec.Raw)
        status = msgspec.json.decode(raw, type=StorageDetails).status
        if status in SETTLED[doing]:
            return raw
        if time.monotonic() > deadline:
            raise Timeout(f"{path} is still {status} after {args.wait_timeout:g} s")
        time.sleep(1.0)


def _power(args: argparse.Namespace, doing: str) -> int:
    with client_for(args) as client:
        path = storage_path(client, args.name)
        raw: msgspec.Raw = client.post(f"{path}/{doing}", msgspec.Raw)
        if args.wait:
            raw = _wait(args, client, path, doing)
    details = _show(args, raw)
    return 1 if args.wait and details.status == "failed" else 0


def start(args: argparse.Namespace) -> int:
    return _power(args, "start")


def stop(args: argparse.Namespace) -> int:
    return _power(args, "stop")


def logs(args: argparse.Namespace) -> int:
    tab = "deletion" if args.deletion else "provision"
    with client_for(args) as client:
        path = storage_path(client, args.name)
        number = args.session
        if number is None:
            sessions = client.get(f"{path}/sessions", StorageSessionList).items
            if not sessions:
                raise Invalid(f"{args.name} has no sessions yet: start it first", field="session")
            number = int(sessions[0].session)
        offset = 0
        lines: list[Any] = []
        while True:
            page = client.get(f"{path}/sessions/{number}/logs/{tab}", StorageLogs, offset=offset)
            for line in page.lines:
                if args.output == "json":
                    lines.append(msgspec.to_builtins(line))
                else:
                    sys.stdout.write(format_line(line.at, line.message) + "\n")
                    sys.stdout.flush()
            offset = page.next_offset
            if page.lines:
                continue
            if not args.follow or page.finished:
                break
            time.sleep(1.0)
    if args.output == "json":
        print_json(lines)
    return 0


def share(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        path = storage_path(client, args.name)
        if args.group is None:
            found = client.get(f"{path}/sharing", list[StorageShareInfo])
        else:
            body = StorageShare(view_edit=args.view_edit, mount=args.mount or args.view_edit)
            found = client.put(
                f"{path}/sharing/{quote(args.group, safe='')}", list[StorageShareInfo], body
            )
    if args.output == "json":
        print_json(found)
    else:
        print_table(
            ["GROUP", "VIEW & EDIT", "MOUNT"],
            [[s.group, "yes" if s.view_edit else "no", "yes" if s.mount else "no"] for s in found],
        )
    return 0
