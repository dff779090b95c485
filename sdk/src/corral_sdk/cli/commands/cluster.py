"""``corral cluster``: register, list, start and stop clusters; submit and follow their jobs."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from urllib.parse import quote

import msgspec

from corral_sdk.cli.client import ApiClient, client_for
from corral_sdk.cli.output import print_json, print_table
from corral_sdk.errors import Invalid
from corral_sdk.wire import (
    CloudClusterDefinition,
    ClusterCreate,
    ClusterDuplicate,
    ClusterEstimate,
    ClusterInfo,
    ClusterList,
    ClusterLogs,
    ClusterType,
    JobInfo,
    JobList,
    JobSubmit,
    ResourceInfo,
)

__all__ = [
    "cancel",
    "create",
    "delete",
    "destroy",
    "duplicate",
    "estimate",
    "get",
    "job",
    "jobs",
    "logs",
    "ls",
    "output",
    "start",
    "stop",
    "submit",
    "types",
]

log = logging.getLogger("corral")

TERMINAL_JOB_STATES = frozenset(
    {"completed", "failed", "cancelled", "timeout", "out_of_memory", "node_fail", "preempted"}
)


def split_ref(ref: str, what: str = "cluster") -> tuple[str | None, str]:
    """``pw://owner/name``, ``owner/name`` or ``name`` (the caller's own)."""
    raw = ref.removeprefix("pw://").strip("/")
    owner, _, name = raw.rpartition("/")
    if not name or "/" in owner:
        raise Invalid(f"{ref!r} is not a {what} (pw://owner/name, owner/name or name)")
    return owner or None, name


def resource_path(client: ApiClient, collection: str, ref: str, *rest: str) -> str:
    """The API path of the resource ``ref`` names under ``/api/<collection>``, followed by
    ``rest``; a bare name is looked up among the caller's resources."""
    owner, name = split_ref(ref, collection.rstrip("s"))
    if owner is None:
        found = client.get("/api/resources/lookup", ResourceInfo, ref=name)
        owner, name = found.owner, found.name
    return "/".join([f"/api/{collection}", *(quote(p, safe="") for p in (owner, name, *rest))])


def cluster_path(client: ApiClient, ref: str, *rest: str) -> str:
    return resource_path(client, "clusters", ref, *rest)


def _print_clusters(clusters: list[ClusterInfo]) -> None:
    print_table(
        ["URI", "STATUS", "TYPE", "LOGIN", "PARTITIONS", "REASON"],
        [
            [
                c.uri,
                c.status,
                c.type_label,
                (c.controller_address or "-")
                if c.type == "cloud"
                else f"{c.username}@{c.login_host}" + ("" if c.port == 22 else f":{c.port}"),
                ",".join(p.name + ("*" if p.default else "") for p in c.partitions) or "-",
                c.reason[:60],
            ]
            for c in clusters
        ],
    )


def ls(args: argparse.Namespace) -> int:
    """``pw://user`` lists that user's clusters; ``pw://user/name`` shows one."""
    uri = args.uri.removeprefix("pw://").strip("/") if args.uri else ""
    with client_for(args) as client:
        if "/" in uri:
            one = client.get(cluster_path(client, uri), ClusterInfo)
            listed = [one]
        else:
            listed = client.get(
                "/api/clusters",
                ClusterList,
                status=args.status,
                owned=args.owned or None,
                owner=uri or None,
                limit=200,
            ).items
    if args.output == "json":
        print_json(listed)
    else:
        _print_clusters(listed)
    return 0


def get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(cluster_path(client, args.uri), msgspec.Raw)
    if args.output == "json":
        print_json(raw)
        return 0
    cluster = msgspec.json.decode(raw, type=ClusterInfo)
    _print_clusters([cluster])
    if cluster.partitions:
        sys.stdout.write("\n")
        print_table(
            ["PARTITION", "DEFAULT", "NODES", "IDLE", "CPUS", "MAX TIME"],
            [
                [
                    p.name,
                    "yes" if p.default else "",
                    p.nodes_total,
                    p.nodes_idle,
                    p.cpus_total,
                    "infinite" if p.max_time_seconds is None else f"{p.max_time_seconds}s",
                ]
                for p in cluster.partitions
            ],
        )
    return 0


