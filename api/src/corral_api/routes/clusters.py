"""Clusters: register, start, stop, delete; their jobs and the jobs' output."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from corral_api.params import Limit, Offset, RowId
from corral_api.security import PUBLIC, Caller, RuntimeDep
from corral_core.clusters.models import ClusterJob
from corral_core.clusters.service import parse_time
from corral_core.clusters.spec import CLUSTER_STATES, CloudClusterSpec
from corral_core.identity.names import ResourceRef
from corral_core.resources.models import Resource
from corral_sdk.errors import Invalid, NotAuthenticated
from corral_sdk.providers.scheduler import JobState
from corral_sdk.wire import (
    CloudClusterDefinition,
    ClusterCreate,
    ClusterDuplicate,
    ClusterEstimate,
    ClusterInfo,
    ClusterList,
    ClusterLogs,
    ClusterType,
    ClusterUpdate,
    JobInfo,
    JobList,
    JobSubmit,
    NodeCallback,
    NodeInfo,
    PartitionInfo,
)

__all__ = ["ClusterController", "cluster_info", "job_info"]


def _session_token(request: Request[Any, Any, Any]) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated(
            "a cluster session token is needed (Authorization: Bearer ...)",
            reason="cluster-token-required",
        )
    return token.strip()


_STATUS_ALIASES = {"on": "active"}
_JOB_STATES = tuple(state.value for state in JobState)


def cluster_info(row: Resource) -> ClusterInfo:
    spec: dict[str, Any] = row.spec
    status: dict[str, Any] = row.status
    scheduler = str(spec.get("scheduler", ""))
    kind = str(spec.get("type", "existing"))
    cloud = spec.get("cloud")
    return ClusterInfo(
        uri=ResourceRef(row.owner, row.name).uri,
        owner=row.owner,
        name=row.name,
        display_name=row.display_name or row.name,
        description=row.description,
        tags=list(row.tags),
        type=kind,
        type_label=f"{scheduler.upper() if scheduler == 'pbs' else scheduler.title()} {kind} "
        "cluster",
        status=row.observed_state,  # type: ignore[arg-type]
        desired_state=row.desired_state,
        reason=row.reason,
        group=str(spec.get("group", "")),
        scheduler=scheduler,
        login_host=str(spec.get("login_host", "")),
        port=int(spec.get("port", 22)),
        username=str(spec.get("username", "")),
        jump_host=str(spec.get("jump_host", "")),
        jump_user=str(spec.get("jump_user", "")),
        jump_port=int(spec.get("jump_port", 22)),
        working_directory=str(spec.get("working_directory", "")),
        partitions=msgspec.convert(status.get("partitions", []), list[PartitionInfo]),
        nodes=msgspec.convert(status.get("nodes", []), list[NodeInfo], strict=False),
        checked_at=parse_time(status.get("checked_at")),
        created_at=row.created_at,
        updated_at=row.updated_at,
        cloud=None if cloud is None else msgspec.convert(cloud, CloudClusterDefinition),
        session=int(status.get("session") or 0),
        controller_address=str(status.get("controller_address") or ""),
    )


def job_info(row: ClusterJob, cluster_uri: str) -> JobInfo:
    assert row.id is not None
    return JobInfo(
        id=row.id,
        cluster=cluster_uri,
        job_id=row.job_id,
        name=row.name,
        user=row.username,
        state=row.state,  # type: ignore[arg-type]
        native_state=row.native_state,
        reason=row.reason,
        exit_code=row.exit_code,
        partition=row.partition,
        nodes=list(row.nodes),
        output_path=row.output_path,
        submitted_at=row.submitted_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        updated_at=row.updated_at,
    )


def _states(value: str | None, allowed: tuple[str, ...] | list[str], field: str) -> tuple[str, ...]:
    if not value:
        return ()
    states = tuple(_STATUS_ALIASES.get(s.strip(), s.strip()) for s in value.split(","))
    unknown = [s for s in states if s not in allowed]
    if unknown:
        raise Invalid(
            f"{field} {', '.join(unknown)} is not one of {', '.join(allowed)}", field=field
        )
    return states


Owner = FromPath[str]
Name = FromPath[str]


class ClusterController(Controller):
    path = "/api/clusters"
    tags = ["clusters"]

    @get("/", summary="Clusters you own or that are shared with you")
    async def list_clusters(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        status: Annotated[
            str | None,
            QueryParameter(
                name="status",
                max_length=200,
                description="comma-separated states (active, off, failed...); on = active",
            ),
        ] = None,
        owner: Annotated[str | None, QueryParameter(name="owner", max_length=255)] = None,
        owned: Annotated[bool, QueryParameter(name="owned")] = False,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> ClusterList:
        rows, total = await runtime.clusters.list_clusters(
            principal,
            owner=principal.username if owned else owner,
            states=_states(status, CLUSTER_STATES, "status"),
            limit=limit,
            offset=offset,
        )
        return ClusterList(
            items=[cluster_info(r) for r in rows], total=total, limit=limit, offset=offset
        )

    @get("/types", summary="The cloud cluster types, and which of them you may start")
    async def cluster_types(self, principal: Caller, runtime: RuntimeDep) -> list[ClusterType]:
        return await runtime.clusters.cluster_types(principal)

    @post("/", summary="Register a cluster (off until started)")
    async def create_cluster(
        self, data: JSONBody[ClusterCreate], principal: Caller, runtime: RuntimeDep
    ) -> ClusterInfo:
        return cluster_info(await runtime.clusters.create(principal, data))

    @get("/{owner:str}/{name:str}", summary="One cluster, with its partitions and nodes")
    async def get_cluster(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> ClusterInfo:
        return cluster_info(await runtime.clusters.get(principal, ResourceRef(owner, name)))

    @patch("/{owner:str}/{name:str}", summary="Change a cluster's definition (writer or above)")
    async def update_cluster(
        self,
        owner: Owner,
        name: Name,
        data: JSONBody[ClusterUpdate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> ClusterInfo:
        return cluster_info(
            await runtime.clusters.update(principal, ResourceRef(owner, name), data)
        )

    @delete("/{owner:str}/{name:str}", summary="Delete a cluster's configuration (it must be off)")
    async def delete_cluster(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> None:
        await runtime.clusters.delete(principal, ResourceRef(owner, name))

    @post(
        "/{owner:str}/{name:str}/start",
        summary="Start (connect to) a cluster; it turns active or failed in the background",
        status_code=202,
    )
    async def start_cluster(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> ClusterInfo:
        return cluster_info(await runtime.clusters.start(principal, ResourceRef(owner, name)))

    @post(
        "/{owner:str}/{name:str}/stop", summary="Stop (disconnect from) a cluster", status_code=202
    )
    async def stop_cluster(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> ClusterInfo:
        return cluster_info(await runtime.clusters.stop(principal, ResourceRef(owner, name)))

    @post(
        "/{owner:str}/{name:str}/destroy",
        summary="Destroy a cloud cluster's hosts (jobs are lost; it turns off)",
        status_code=202,
    )
    async def destroy_cluster(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> ClusterInfo:
        return cluster_info(await runtime.clusters.destroy(principal, ResourceRef(owner, name)))

    @post(
        "/{owner:str}/{name:str}/duplicate",
        summary="Copy a cluster's definition under a new name (off)",
        status_code=201,
    )
    async def duplicate_cluster(
        self,
        owner: Owner,
        name: Name,
        data: JSONBody[ClusterDuplicate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> ClusterInfo:
        return cluster_info(
            await runtime.clusters.duplicate(
                principal, ResourceRef(owner, name), data.name, data.display_name
            )
        )

    @get(
        "/{owner:str}/{name:str}/logs",
        summary="A cloud cluster's provisioning log: steps of the Provision, Deletion and "
        "Scheduler tabs, and the controller's bootstrap output",
    )
    async def cluster_logs(
        self,
        owner: Owner,
        name: Name,
        principal: Caller,
        runtime: RuntimeDep,
        session: Annotated[int | None, QueryParameter(name="session", ge=1)] = None,
    ) -> ClusterLogs:
        cluster = await runtime.clusters.require(principal, ResourceRef(owner, name), "login")
        return await runtime.clusters.cloud.logs(cluster, session)

    @get(
        "/{owner:str}/{name:str}/estimate",
        summary="A cloud cluster's hourly estimate: controller and partitions (unit x max nodes)",
    )
    async def cluster_estimate(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> ClusterEstimate:
        cluster = await runtime.clusters.require(principal, ResourceRef(owner, name), "login")
        spec = runtime.clusters.spec_of(cluster)
        if not isinstance(spec, CloudClusterSpec):
            raise Invalid(f"{owner}/{name} is an existing cluster: Corral prices only clouds'")
        return await runtime.clusters.cloud.estimate(cluster.org, spec, cluster.owner)

    # --- the cluster's own calls (its session token, not a user's credential) --------------------

    @post(
        "/callbacks/nodes",
        opt=PUBLIC,
        summary="A cloud cluster's scheduler asks for nodes to be powered up or down "
        "(authenticated with the cluster session's token)",
        status_code=202,
    )
    async def node_callback(
        self, request: Request[Any, Any, Any], data: JSONBody[NodeCallback], runtime: RuntimeDep
    ) -> None:
        token = _session_token(request)
        await runtime.clusters.cloud.request_nodes(token, data.action, data.nodes)

    @post(
        "/callbacks/bootstrap",
        opt=PUBLIC,
        summary="A cloud cluster's host reports how its bootstrap ended, with its output "
        "(authenticated with the cluster session's token)",
        status_code=202,
    )
    async def bootstrap_callback(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        host: Annotated[str, QueryParameter(name="host", max_length=255)],
        exit_status: Annotated[int, QueryParameter(name="exit_status", ge=0, le=255)],
    ) -> None:
        token = _session_token(request)
        body = await request.body()
        if len(body) > 256 * 1024:
            raise Invalid("the bootstrap output is limited to 256 KiB", field="body")
        row = await runtime.clusters.cloud.report_bootstrap(
            token, host, exit_status, body.decode(errors="replace")
        )
        await runtime.clusters.enqueue(row.resource_id)

    # --- jobs -----------------------------------------------------------------------------------

    @get("/{owner:str}/{name:str}/jobs", summary="Jobs submitted through Corral to a cluster")
    async def list_jobs(
        self,
        owner: Owner,
        name: Name,
        principal: Caller,
        runtime: RuntimeDep,
        job_states: Annotated[
            str | None,
            QueryParameter(name="state", max_length=200, description="comma-separated states"),
        ] = None,
        refresh: Annotated[
            bool,
            QueryParameter(name="refresh", description="poll the scheduler before answering"),
        ] = False,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> JobList:
        ref = ResourceRef(owner, name)
        rows, total = await runtime.jobs.list_jobs(
            principal,
            ref,
            states=_states(job_states, _JOB_STATES, "state"),
            limit=limit,
            offset=offset,
            refresh=refresh,
        )
        return JobList(
            items=[job_info(r, ref.uri) for r in rows], total=total, limit=limit, offset=offset
        )

    @post("/{owner:str}/{name:str}/jobs", summary="Submit a batch job (login level or above)")
    async def submit_job(
        self,
        owner: Owner,
        name: Name,
        data: JSONBody[JobSubmit],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> JobInfo:
        ref = ResourceRef(owner, name)
        return job_info(await runtime.jobs.submit(principal, ref, data), ref.uri)

    @get(
        "/{owner:str}/{name:str}/jobs/{job:int}",
        summary="One job, its state fresh from the cluster",
    )
    async def get_job(
        self, owner: Owner, name: Name, job: RowId, principal: Caller, runtime: RuntimeDep
    ) -> JobInfo:
        ref = ResourceRef(owner, name)
        return job_info(await runtime.jobs.get(principal, ref, job), ref.uri)

    @post("/{owner:str}/{name:str}/jobs/{job:int}/cancel", summary="Cancel a job", status_code=200)
    async def cancel_job(
        self, owner: Owner, name: Name, job: RowId, principal: Caller, runtime: RuntimeDep
    ) -> JobInfo:
        ref = ResourceRef(owner, name)
        return job_info(await runtime.jobs.cancel(principal, ref, job), ref.uri)

    @get(
        "/{owner:str}/{name:str}/jobs/{job:int}/output",
        summary="The job's output file (text), from a byte offset",
        media_type=MediaType.TEXT,
    )
    async def job_output(
        self,
        owner: Owner,
        name: Name,
        job: RowId,
        principal: Caller,
        runtime: RuntimeDep,
        offset: Annotated[int, QueryParameter(name="offset", ge=0, le=2**40)] = 0,
    ) -> Response[bytes]:
        data = await runtime.jobs.output(principal, ResourceRef(owner, name), job, offset=offset)
        return Response(data, media_type="text/plain; charset=utf-8")
