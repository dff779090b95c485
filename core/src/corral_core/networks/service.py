"""Networks of an organization: create, edit, delete (the reconciler provisions them), and how
they are shown. Every organization member may read them; changing them needs org:admin or the
``network`` permission on their cloud account (:mod:`corral_core.networks.access`)."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import func
from sqlmodel import col, select

from corral_core.clusters.accounts import CloudAccounts
from corral_core.clusters.models import CloudAccountRecord, ProvisionStep
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.db import Database
from corral_core.identity.roles import Principal
from corral_core.networks.access import AccountAccess
from corral_core.networks.spec import (
    NETWORK_KIND,
    NETWORK_STATUS,
    NetworkDefinition,
    org_owner,
    step_status,
)
from corral_core.plugins import Kernel
from corral_core.resources.models import Resource
from corral_core.resources.service import ResourceService
from corral_sdk.config import describe_validation_error
from corral_sdk.errors import Conflict, Invalid, NotFound
from corral_sdk.features import CloudFeature
from corral_sdk.providers._common import StepState
from corral_sdk.providers.cloud import NetworkInfo
from corral_sdk.wire import (
    NetworkCreate,
    NetworkDetails,
    NetworkRegionResources,
    NetworkStep,
    NetworkUpdate,
)

__all__ = ["LINES_TAB", "PROVISION_TAB", "NetworkService"]

PROVISION_TAB = "provision"
"""The step rows of a network (``cluster_step``, session 0): one per resource at the cloud."""
LINES_TAB = "lines"
"""The provider's log lines of a network's last operation."""
DESCRIPTION_MAX = 1000


class NetworkService:
    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        resources: ResourceService,
        accounts: CloudAccounts,
    ) -> None:
        self.db = db
        self.kernel = kernel
        self.resources = resources
        self.accounts = accounts
        self.access = AccountAccess(db)

    # --- lookups ----------------------------------------------------------------------------

    async def get(self, principal: Principal, name: str) -> Resource:
        """A network of the caller's organization; another organization's is not found."""
        async with self.db.session() as session:
            row = (
                await session.exec(
                    select(Resource)
                    .where(col(Resource.kind) == NETWORK_KIND)
                    .where(col(Resource.owner) == org_owner(principal.org))
                    .where(col(Resource.name) == name)
                )
            ).first()
        if row is None:
            raise NotFound(
                f"{principal.org} has no network named {name!r}", reason="resource-not-found"
            )
        return row

    async def list_networks(
        self, principal: Principal, *, cloud_account: str = "", limit: int = 50, offset: int = 0
    ) -> tuple[list[Resource], int]:
        query = (
            select(Resource)
            .where(col(Resource.kind) == NETWORK_KIND)
            .where(col(Resource.owner) == org_owner(principal.org))
        )
        async with self.db.session() as session:
            rows = [
                r
                for r in await session.exec(query.order_by(col(Resource.name)))
                if not cloud_account or r.spec.get("cloud_account") == cloud_account
            ]
        return rows[offset : offset + limit], len(rows)

    async def clusters_using(self, org: str, name: str) -> list[str]:
        """Clusters of ``org`` on network ``name`` that are not off."""
        async with self.db.session() as session:
            clusters = await session.exec(
                select(Resource)
                .where(col(Resource.kind) == CLUSTER_KIND)
                .where(col(Resource.org) == org)
                .where(col(Resource.observed_state) != "off")
            )
            return [
                f"{r.owner}/{r.name}"
                for r in clusters
                if (r.spec.get("cloud") or {}).get("network") == name
            ]

    async def _account(self, principal: Principal, name: str) -> CloudAccountRecord:
        try:
            return await self.accounts.get(principal.org, name)
        except NotFound:
            raise Invalid(
                f"{principal.org} has no cloud account named {name!r}", field="cloud_account"
            ) from None

    def _check_provider(self, account: CloudAccountRecord) -> None:
        try:
            features = self.kernel.cloud(account.provider).features
        except NotFound:
            raise Invalid(
                f"cloud account {account.name!r} uses cloud provider {account.provider!r}, which "
                "is not installed",
                field="cloud_account",
            ) from None
        if CloudFeature.NETWORKS not in features:
            raise Invalid(
                f"cloud account {account.name!r} is on {account.provider}, which has no "
                "networks (its clusters need none)",
                field="cloud_account",
            )

    async def _check_with_provider(
        self, account: CloudAccountRecord, definition: NetworkDefinition, name: str
    ) -> None:
        """The provider's own rules (a mode's options, sizes, regions): a 422 naming the field
        before anything is stored, not a network that fails while provisioning."""
        provider = self.accounts.provider(account.provider)
        await provider.check_network(self.accounts.account(account), definition.network_spec(name))

    @staticmethod
    def _definition(raw: dict[str, Any]) -> NetworkDefinition:
        try:
            return msgspec.convert(raw, NetworkDefinition)
        except msgspec.ValidationError as exc:
            field, message = describe_validation_error(exc)
            raise Invalid(message, field=field) from None

    @staticmethod
    def _check_description(description: str) -> None:
        if len(description) > DESCRIPTION_MAX:
            raise Invalid(
                f"description must be {DESCRIPTION_MAX} characters or fewer", field="description"
            )

    # --- changes ----------------------------------------------------------------------------

    async def create(self, principal: Principal, data: NetworkCreate) -> Resource:
        """Store a valid network and start provisioning it."""
        self._check_description(data.description)
        definition = self._definition(
            {
                "cloud_account": data.cloud_account,
                "regions": msgspec.to_builtins(data.regions),
                "mode": data.mode,
                "options": data.options,
            }
        )
        account = await self._account(principal, definition.cloud_account)
        await self.access.require(principal, account, "creating a network")
        self._check_provider(account)
        await self._check_with_provider(account, definition, data.name)
        if account.deleting_at is not None:
            raise Conflict(
                f"cloud account {account.name!r} is being deleted", reason="account-deleting"
            )
        await self.resources.create(
            NETWORK_KIND,
            org=principal.org,
            owner=org_owner(principal.org),
            name=data.name,
            spec=msgspec.to_builtins(definition),
            desired_state="provisioned",
            description=data.description,
            actor=principal.username,
            conflict_if_taken=f"{principal.org} already has a network named {data.name!r}",
        )
        return await self.get(principal, data.name)

    async def _steps_running(self, resource_id: int) -> bool:
        async with self.db.session() as session:
            count = (
                await session.exec(
                    select(func.count())
                    .select_from(ProvisionStep)
                    .where(col(ProvisionStep.resource_id) == resource_id)
                    .where(col(ProvisionStep.log) == PROVISION_TAB)
                    .where(col(ProvisionStep.state).in_((StepState.RUNNING, StepState.PENDING)))
                )
            ).one()
        return bool(count)

    async def update(self, principal: Principal, name: str, data: NetworkUpdate) -> Resource:
        """Change a network's regions, mode or options: it is provisioned again. Refused while
        it is provisioning or being deleted, and after a failure (delete it and create it
        again)."""
        row = await self.get(principal, name)
        assert row.id is not None
        current = self._definition(row.spec)
        account = await self._account(principal, current.cloud_account)
        await self.access.require(principal, account, "changing a network")
        if data.description is not None:
            self._check_description(data.description)
        definition = self._definition(
            {
                "cloud_account": current.cloud_account,
                "regions": msgspec.to_builtins(
                    current.regions if data.regions is None else data.regions
                ),
                "mode": current.mode if data.mode is None else data.mode,
                "options": current.options if data.options is None else data.options,
            }
        )
        changed = msgspec.to_builtins(definition) != row.spec
        if changed:
            await self._check_with_provider(account, definition, name)
            status = NETWORK_STATUS.get(row.observed_state, row.observed_state)
            if row.desired_state == "deleting":
                raise Conflict(f"network {name!r} is being deleted", reason="network-deleting")
            if row.observed_state == "failed":
                raise Conflict(
                    f"network {name!r} failed ({row.reason}); delete it and create it again",
                    reason="network-failed",
                )
            busy = row.observed_state in ("pending", "provisioning")
            if busy or row.observed_generation != row.generation:
                raise Conflict(
                    f"network {name!r} is {status}: it cannot be edited until it is provisioned",
                    reason="network-provisioning",
                )
            if await self._steps_running(row.id):
                raise Conflict(
                    f"network {name!r} has steps provisioning: it cannot be edited until they "
                    "finish",
                    reason="network-provisioning",
                )
            await self.resources.set_desired(
                row.id, spec=msgspec.to_builtins(definition), actor=principal.username
            )
        if data.description is not None:
            await self.resources.describe(row.id, description=data.description)
        return await self.get(principal, name)

    async def delete(self, principal: Principal, name: str) -> Resource:
        """Start deprovisioning a network; it is gone once the provider has removed it all.
        Refused while clusters that are not off run on it."""
        row = await self.get(principal, name)
        definition = self._definition(row.spec)
        try:
            account = await self.accounts.get(principal.org, definition.cloud_account)
        except NotFound:
            account = None
        if account is not None:
            await self.access.require(principal, account, "deleting a network")
        else:
            await self.access.require(
                principal,
                CloudAccountRecord(org=principal.org, name=definition.cloud_account, provider=""),
                "deleting a network",
            )
        using = await self.clusters_using(principal.org, name)
        if using:
            raise Conflict(
                f"network {name!r} is used by clusters that are not off: {', '.join(using)} "
                "(destroy them first)",
                reason="network-in-use",
            )
        assert row.id is not None
        await self.retire(row.id, actor=principal.username)
        try:
            return await self.get(principal, name)
        except NotFound:  # already deprovisioned by a worker
            row.desired_state = row.observed_state = "deleting"
            return row

    async def retire(self, resource_id: int, *, actor: str | None = None) -> None:
        """Set a network to be deleted (its cloud account's deletion does it for each one)."""
        await self.resources.set_desired(resource_id, desired_state="deleting", actor=actor)
        await self.resources.mark_observed(resource_id, "deleting", unless=())

    # --- what users read --------------------------------------------------------------------

    async def details(self, row: Resource) -> NetworkDetails:
        assert row.id is not None
        definition = msgspec.convert(row.spec, NetworkDefinition)
        async with self.db.session() as session:
            steps = list(
                await session.exec(
                    select(ProvisionStep)
                    .where(col(ProvisionStep.resource_id) == row.id)
                    .where(col(ProvisionStep.log).in_((PROVISION_TAB, LINES_TAB)))
                    .order_by(col(ProvisionStep.position), col(ProvisionStep.id))
                )
            )
            account = (
                await session.exec(
                    select(CloudAccountRecord)
                    .where(col(CloudAccountRecord.org) == row.org)
                    .where(col(CloudAccountRecord.name) == definition.cloud_account)
                )
            ).first()
        stored = row.status.get("network")
        info = msgspec.convert(stored, NetworkInfo) if stored else None
        status = NETWORK_STATUS[row.observed_state]
        if row.desired_state == "deleting":
            status = "Deleting"
        elif row.observed_state == "provisioned" and row.observed_generation != row.generation:
            status = "Pending"  # an edit waiting for a worker
        return NetworkDetails(
            name=row.name,
            cloud_account=definition.cloud_account,
            provider=account.provider if account is not None else "",
            mode=definition.mode,
            regions=list(definition.regions),
            options=dict(definition.options),
            description=row.description,
            status=status,
            reason=row.reason,
            steps=[
                NetworkStep(
                    name=s.name,
                    status=step_status(s.state),
                    detail=s.detail,
                    updated_at=s.updated_at,
                )
                for s in steps
                if s.log == PROVISION_TAB
            ],
            log=[s.name for s in steps if s.log == LINES_TAB],
            resources=[
                NetworkRegionResources(
                    region=r.region,
                    cidr=r.cidr,
                    network_id=r.network_id,
                    subnet_ids=list(r.subnet_ids),
                    security_group_ids=list(r.security_group_ids),
                    details=dict(r.details),
                )
                for r in (info.regions if info is not None else ())
            ],
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