def _jump(value: str | None) -> tuple[str, str, int]:
    """``user@host[:port]`` of a jump node."""
    if not value:
        return "", "", 22
    user, at, rest = value.rpartition("@")
    if not at or not user:
        raise Invalid("--jump must be user@host[:port]", field="jump")
    host, _, port = rest.partition(":")
    try:
        return user, host, int(port) if port else 22
    except ValueError:
        raise Invalid(f"--jump port {port!r} is not a number", field="jump") from None


def _cloud_definition(path: str) -> CloudClusterDefinition:
    text = sys.stdin.read() if path == "-" else _script(path)
    try:
        return msgspec.json.decode(text, type=CloudClusterDefinition)
    except msgspec.DecodeError as exc:
        raise Invalid(f"{path}: not a cloud cluster definition: {exc}", field="cloud") from None


def create(args: argparse.Namespace) -> int:
    if bool(args.host) == bool(args.cloud):
        raise Invalid(
            "give either --host (a cluster you run) or --cloud (a definition to provision)",
            field="host",
        )
    jump_user, jump_host, jump_port = _jump(args.jump)
    body = ClusterCreate(
        name=args.name,
        display_name=args.display_name or "",
        description=args.description or "",
        tags=list(args.tag or []),
        type="cloud" if args.cloud else "existing",
        cloud=_cloud_definition(args.cloud) if args.cloud else None,
        scheduler=args.scheduler,
        login_host=args.host or "",
        port=args.port,
        username=args.user,
        jump_host=jump_host,
        jump_user=jump_user,
        jump_port=jump_port,
        working_directory=args.working_directory or "",
        group=args.group or "",
    )
    with client_for(args) as client:
        raw = client.post("/api/clusters", msgspec.Raw, body)
        cluster = msgspec.json.decode(raw, type=ClusterInfo)
        if args.start:
            raw = client.post(cluster_path(client, cluster.uri, "start"), msgspec.Raw)
            cluster = msgspec.json.decode(raw, type=ClusterInfo)
    log.info("Resource created: %s", cluster.uri)
    if args.output == "json":
        print_json(raw)
    else:
        _print_clusters([cluster])
    return 0


def _wait_for(client: ApiClient, uri: str, states: set[str], timeout: float) -> ClusterInfo:
    deadline = time.monotonic() + timeout
    while True:
        cluster = client.get(cluster_path(client, uri), ClusterInfo)
        if cluster.status in states or time.monotonic() > deadline:
            return cluster
        time.sleep(1.0)


def _power(args: argparse.Namespace, action: str, settled: set[str]) -> int:
    with client_for(args) as client:
        cluster = client.post(cluster_path(client, args.uri, action), ClusterInfo)
        verb = {"start": "Starting", "stop": "Stopping", "destroy": "Destroying"}[action]
        log.info("%s %s", verb, cluster.display_name)
        if args.wait:
            cluster = _wait_for(client, args.uri, settled, args.wait_timeout)
    if args.output == "json":
        print_json(cluster)
    else:
        _print_clusters([cluster])
    if args.wait and cluster.status not in settled - {"failed"}:
        log.error("%s is %s: %s", cluster.uri, cluster.status, cluster.reason or "still waiting")
        return 1
    return 0


def start(args: argparse.Namespace) -> int:
    return _power(args, "start", {"active", "failed"})


def stop(args: argparse.Namespace) -> int:
    return _power(args, "stop", {"off", "stopped"})


def destroy(args: argparse.Namespace) -> int:
    return _power(args, "destroy", {"off"})


