"""``corral os-snapshots`` and ``corral static-ips``: images of a running cloud cluster's
controller and static IP addresses, yours and those shared with your groups."""

from __future__ import annotations

import argparse
import logging
import time

import msgspec

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.commands.cluster import resource_path
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import NotFound, Timeout
from corral_sdk.wire import (
    OsSnapshotCreate,
    OsSnapshotInfo,
    OsSnapshotList,
    StaticIpCreate,
    StaticIpInfo,
    StaticIpList,
)

__all__ = [
    "snapshot_create",
    "snapshot_delete",
    "snapshot_get",
    "snapshot_ls",
    "static_ip_create",
    "static_ip_delete",
    "static_ip_get",
    "static_ip_ls",
]

log = logging.getLogger("corral")

SNAPSHOTS = "/api/os-snapshots"
STATIC_IPS = "/api/static-ips"
SETTLED = ("provisioned", "failed", "deleted")


def _wait(
    args: argparse.Namespace, client: ApiClient, path: str, kind: type, *, gone: bool = False
) -> msgspec.Raw | None:
    """Poll until it settles (or, deleting a static IP, is gone)."""
    deadline = time.monotonic() + args.wait_timeout
    while True:
        try:
            raw: msgspec.Raw = client.get(path, msgspec.Raw)
        except NotFound:
            if gone:
                return None
            raise
        status: str = msgspec.json.decode(raw, type=kind).status
        if not gone and status in SETTLED:
            return raw
        if time.monotonic() > deadline:
            raise Timeout(f"{path} is still {status} after {args.wait_timeout:g} s")
        time.sleep(2.0)


# --- OS snapshots -------------------------------------------------------------------------------


def _print_snapshots(items: list[OsSnapshotInfo]) -> None:
    print_table(
        ["URI", "CLUSTER", "REGION", "IMAGE", "SIZE (GB)", "STATUS"],
        [
            [
                s.uri,
                s.cluster,
                s.region or "-",
                s.image_id or "-",
                "-" if s.size_gib is None else f"{s.size_gib:g}",
                s.status,
            ]
            for s in items
        ],
    )


def _show_snapshot(args: argparse.Namespace, raw: msgspec.Raw) -> OsSnapshotInfo:
    snapshot = msgspec.json.decode(raw, type=OsSnapshotInfo)
    if args.output == "json":
        print_json(raw)
        return snapshot
    _print_snapshots([snapshot])
    if snapshot.reason:
        print(f"\nreason: {snapshot.reason}")
    if snapshot.deleted_at is not None:
        print(f"\ndeleted at {snapshot.deleted_at.isoformat()} (listed for an hour)")
    if snapshot.steps:
        print()
        print_table(
            ["STEP", "STATE", "DETAIL"],
            [[s.name, s.state, s.detail or "-"] for s in snapshot.steps],
        )
    return snapshot


def snapshot_ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(SNAPSHOTS, msgspec.Raw, limit=200)
    if args.output == "json":
        print_json(raw)
    else:
        _print_snapshots(msgspec.json.decode(raw, type=OsSnapshotList).items)
    return 0


def snapshot_get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(resource_path(client, "os-snapshots", args.name), msgspec.Raw)
    _show_snapshot(args, raw)
    return 0


def snapshot_create(args: argparse.Namespace) -> int:
    body = OsSnapshotCreate(
        name=args.name, cluster=args.cluster, description=args.description or ""
    )
    with client_for(args) as client:
        raw: msgspec.Raw | None = client.post(SNAPSHOTS, msgspec.Raw, body)
        if args.wait:
            path = resource_path(client, "os-snapshots", args.name)
            raw = _wait(args, client, path, OsSnapshotInfo)
    assert raw is not None
    snapshot = _show_snapshot(args, raw)
    return 1 if args.wait and snapshot.status == "failed" else 0


def snapshot_delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        path = resource_path(client, "os-snapshots", args.name)
        client.delete(path)
        if args.wait:
            _wait(args, client, path, OsSnapshotInfo)
            log.info("OS snapshot %s deleted (listed as deleted for an hour)", args.name)
        else:
            log.info("Snapshot is waiting to be destroyed. This may take a few minutes.")
    return 0


# --- static IPs ---------------------------------------------------------------------------------


def _print_ips(items: list[StaticIpInfo]) -> None:
    print_table(
        ["URI", "CLOUD ACCOUNT", "REGION", "ADDRESS", "USED BY", "STATUS"],
        [
            [
                i.uri,
                i.cloud_account,
                i.region,
                i.address or "-",
                ", ".join(i.used_by) or "-",
                i.status,
            ]
            for i in items
        ],
    )


def _show_ip(args: argparse.Namespace, raw: msgspec.Raw) -> StaticIpInfo:
    ip = msgspec.json.decode(raw, type=StaticIpInfo)
    if args.output == "json":
        print_json(raw)
        return ip
    _print_ips([ip])
    if ip.reason:
        print(f"\nreason: {ip.reason}")
    return ip


def static_ip_ls(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(STATIC_IPS, msgspec.Raw, limit=200)
    if args.output == "json":
        print_json(raw)
    else:
        _print_ips(msgspec.json.decode(raw, type=StaticIpList).items)
    return 0


def static_ip_get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(resource_path(client, "static-ips", args.name), msgspec.Raw)
    _show_ip(args, raw)
    return 0


def static_ip_create(args: argparse.Namespace) -> int:
    body = StaticIpCreate(
        name=args.name,
        cloud_account=args.cloud_account,
        region=args.region,
        description=args.description or "",
    )
    with client_for(args) as client:
        raw: msgspec.Raw | None = client.post(STATIC_IPS, msgspec.Raw, body)
        if args.wait:
            path = resource_path(client, "static-ips", args.name)
            raw = _wait(args, client, path, StaticIpInfo)
    assert raw is not None
    ip = _show_ip(args, raw)
    return 1 if args.wait and ip.status == "failed" else 0


def static_ip_delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        path = resource_path(client, "static-ips", args.name)
        client.delete(path)
        if args.wait:
            _wait(args, client, path, StaticIpInfo, gone=True)
            log.info("static IP %s released", args.name)
        else:
            log.info("IP address is waiting to be destroyed. This may take a few minutes.")
    return 0
