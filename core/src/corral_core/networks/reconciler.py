"""Provisions networks with their cloud account's provider, and deprovisions them.

State lives in the database, so a killed worker loses nothing: the resource stays
``provisioning`` (or ``deleting``) with its lease, the sweep takes it up again once the lease
expires, and the provider's create, update and delete calls are idempotent (a create finds
what exists by the network's tags). Each resource at the cloud is a step row
(``cluster_step``, session 0): the provider reports them on a ``ProgressLog``; while deleting,
every step shows ``Deleting`` and is removed once the provider reports it done.

Errors the provider marks ``retryable`` (an unreachable or throttling API) are retried with
back-off; any other provisioning error fails the network with the reason (the way back is to
delete it and create it again). A delete is retried until it succeeds.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import msgspec
from sqlalchemy import delete, update
from sqlmodel import col

from corral_core.clusters.accounts import CloudAccounts
from corral_core.clusters.cloud import StepLog
from corral_core.clusters.models import ProvisionStep
from corral_core.db import Database, utcnow
from corral_core.networks.service import LINES_TAB, PROVISION_TAB
from corral_core.networks.spec import DELETING_STEP, NetworkDefinition, org_owner
from corral_core.plugins import Kernel
from corral_core.resources.service import ResourceService
from corral_sdk.errors import CorralError, NotFound
from corral_sdk.features import CloudFeature
from corral_sdk.providers._common import StepState
from corral_sdk.providers.cloud import NetworkInfo, NetworkRegionInfo
from corral_sdk.reconcile import ReconcileContext, ReconcileResult, ResourceSnapshot

__all__ = ["NetworkReconciler", "network_tags"]

log = logging.getLogger("corral.networks")

TAG_NETWORK = "corral-network"


def network_tags(resource: ResourceSnapshot) -> dict[str, str]:
    """The tags on everything a network's provider creates (it finds them again by them)."""
    return {
        TAG_NETWORK: str(resource.id),
        "Name": resource.name,
        "OrganizationID": resource.org,
    }


class NetworkSteps(StepLog):
    """A network's step rows, written as the provider reports them; each report also extends
    the reconcile's lease, since provisioning a network can take minutes."""

    def __init__(self, db: Database, resource_id: int, ctx: ReconcileContext) -> None:
        super().__init__(db, resource_id, 0, PROVISION_TAB)
        self.ctx = ctx
        self.lines = StepLog(db, resource_id, 0, LINES_TAB)

    async def log(self, message: str) -> None:
        await self.lines.log(message)
        await self.ctx.heartbeat()

    async def step(self, name: str, state: StepState, detail: str = "") -> None:
        await super().step(name, state, detail)
        await self.ctx.heartbeat()

    async def fail_running(self, reason: str) -> None:
        """Steps still running when the provider gave up failed with it."""
        await self._set_where((StepState.RUNNING,), state=str(StepState.FAILED), detail=reason)

    async def clear_lines(self) -> None:
        async with self.db.session() as session:
            await session.exec(
                delete(ProvisionStep)
                .where(col(ProvisionStep.resource_id) == self.resource_id)
                .where(col(ProvisionStep.log) == LINES_TAB)
            )
            await session.commit()

    async def _set_where(self, states: tuple[str, ...], **values: Any) -> None:
        async with self.db.session() as session:
            query = (
                update(ProvisionStep)
                .where(col(ProvisionStep.resource_id) == self.resource_id)
                .where(col(ProvisionStep.log) == PROVISION_TAB)
            )
            if states:
                query = query.where(col(ProvisionStep.state).in_(states))
            await session.exec(query.values(updated_at=utcnow(), **values))
            await session.commit()


