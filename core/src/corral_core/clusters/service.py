"""Clusters users register, start and stop; the SSH runners and schedulers that reach them.

Every user reaches a cluster as themselves: ``__USER__`` in the cluster's username becomes their
Corral username and their platform key signs in, over the pooled connection of that user and
cluster. Polling for the state of jobs and of the cluster uses the owner's connection: one call
per cluster whoever submitted the jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlmodel import col, select

from corral_core.cloud_resources.attach import static_ip_id
from corral_core.clusters.cloud import CloudClusters
from corral_core.clusters.spec import (
    CLUSTER_KIND,
    DESCRIPTION_MAX,
    CloudClusterSpec,
    ClusterSpec,
    ExistingClusterSpec,
)
from corral_core.db import Database, utcnow
from corral_core.events.bus import EventLog
from corral_core.identity.authn import Authenticator
from corral_core.identity.models import Group, User
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.networks.access import AccountAccess
from corral_core.networks.placement import cluster_network
from corral_core.plugins import Kernel
from corral_core.resources.access import ResourceAccess
from corral_core.resources.models import Resource
from corral_core.resources.service import ResourceService
from corral_core.settings import ClusterSettings
from corral_core.ssh.pool import SSHEndpoint, SSHIdentity, SSHPool
from corral_core.ssh.runner import SSHRunner
from corral_sdk.config import describe_validation_error
from corral_sdk.errors import Conflict, Invalid, NotFound, PermissionDenied
from corral_sdk.features import CloudFeature, SchedulerFeature
from corral_sdk.providers.scheduler import Scheduler
from corral_sdk.wire import ClusterCreate, ClusterType, ClusterUpdate

__all__ = ["ClusterService"]

log = logging.getLogger("corral.clusters")

Enqueue = Callable[[int], Awaitable[None]]

_SPEC_FIELDS = (
    "scheduler",
    "login_host",
    "port",
    "username",
    "jump_host",
    "jump_user",
    "jump_port",
    "working_directory",
    "group",
    "scheduler_config",
)


class ClusterService:
    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        resources: ResourceService,
        access: ResourceAccess,
        authn: Authenticator,
        events: EventLog,
        pool: SSHPool,
        settings: ClusterSettings,
        enqueue: Enqueue,
        cloud: CloudClusters,
    ) -> None:
        self.db = db
        self.kernel = kernel
        self.resources = resources
        self.access = access
        self.authn = authn
        self.events = events
        self.pool = pool
        self.settings = settings
        self.enqueue = enqueue
        self.cloud = cloud
        self._identities: dict[int, SSHIdentity] = {}
        self._user_ids: dict[str, int] = {}

    # --- definitions ----------------------------------------------------------------------------

    @staticmethod
    def spec_of(resource: Resource | Any) -> ClusterSpec:
        return ClusterService.parse_spec(resource.spec)

    @staticmethod
    def parse_spec(raw: dict[str, Any]) -> ClusterSpec:
        spec: ClusterSpec = msgspec.convert(raw, ClusterSpec)
        return spec

    @staticmethod
    def is_cloud(resource: Resource | Any) -> bool:
        return bool(resource.spec.get("type") == "cloud")

    def _check_scheduler(self, name: str, config: dict[str, Any]) -> None:
        try:
            record = self.kernel.scheduler(name)
        except NotFound:
            known = ", ".join(sorted(self.kernel.schedulers())) or "none installed"
            raise Invalid(
                f"scheduler {name!r} is not installed (installed: {known})", field="scheduler"
            ) from None
        if record.config is not None:
            try:
                msgspec.convert(config, record.config)
            except msgspec.ValidationError as exc:
                field, message = describe_validation_error(exc, prefix="scheduler_config")
                raise Invalid(message, field=field) from None
        elif config:
            raise Invalid(f"scheduler {name!r} takes no settings", field="scheduler_config")

    async def _check_group(self, principal: Principal, group: str) -> None:
        if not group:
            return
        async with self.db.session() as session:
            found = (
                await session.exec(
                    select(Group.id)
                    .where(col(Group.name) == group)
                    .where(col(Group.org_id) == principal.org_id)
                )
            ).first()
        if found is None:
            raise Invalid(f"no group named {group!r} in {principal.org}", field="group")

    @staticmethod
    def _check_description(description: str) -> None:
        if len(description) > DESCRIPTION_MAX:
            raise Invalid(
                f"description must be {DESCRIPTION_MAX} characters or fewer "
                f"(it has {len(description)})",
                field="description",
            )

    async def _check_cloud(self, org: str, owner: str, spec: CloudClusterSpec, name: str) -> None:
        """The account exists in the organization, the scheduler, regions, zones, instance
        types and images (or OS snapshots) are ones its provider and plugins offer, the network
        serves the controller's and partitions' zones (the provider's rules), the
        organization's instance type policy allows the types, the owner may use the capacity
        reservations, and the controller's static IP is no other running cluster's."""
        provider, account, provider_name = await self.cloud.account_of(org, spec)
        owner_principal = await self._owner(owner)
        await self.require_cluster_type(owner_principal, provider_name)
        self.cloud.scheduler_for(spec, None)
        placement = await self.cloud.placement(provider, account, spec, owner)
        await static_ip_id(
            self.db,
            org=org,
            owner=owner,
            cluster=ResourceRef(owner, name).uri,
            cloud=spec.cloud,
            region=placement["region"],
        )
        network = await cluster_network(
            self.db, self.kernel, org, spec.cloud, provider_name, placement["region"]
        )
        if spec.cloud.network:  # using a network needs the permission that manages it
            row = await self.cloud.accounts.get(org, spec.cloud.cloud_account)
            await AccountAccess(self.db).require(
                owner_principal,
                row,
                f"running a cluster on network {spec.cloud.network!r}",
            )
        if network is not None:  # the provider's rules for clusters on its networks
            await provider.check_cluster_network(
                account,
                network.region(),
                network.mode,
                placement["zone"],
                {
                    p.name: tuple(placed["zones"])
                    for p, placed in zip(spec.partitions(), placement["partitions"], strict=True)
                },
            )
        settings = self.cloud.accounts.settings
        chosen = [
            (
                "cloud.controller.instance_type",
                placement["controller_type"].name,
                bool(spec.cloud.controller.instance_type),
            )
        ] + [
            (f"cloud.partitions.{i}.instance_type", placed["type"].name, bool(p.instance_type))
            for i, (p, placed) in enumerate(
                zip(spec.partitions(), placement["partitions"], strict=True)
            )
        ]
        settings.check_types(
            await settings.allowed_types(org, provider_name), provider_name, chosen
        )
        await settings.reservation_groups(org, owner, spec.partitions())

    async def cluster_types(self, principal: Principal) -> list[ClusterType]:
        """Every cloud provider's cluster type, and whether ``principal`` may use it: a provider
        that makes networks needs the ``network`` permission on one of its accounts (spec §2.8);
        one without networks (the local cloud) is open to every member."""
        available = await AccountAccess(self.db).providers_available(principal)
        types = []
        for name, record in sorted(self.kernel.clouds().items()):
            needs_grant = CloudFeature.NETWORKS in record.features
            usable = not needs_grant or name in available
            types.append(
                ClusterType(
                    provider=name,
                    available=usable,
                    reason=""
                    if usable
                    else f"needs the network permission on a {name} cloud account",
                )
            )
        return types

    async def require_cluster_type(self, principal: Principal, provider: str) -> None:
        if CloudFeature.NETWORKS not in self.kernel.cloud(provider).features:
            return
        if provider not in await AccountAccess(self.db).providers_available(principal):
            raise PermissionDenied(
                f"{provider} clusters need the network permission on a {provider} cloud "
                f"account, shared with the organization or one of {principal.username}'s groups",
                reason="network-permission",
            )

    async def _owner(self, username: str) -> Principal:
        async with self.db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == username))).first()
        if user is None:
            raise NotFound(f"user {username!r} no longer exists")
        return await self.authn.principal(user)

    def _new_spec(self, data: ClusterCreate) -> ClusterSpec:
        if data.type == "cloud":
            if data.cloud is None:
                raise Invalid("a cloud cluster needs its definition", field="cloud")
            for name in ("login_host", "jump_host", "jump_user", "working_directory"):
                if getattr(data, name):
                    raise Invalid(f"{name} is a setting of existing clusters", field=name)
            return CloudClusterSpec(
                scheduler=data.scheduler,
                group=data.group,
                scheduler_config=data.scheduler_config,
                cloud=data.cloud,
            )
        if data.cloud is not None:
            raise Invalid("only a cloud cluster has a cloud definition", field="cloud")
        return ExistingClusterSpec(**{name: getattr(data, name) for name in _SPEC_FIELDS})

    async def create(self, principal: Principal, data: ClusterCreate) -> Resource:
        self._check_description(data.description)
        spec = self._new_spec(data)
        self._check_scheduler(spec.scheduler, spec.scheduler_config)
        await self._check_group(principal, spec.group)
        if isinstance(spec, CloudClusterSpec):
            await self._check_cloud(principal.org, principal.username, spec, data.name)
        created = await self.resources.create(
            CLUSTER_KIND,
            org=principal.org,
            owner=principal.username,
            name=data.name,
            spec=msgspec.to_builtins(spec),
            desired_state="off",
            display_name=data.display_name,
            description=data.description,
            tags=data.tags,
            actor=principal.username,
        )
        return await self.access.get(principal, ResourceRef(created.owner, created.name))

    async def get(self, principal: Principal, ref: ResourceRef) -> Resource:
        return await self.access.get(principal, ref, CLUSTER_KIND)

    async def require(self, principal: Principal, ref: ResourceRef, level: str) -> Resource:
        return await self.access.require(principal, ref, level, CLUSTER_KIND)

    async def list_clusters(
        self,
        principal: Principal,
        *,
        owner: str | None = None,
        states: tuple[str, ...] = (),
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Resource], int]:
        return await self.access.list_visible(
            principal, kind=CLUSTER_KIND, owner=owner, states=states, limit=limit, offset=offset
        )

    async def update(self, principal: Principal, ref: ResourceRef, data: ClusterUpdate) -> Resource:
        resource = await self.require(principal, ref, "writer")
        assert resource.id is not None
        if data.description is not None:
            self._check_description(data.description)
        current = msgspec.to_builtins(self.spec_of(resource))
        fields: tuple[str, ...] = _SPEC_FIELDS
        if current.get("type") == "cloud":
            fields = ("scheduler", "group", "scheduler_config", "cloud")
            wrong = [n for n in _SPEC_FIELDS if n not in fields and getattr(data, n) is not None]
            if wrong:
                raise Invalid(f"{wrong[0]} is a setting of existing clusters", field=wrong[0])
        elif data.cloud is not None:
            raise Invalid("only a cloud cluster has a cloud definition", field="cloud")
        changes = {name: getattr(data, name) for name in fields if getattr(data, name) is not None}
        merged = msgspec.to_builtins({**current, **changes})
        try:
            spec = self.parse_spec(merged)
        except msgspec.ValidationError as exc:
            field, message = describe_validation_error(exc)
            raise Invalid(message, field=field) from None
        if "scheduler" in changes or "scheduler_config" in changes:
            self._check_scheduler(spec.scheduler, spec.scheduler_config)
        if "group" in changes:
            await self._check_group(principal, spec.group)
        if isinstance(spec, CloudClusterSpec):
            self._check_live_edit(resource, current, msgspec.to_builtins(spec))
            if "cloud" in changes:
                await self._check_cloud(resource.org, resource.owner, spec, resource.name)
        await self.resources.describe(
            resource.id,
            display_name=data.display_name,
            description=data.description,
            tags=data.tags,
        )
        new_spec = msgspec.to_builtins(spec)
        if new_spec != resource.spec:
            await self.resources.set_desired(resource.id, spec=new_spec, actor=principal.username)
        return await self.get(principal, ref)

    @staticmethod
    def _check_live_edit(resource: Resource, current: dict[str, Any], new: dict[str, Any]) -> None:
        """While a cloud cluster has hosts (a session that is not over), its partitions and
        advanced settings can change (the reconciler applies them to the running scheduler);
        what made the controller cannot."""
        if resource.observed_state in ("off", "failed"):
            return
        fixed = [
            ("scheduler", current.get("scheduler"), new.get("scheduler")),
            ("scheduler_config", current.get("scheduler_config"), new.get("scheduler_config")),
            (
                "cloud.cloud_account",
                current["cloud"]["cloud_account"],
                new["cloud"]["cloud_account"],
            ),
            ("cloud.network", current["cloud"].get("network", ""), new["cloud"].get("network", "")),
        ]
        fixed += [
            (f"cloud.controller.{name}", value, new["cloud"]["controller"].get(name))
            for name, value in current["cloud"]["controller"].items()
        ]
        for field, before, after in fixed:
            if before != after:
                raise Conflict(
                    f"{field} cannot change while the cluster is {resource.observed_state}: "
                    "destroy it first (partitions and advanced settings can change while it "
                    "runs)",
                    reason="cluster-not-off",
                )

    async def start(self, principal: Principal, ref: ResourceRef) -> Resource:
        resource = await self.require(principal, ref, "writer")
        assert resource.id is not None
        if resource.desired_state == "active" and resource.observed_state in (
            "active",
            "connecting",
            "provisioning",
        ):
            raise Conflict(f"{ref.uri} is already {resource.observed_state}", reason="already-on")
        if self.is_cloud(resource):
            if resource.observed_state in ("stopping", "destroying"):
                raise Conflict(
                    f"{ref.uri} is {resource.observed_state}: start it once that is done",
                    reason="cluster-busy",
                )
            # the organization's policy and reservations may have changed since it was defined
            spec = self.spec_of(resource)
            assert isinstance(spec, CloudClusterSpec)
            await self._check_cloud(resource.org, resource.owner, spec, resource.name)
            # the reconcile opens the session (under its lease: a destroy still running cannot
            # end it); a failed start's session is replaced there
            if resource.observed_state == "stopped":
                await self.cloud.resume_controller(resource)
            await self.resources.mark_observed(resource.id, "provisioning", unless=("active",))
        else:
            await self.resources.mark_observed(resource.id, "connecting", unless=("active",))
        await self.resources.set_desired(
            resource.id, desired_state="active", actor=principal.username
        )
        return await self.get(principal, ref)

    async def stop(self, principal: Principal, ref: ResourceRef) -> Resource:
        """An existing cluster disconnects; a cloud cluster's controller is stopped, keeping its
        disk, which the spec refuses while compute nodes run."""
        resource = await self.require(principal, ref, "writer")
        assert resource.id is not None
        if self.is_cloud(resource):
            if resource.observed_state in ("off", "stopped"):
                return resource
            if resource.observed_state != "active":
                raise Conflict(
                    f"{ref.uri} is {resource.observed_state}: only an active cluster can be "
                    "stopped (destroy it instead)",
                    reason="cluster-not-active",
                )
            running = await self.cloud.live_nodes(resource.id)
            if running:
                raise Conflict(
                    f"you cannot stop a cluster if there are any active compute nodes: "
                    f"{ref.uri} has {len(running)} ({', '.join(n.name for n in running[:5])})",
                    reason="compute-nodes-active",
                )
            await self.resources.mark_observed(resource.id, "stopping", unless=("stopped",))
            await self.resources.set_desired(
                resource.id, desired_state="stopped", actor=principal.username
            )
            return await self.get(principal, ref)
        if resource.desired_state == "off" and resource.observed_state == "off":
            return resource
        await self.resources.mark_observed(resource.id, "stopping", unless=("off",))
        await self.resources.set_desired(resource.id, desired_state="off", actor=principal.username)
        return await self.get(principal, ref)

    async def destroy(self, principal: Principal, ref: ResourceRef) -> Resource:
        """Delete every host of a cloud cluster (jobs are lost, persistent storage stays)."""
        resource = await self.require(principal, ref, "writer")
        assert resource.id is not None
        if not self.is_cloud(resource):
            raise Conflict(
                f"{ref.uri} is an existing cluster: Corral built nothing to destroy (stop it)",
                reason="not-a-cloud-cluster",
            )
        if resource.desired_state == "off" and resource.observed_state == "off":
            return resource
        await self.resources.mark_observed(resource.id, "destroying", unless=("off",))
        await self.resources.set_desired(resource.id, desired_state="off", actor=principal.username)
        return await self.get(principal, ref)

    async def duplicate(
        self, principal: Principal, ref: ResourceRef, name: str, display_name: str = ""
    ) -> Resource:
        """A copy of the definition under a new name, off."""
        source = await self.require(principal, ref, "writer")
        created = await self.resources.create(
            CLUSTER_KIND,
            org=principal.org,
            owner=principal.username,
            name=name,
            spec=dict(source.spec),
            desired_state="off",
            display_name=display_name,
            description=source.description,
            tags=list(source.tags),
            actor=principal.username,
        )
        return await self.access.get(principal, ResourceRef(created.owner, created.name))

    async def delete(self, principal: Principal, ref: ResourceRef) -> None:
        resource = await self.require(principal, ref, "admin")
        assert resource.id is not None
        if resource.desired_state != "off" or resource.observed_state != "off":
            raise Conflict(
                f"{ref.uri} is {resource.observed_state}: stop it before deleting its "
                "configuration",
                reason="cluster-not-off",
            )
        await self.resources.delete(resource.id, actor=principal.username)

    # --- reaching the cluster -------------------------------------------------------------------

    async def user_id(self, username: str) -> int:
        if username not in self._user_ids:
            async with self.db.session() as session:
                found = (
                    await session.exec(select(User.id).where(col(User.username) == username))
                ).first()
            if found is None:
                raise NotFound(f"user {username!r} does not exist")
            self._user_ids[username] = found
        return self._user_ids[username]

    async def identity(self, user_id: int, username: str) -> SSHIdentity:
        if user_id not in self._identities:
            pair = await self.authn.key_pair(user_id)
            self._identities[user_id] = SSHIdentity(
                name=f"user:{user_id}", label=username, private_key=self.authn.private_key(pair)
            )
        return self._identities[user_id]

    async def runner(self, resource: Resource | Any, username: str) -> SSHRunner:
        """A runner signing in to ``resource`` as Corral user ``username`` (on a cloud cluster,
        at its controller, with an account made for them on first use)."""
        spec = self.spec_of(resource)
        identity = await self.identity(await self.user_id(username), username)
        if isinstance(spec, CloudClusterSpec):
            row = await self.cloud.current_session(resource.id or 0)
            if row is None or not row.controller_address:
                raise Conflict(
                    f"{resource.owner}/{resource.name} has no controller: start it first",
                    reason="cluster-not-active",
                )
            await self.cloud.ensure_account(row, username)
            endpoint = SSHEndpoint(host=row.controller_address, username=username)
            return SSHRunner(self.pool, identity, endpoint)
        return SSHRunner(self.pool, identity, spec.endpoint(username))

    def scheduler(self, resource: Resource | Any, runner: SSHRunner) -> Scheduler:
        spec = self.spec_of(resource)
        record = self.kernel.scheduler(spec.scheduler)
        config = (
            msgspec.convert(spec.scheduler_config, record.config)
            if record.config is not None
            else None
        )
        scheduler: Scheduler = record.create(runner, config)
        return scheduler

    def supports(self, resource: Resource | Any, feature: SchedulerFeature) -> bool:
        return feature in self.kernel.scheduler(self.spec_of(resource).scheduler).features


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def now_iso() -> str:
    return utcnow().isoformat()