def logs(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        path = cluster_path(client, args.uri, "logs")
        if args.session:
            path += f"?session={args.session}"
        found = client.get(path, ClusterLogs)
    if args.output == "json":
        print_json(found)
        return 0
    print_table(
        ["TAB", "STEP", "STATE", "DETAIL"],
        [[s.log, s.name, s.state, s.detail] for s in found.steps],
    )
    if found.lines:
        print(f"\n--- bootstrap output of the controller (session {found.session})")
        print("\n".join(found.lines))
    return 0


def duplicate(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        cluster = client.post(
            cluster_path(client, args.uri, "duplicate"),
            ClusterInfo,
            ClusterDuplicate(name=args.name),
        )
    log.info("Resource created: %s", cluster.uri)
    if args.output == "json":
        print_json(cluster)
    else:
        _print_clusters([cluster])
    return 0


def types(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        listed = client.get("/api/clusters/types", list[ClusterType])
    if args.output == "json":
        print_json(listed)
    else:
        print_table(
            ["PROVIDER", "AVAILABLE", "REASON"],
            [[t.provider, "yes" if t.available else "no", t.reason] for t in listed],
        )
    return 0


def estimate(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        found = client.get(cluster_path(client, args.uri, "estimate"), ClusterEstimate)
    if args.output == "json":
        print_json(found)
        return 0
    print_table(
        ["ITEM", "INSTANCE TYPE", "UNIT COST", "MAX COST"],
        [[i.item, i.instance_type, i.unit_cost or "-", i.max_cost or "-"] for i in found.items],
    )
    print(f"\nat most {found.max_total} {found.currency} per hour")
    return 0


def delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(cluster_path(client, args.uri))
    log.info("deleted %s", args.uri)
    return 0


# --- jobs -----------------------------------------------------------------------------------------


def _print_jobs(jobs: list[JobInfo]) -> None:
    print_table(
        ["ID", "JOB ID", "NAME", "USER", "STATE", "NATIVE", "EXIT", "NODES", "SUBMITTED"],
        [
            [
                j.id,
                j.job_id,
                j.name,
                j.user,
                j.state,
                j.native_state or "-",
                "-" if j.exit_code is None else j.exit_code,
                ",".join(j.nodes) or "-",
                j.submitted_at.strftime("%Y-%m-%d %H:%M:%S"),
            ]
            for j in jobs
        ],
    )


def _script(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise Invalid(
            f"cannot read the job script {path}: {exc.strerror}", field="script"
        ) from None


def submit(args: argparse.Namespace) -> int:
    env = {}
    for item in args.env or []:
        name, eq, value = item.partition("=")
        if not eq:
            raise Invalid(f"--env {item!r} must be NAME=VALUE", field="env")
        env[name] = value
    script = _script(args.script) if args.script else None
    if args.wrap:
        if script is not None:
            raise Invalid("give a script or --wrap, not both", field="wrap")
        script = f"#!/bin/bash\n{args.wrap}\n"
    if script is None:
        raise Invalid("give a job script (a file, or - for stdin) or --wrap COMMAND")
    body = JobSubmit(
        script=script,
        name=args.name or "",
        partition=args.partition,
        nodes=args.nodes,
        ntasks=args.ntasks,
        cpus_per_task=args.cpus_per_task,
        memory_mb=args.mem,
        time_limit_seconds=args.time,
        array=args.array,
        hold=args.hold,
        env=env,
    )
    with client_for(args) as client:
        path = cluster_path(client, args.uri, "jobs")
        job = client.post(path, JobInfo, body)
        log.info("Submitted job %s (Corral id %s)", job.job_id, job.id)
        if args.wait:
            job = _wait_job(client, f"{path}/{job.id}")
    if args.output == "json":
        print_json(job)
    else:
        _print_jobs([job])
    if args.wait:
        return 0 if job.state == "completed" else 1
    return 0


def _wait_job(client: ApiClient, path: str) -> JobInfo:
    while True:
        job = client.get(path, JobInfo)
        if job.state in TERMINAL_JOB_STATES or job.state == "unknown":
            return job
        time.sleep(2.0)


def jobs(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        raw = client.get(
            cluster_path(client, args.uri, "jobs"),
            msgspec.Raw,
            state=args.state,
            refresh=True,
            limit=200,
        )
    listed = msgspec.json.decode(raw, type=JobList).items
    if args.output == "json":
        print_json(listed)
    else:
        _print_jobs(listed)
    return 0


def job(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        found = client.get(cluster_path(client, args.uri, "jobs", str(args.id)), JobInfo)
    if args.output == "json":
        print_json(found)
    else:
        _print_jobs([found])
        if found.reason:
            sys.stdout.write(f"\nreason: {found.reason}\n")
    return 0


def cancel(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        found = client.post(cluster_path(client, args.uri, "jobs", str(args.id), "cancel"), JobInfo)
    log.info("cancel requested for job %s: now %s", found.job_id, found.state)
    if args.output == "json":
        print_json(found)
    else:
        _print_jobs([found])
    return 0


def output(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        base = cluster_path(client, args.uri, "jobs", str(args.id))
        offset = 0
        while True:
            text = client.get(f"{base}/output", str, offset=offset)
            sys.stdout.write(text)
            sys.stdout.flush()
            offset += len(text.encode())
            if not args.follow:
                return 0
            state = client.get(base, JobInfo).state
            if state in TERMINAL_JOB_STATES or state == "unknown":
                sys.stdout.write(client.get(f"{base}/output", str, offset=offset))
                return 0
            time.sleep(2.0)