class DeletionSteps(NetworkSteps):
    """While deleting: a step the provider starts on shows ``Deleting`` and goes once it is
    done; every other step already shows ``Deleting`` (:meth:`start`)."""

    async def start(self) -> None:
        await self._set_where((), state=DELETING_STEP)

    async def step(self, name: str, state: StepState, detail: str = "") -> None:
        if state in (StepState.COMPLETED, StepState.SKIPPED):
            async with self.db.session() as session:
                await session.exec(
                    delete(ProvisionStep)
                    .where(col(ProvisionStep.resource_id) == self.resource_id)
                    .where(col(ProvisionStep.log) == PROVISION_TAB)
                    .where(col(ProvisionStep.name) == name[:255])
                )
                await session.commit()
            await self.ctx.heartbeat()
            return
        shown = state if state == StepState.FAILED else cast(StepState, DELETING_STEP)
        await super().step(name, shown, detail)


class NetworkReconciler:
    def __init__(
        self, db: Database, kernel: Kernel, resources: ResourceService, accounts: CloudAccounts
    ) -> None:
        self.db = db
        self.kernel = kernel
        self.resources = resources
        self.accounts = accounts

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        if resource.desired_state == "deleting":
            return await self._delete(resource, ctx)
        if resource.owner != org_owner(resource.org):
            return self._failed(resource, "networks are created through /api/networks")
        definition = msgspec.convert(resource.spec, NetworkDefinition)
        try:
            row = await self.accounts.get(resource.org, definition.cloud_account)
            if CloudFeature.NETWORKS not in self.kernel.cloud(row.provider).features:
                return self._failed(resource, f"cloud provider {row.provider!r} has no networks")
        except NotFound as exc:
            return self._failed(resource, exc.message)
        provider = self.accounts.provider(row.provider)
        account = self.accounts.account(row)
        spec = definition.network_spec(resource.name, network_tags(resource))
        await self.resources.mark_observed(resource.id, "provisioning", unless=())
        steps = NetworkSteps(self.db, resource.id, ctx)
        await steps.clear_lines()
        stored = resource.status.get("network")
        try:
            if stored:
                existing = msgspec.convert(stored, NetworkInfo)
                info = await provider.update_network(account, existing, spec, log=steps)
            else:
                info = await provider.create_network(account, spec, log=steps)
        except CorralError as exc:
            if exc.retryable:
                raise  # the driver retries with back-off; the provider's calls are idempotent
            await steps.fail_running(exc.message)
            log.info("network %s failed: %s", resource.id, exc.log_message)
            await ctx.emit("network.failed", {"name": resource.name, "reason": exc.message})
            return self._failed(resource, exc.message)
        await ctx.emit("network.provisioned", {"name": resource.name})
        return ReconcileResult(
            observed_state="provisioned",
            status={"network": msgspec.to_builtins(info), "provider": row.provider},
        )

    @staticmethod
    def _failed(resource: ResourceSnapshot, reason: str) -> ReconcileResult:
        return ReconcileResult(
            observed_state="failed", reason=reason, status={**resource.status, "failed": reason}
        )

    async def _delete(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        await self.resources.mark_observed(resource.id, "deleting", unless=())
        definition = msgspec.convert(resource.spec, NetworkDefinition)
        try:
            row = await self.accounts.get(resource.org, definition.cloud_account)
        except NotFound:
            row = None  # nothing left to reach the cloud with (accounts wait for networks)
            log.warning("network %s: its cloud account is gone; forgetting it", resource.id)
        if row is not None:
            stored = resource.status.get("network")
            # never provisioned (failed early): the provider finds what exists by its tags
            info = (
                msgspec.convert(stored, NetworkInfo)
                if stored
                else NetworkInfo(
                    id="",
                    name=resource.name,
                    regions=tuple(
                        NetworkRegionInfo(region=r.region, cidr=r.cidr, network_id="")
                        for r in definition.regions
                    ),
                )
            )
            steps = DeletionSteps(self.db, resource.id, ctx)
            await steps.clear_lines()
            await steps.start()
            await self.accounts.provider(row.provider).delete_network(
                self.accounts.account(row), info, log=steps
            )
        await self.resources.delete(resource.id)
        await ctx.emit("network.deleted", {"name": resource.name})
        if row is not None and row.id is not None:
            await self.accounts.forget_if_retired(row.id)
        return ReconcileResult(observed_state="deleting", status={})
