"""Static IPs: public addresses a user allocates in a region of a cloud account
(:attr:`~corral_sdk.features.CloudFeature.STATIC_IPS`) and attaches to a cloud cluster's
controller by naming it as ``controller.static_ip``; the address stays the same across the
cluster's starts.

Creating one stores the resource (``provisioning``); its reconciler allocates the address
(idempotent on the name it gives the cloud, which carries the resource id) and shows it
(``provisioned``). Deleting one releases it (``deleting``, then gone); refused while a cluster
that is not off uses it, and retried while the cloud still has it attached.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from corral_core.cloud_resources.attach import clusters_using
from corral_core.cloud_resources.common import check_description, cloud_account, steps_of
from corral_core.cloud_resources.spec import STATIC_IP_KIND, StaticIpDefinition
from corral_core.clusters.accounts import CloudAccounts
from corral_core.db import Database
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.networks.reconciler import DeletionSteps, NetworkSteps
from corral_core.plugins import Kernel
from corral_core.resources.access import OWNER, ResourceAccess
from corral_core.resources.models import Resource
from corral_core.resources.service import ResourceService, name_rule
from corral_sdk.errors import Conflict, CorralError, Invalid, NotFound
from corral_sdk.features import CloudFeature
from corral_sdk.providers._common import StepState
from corral_sdk.reconcile import ReconcileContext, ReconcileResult, ResourceSnapshot
from corral_sdk.wire import StaticIpCreate, StaticIpInfo

__all__ = ["StaticIpReconciler", "StaticIpService", "cloud_ip_name"]

log = logging.getLogger("corral.static_ips")

TAG_STATIC_IP = "corral-static-ip"


def cloud_ip_name(resource_id: int, name: str) -> str:
    """The address's name at the cloud (unique: two users' ``web`` are two addresses)."""
    return f"corral-{resource_id}-{name}"


class StaticIpService:
    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        resources: ResourceService,
        access: ResourceAccess,
        accounts: CloudAccounts,
    ) -> None:
        self.db = db
        self.kernel = kernel
        self.resources = resources
        self.access = access
        self.accounts = accounts

    async def create(self, principal: Principal, data: StaticIpCreate) -> Resource:
        """Store a static IP; the reconciler allocates its address."""
        name_rule(self.kernel.resource_kind(STATIC_IP_KIND)).check(data.name, "name")
        check_description(data.description)
        account = await cloud_account(
            self.accounts,
            self.kernel,
            principal.org,
            data.cloud_account,
            CloudFeature.STATIC_IPS,
            "static IPs",
        )
        if not data.region:
            raise Invalid("a static IP needs its region", field="region")
        provider = self.accounts.provider(account.provider)
        regions = [r.name for r in await provider.list_regions(self.accounts.account(account))]
        if data.region not in regions:
            raise Invalid(
                f"region {data.region!r} is not offered (offered: {', '.join(regions)})",
                field="region",
            )
        await self.resources.create(
            STATIC_IP_KIND,
            org=principal.org,
            owner=principal.username,
            name=data.name,
            spec=msgspec.to_builtins(
                StaticIpDefinition(cloud_account=data.cloud_account, region=data.region)
            ),
            desired_state="provisioned",
            description=data.description,
            tags=data.tags,
            actor=principal.username,
            conflict_if_taken=f"you already have a resource named {data.name!r}",
        )
        return await self.get(principal, ResourceRef(principal.username, data.name))

    async def get(self, principal: Principal, ref: ResourceRef) -> Resource:
        return await self.access.get(principal, ref, STATIC_IP_KIND)

    async def list_static_ips(
        self, principal: Principal, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Resource], int]:
        return await self.access.list_visible(
            principal, kind=STATIC_IP_KIND, limit=limit, offset=offset
        )

    async def delete(self, principal: Principal, ref: ResourceRef) -> Resource:
        """Release a static IP: ``deleting``, then gone. Refused while a cluster that is not off
        uses it."""
        row = await self.get(principal, ref)
        await self.access.require_level(principal, row, OWNER)
        if row.desired_state == "deleting":
            return row
        using = await clusters_using(self.db, row.org, STATIC_IP_KIND, ref)
        if using:
            raise Conflict(
                f"static IP {ref.uri} is attached to clusters that are not off: "
                f"{', '.join(using)} (destroy them or change their IP address first)",
                reason="static-ip-in-use",
            )
        assert row.id is not None
        await self.resources.set_desired(row.id, desired_state="deleting", actor=principal.username)
        await self.resources.mark_observed(row.id, "deleting", unless=())
        try:
            return await self.get(principal, ref)
        except NotFound:  # already released by a worker
            row.desired_state = row.observed_state = "deleting"
            return row

    async def info(self, row: Resource) -> StaticIpInfo:
        assert row.id is not None
        status: dict[str, Any] = row.status
        ref = ResourceRef(row.owner, row.name)
        return StaticIpInfo(
            uri=ref.uri,
            owner=row.owner,
            name=row.name,
            description=row.description,
            tags=list(row.tags),
            cloud_account=str(row.spec.get("cloud_account", "")),
            provider=str(status.get("provider", "")),
            region=str(row.spec.get("region", "")),
            address=str(status.get("address", "")),
            ip_id=str(status.get("ip_id", "")),
            used_by=await clusters_using(self.db, row.org, STATIC_IP_KIND, ref),
            status=row.observed_state,  # type: ignore[arg-type]
            reason=row.reason,
            steps=await steps_of(self.db, row.id),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class StaticIpReconciler:
    def __init__(self, service: StaticIpService) -> None:
        self.service = service

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        if resource.desired_state == "deleting":
            return await self._release(resource, ctx)
        status = dict(resource.status)
        try:
            definition = msgspec.convert(resource.spec, StaticIpDefinition)
            account = await cloud_account(
                self.service.accounts,
                self.service.kernel,
                resource.org,
                definition.cloud_account,
                CloudFeature.STATIC_IPS,
                "static IPs",
            )
        except (Invalid, Conflict) as exc:
            return ReconcileResult(observed_state="failed", reason=exc.message, status=status)
        except msgspec.ValidationError as exc:
            return ReconcileResult(observed_state="failed", reason=str(exc), status=status)
        steps = NetworkSteps(self.service.db, resource.id, ctx)
        step = f"Static IP in {definition.region}"
        await steps.step(step, StepState.RUNNING)
        provider = self.service.accounts.provider(account.provider)
        try:
            ip = await provider.allocate_static_ip(
                self.service.accounts.account(account),
                definition.region,
                cloud_ip_name(resource.id, resource.name),
                tags={
                    TAG_STATIC_IP: str(resource.id),
                    "User": resource.owner,
                    "OrganizationID": resource.org,
                },
            )
        except CorralError as exc:
            if exc.retryable:
                raise  # retried with back-off; the allocation is idempotent on its name
            await steps.fail_running(exc.message)
            return ReconcileResult(observed_state="failed", reason=exc.message, status=status)
        await steps.step(step, StepState.COMPLETED, ip.address)
        await ctx.emit("static_ip.provisioned", {"name": resource.name, "address": ip.address})
        return ReconcileResult(
            observed_state="provisioned",
            status={
                "ip_id": ip.id,
                "address": ip.address,
                "region": definition.region,
                "cloud_account": account.name,
                "provider": account.provider,
            },
        )

    async def _release(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        await self.service.resources.mark_observed(resource.id, "deleting", unless=())
        status = resource.status
        try:
            definition = msgspec.convert(resource.spec, StaticIpDefinition)
            account = await self.service.accounts.get(resource.org, definition.cloud_account)
        except (NotFound, msgspec.ValidationError):
            account = None
            log.warning("static IP %s: its cloud account is gone; forgetting it", resource.id)
        if account is not None:
            provider = self.service.accounts.provider(account.provider)
            cloud = self.service.accounts.account(account)
            ip_id = str(status.get("ip_id") or "")
            if not ip_id:  # an allocation cut short is found by its name (allocate is idempotent)
                ip_id = (
                    await provider.allocate_static_ip(
                        cloud, definition.region, cloud_ip_name(resource.id, resource.name)
                    )
                ).id
            await DeletionSteps(self.service.db, resource.id, ctx).start()
            # Conflict while the cloud still has it attached: the driver retries with back-off
            await provider.release_static_ip(cloud, definition.region, ip_id)
        await self.service.resources.delete(resource.id)
        await ctx.emit("static_ip.deleted", {"name": resource.name})
        return ReconcileResult(observed_state="deleting", status={})
