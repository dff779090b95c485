"""OS snapshots: images of a running cloud cluster's controller root disk, made by the cloud
account's provider (:attr:`~corral_sdk.features.CloudFeature.OS_SNAPSHOTS`).

Creating one stores the resource (``provisioning``) and its reconciler asks the provider for the
image, then polls :meth:`~corral_sdk.providers.cloud.CloudProvider.list_images` until the image
is available (``provisioned``) or failed. Deleting one deletes the image; the snapshot stays
listed as ``deleted`` for an hour (:data:`~corral_core.cloud_resources.spec.DELETED_VISIBLE`),
then the reconciler removes it. The provider's create is idempotent on the image's name, which
carries the resource's id, so a worker killed mid-way makes no second image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from corral_core.cloud_resources.attach import clusters_using
from corral_core.cloud_resources.common import (
    Clock,
    Owners,
    check_description,
    cloud_account,
    steps_of,
)
from corral_core.cloud_resources.spec import (
    DELETED_VISIBLE,
    OS_SNAPSHOT_KIND,
    OsSnapshotDefinition,
)
from corral_core.clusters.accounts import CloudAccounts
from corral_core.clusters.cloud import CloudClusters
from corral_core.clusters.models import CloudAccountRecord
from corral_core.clusters.spec import CLUSTER_KIND, CloudClusterSpec
from corral_core.db import Database, utcnow
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.networks.reconciler import NetworkSteps
from corral_core.plugins import Kernel
from corral_core.resources.access import OWNER, ResourceAccess
from corral_core.resources.models import Resource
from corral_core.resources.service import ResourceService, name_rule
from corral_sdk.errors import Conflict, CorralError, Invalid, NotFound, PermissionDenied
from corral_sdk.features import CloudFeature
from corral_sdk.providers._common import StepState
from corral_sdk.providers.cloud import Image, ImageSource, ImageState
from corral_sdk.reconcile import ReconcileContext, ReconcileResult, ResourceSnapshot
from corral_sdk.wire import OsSnapshotCreate, OsSnapshotInfo

__all__ = ["OsSnapshotReconciler", "OsSnapshotService", "cloud_image_name"]

log = logging.getLogger("corral.os_snapshots")

TAG_SNAPSHOT = "corral-os-snapshot"
WAITING_STEP = "Image available"
SOURCE_LEVEL = "admin"
"""The level on a cluster its OS snapshots need: the image holds everyone's files on it."""


def cloud_image_name(resource_id: int, name: str) -> str:
    """The image's name at the cloud: the snapshot's, made unique by its resource id (two
    users' ``my-snap`` in one cloud account are two images), still within the name rule."""
    suffix = f"-{resource_id}"
    return f"{name[: 36 - len(suffix)]}{suffix}"


@dataclass(frozen=True)
class Source:
    """Where a snapshot is taken from: a running cloud cluster's controller."""

    cluster: str
    account: CloudAccountRecord
    region: str
    instance_id: str


class OsSnapshotService:
    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        resources: ResourceService,
        access: ResourceAccess,
        accounts: CloudAccounts,
        cloud: CloudClusters,
        owners: Owners,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.kernel = kernel
        self.resources = resources
        self.access = access
        self.accounts = accounts
        self.cloud = cloud
        self.owners = owners
        self.clock = clock

    # --- where a snapshot comes from --------------------------------------------------------

    async def source(self, principal: Principal, cluster: str) -> Source:
        """The controller of running cloud cluster ``cluster`` if ``principal`` holds ``admin``
        on it; ``Invalid`` naming ``cluster`` or ``cloud_account``, ``Conflict`` when it does
        not run."""
        ref = ResourceRef.parse(cluster, principal.username, "cluster")
        try:
            row = await self.access.get(principal, ref)
        except NotFound:
            raise Invalid(f"there is no cluster {ref.uri} you can see", field="cluster") from None
        if row.kind != CLUSTER_KIND or row.spec.get("type") != "cloud":
            raise Invalid(
                f"{ref.uri} is not a cloud cluster: OS snapshots are taken from a cloud "
                "cluster's controller",
                field="cluster",
            )
        try:
            await self.access.require_level(principal, row, SOURCE_LEVEL)
        except PermissionDenied:
            raise PermissionDenied(
                f"an OS snapshot of {ref.uri} needs its owner or the {SOURCE_LEVEL!r} level on it",
                reason="share-level-too-low",
            ) from None
        spec = msgspec.convert(row.spec, CloudClusterSpec)
        account = await cloud_account(
            self.accounts,
            self.kernel,
            row.org,
            spec.cloud.cloud_account,
            CloudFeature.OS_SNAPSHOTS,
            "OS snapshots",
        )
        assert row.id is not None
        session = await self.cloud.current_session(row.id)
        if row.observed_state != "active" or session is None or not session.controller_id:
            raise Conflict(
                f"{ref.uri} is {row.observed_state}: an OS snapshot is taken from a running "
                "cluster's controller",
                reason="cluster-not-running",
            )
        region = spec.cloud.controller.region
        if not region:  # the provider's first region, as the cluster's placement took
            provider = self.accounts.provider(account.provider)
            regions = await provider.list_regions(self.accounts.account(account))
            region = regions[0].name if regions else ""
        return Source(
            cluster=ref.uri, account=account, region=region, instance_id=session.controller_id
        )

    # --- changes ----------------------------------------------------------------------------

    async def create(self, principal: Principal, data: OsSnapshotCreate) -> Resource:
        """Store a snapshot of ``data.cluster``'s controller; the reconciler makes the image."""
        name_rule(self.kernel.resource_kind(OS_SNAPSHOT_KIND)).check(data.name, "name")
        check_description(data.description)
        source = await self.source(principal, data.cluster)
        await self.resources.create(
            OS_SNAPSHOT_KIND,
            org=principal.org,
            owner=principal.username,
            name=data.name,
            spec=msgspec.to_builtins(OsSnapshotDefinition(cluster=source.cluster)),
            desired_state="provisioned",
            description=data.description,
            tags=data.tags,
            actor=principal.username,
            conflict_if_taken=(
                f"you already have a resource named {data.name!r} (a deleted snapshot "
                "keeps its name for an hour)"
            ),
        )
        return await self.get(principal, ResourceRef(principal.username, data.name))

    async def delete(self, principal: Principal, ref: ResourceRef) -> Resource:
        """Delete a snapshot's image; refused while clusters that are not off use it."""
        row = await self.get(principal, ref)
        await self.access.require_level(principal, row, OWNER)
        if row.desired_state == "deleted":
            return row
        using = await clusters_using(self.db, row.org, OS_SNAPSHOT_KIND, ref)
        if using:
            raise Conflict(
                f"OS snapshot {ref.uri} is the image of clusters that are not off: "
                f"{', '.join(using)} (destroy them or change their image first)",
                reason="snapshot-in-use",
            )
        assert row.id is not None
        await self.resources.set_desired(row.id, desired_state="deleted", actor=principal.username)
        await self.resources.mark_observed(row.id, "deleting", unless=("deleted",))
        return await self.get(principal, ref)

    # --- what users read --------------------------------------------------------------------

    def expired(self, row: Resource) -> bool:
        """A deleted snapshot past its hour: no longer shown, whether or not a worker has
        removed it yet."""
        deleted_at = _when(row.status.get("deleted_at"))
        return deleted_at is not None and self.clock() >= deleted_at + DELETED_VISIBLE

    async def get(self, principal: Principal, ref: ResourceRef) -> Resource:
        row = await self.access.get(principal, ref, OS_SNAPSHOT_KIND)
        if self.expired(row):
            raise NotFound(f"not found: {ref.uri}", reason="resource-not-found")
        return row

    async def list_snapshots(
        self, principal: Principal, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Resource], int]:
        rows, _ = await self.access.list_visible(principal, kind=OS_SNAPSHOT_KIND, limit=10_000)
        shown = [r for r in rows if not self.expired(r)]
        return shown[offset : offset + limit], len(shown)

    async def info(self, row: Resource) -> OsSnapshotInfo:
        assert row.id is not None
        status: dict[str, Any] = row.status
        return OsSnapshotInfo(
            uri=ResourceRef(row.owner, row.name).uri,
            owner=row.owner,
            name=row.name,
            description=row.description,
            tags=list(row.tags),
            cluster=str(row.spec.get("cluster", "")),
            cloud_account=str(status.get("cloud_account", "")),
            provider=str(status.get("provider", "")),
            region=str(status.get("region", "")),
            image_id=str(status.get("image_id", "")),
            size_gib=status.get("size_gib"),
            status=row.observed_state,  # type: ignore[arg-type]
            reason=row.reason,
            steps=await steps_of(self.db, row.id),
            created_at=row.created_at,
            updated_at=row.updated_at,
            deleted_at=_when(status.get("deleted_at")),
        )


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


class OsSnapshotReconciler:
    """Makes the image (``provisioning`` → ``provisioned``/``failed``), deletes it, and removes
    the snapshot an hour after."""

    def __init__(self, service: OsSnapshotService, poll_seconds: float = 10.0) -> None:
        self.service = service
        self.poll_seconds = poll_seconds

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        if resource.desired_state == "deleted":
            return await self._delete(resource, ctx)
        status = dict(resource.status)
        steps = NetworkSteps(self.service.db, resource.id, ctx)
        if not status.get("image_id"):
            try:
                definition = msgspec.convert(resource.spec, OsSnapshotDefinition)
                principal = await self.service.owners.principal(resource.owner)
                source = await self.service.source(principal, definition.cluster)
            except (Invalid, NotFound, Conflict, PermissionDenied) as exc:
                return self._failed(status, exc.message)
            except msgspec.ValidationError as exc:
                return self._failed(status, str(exc))
            account = source.account
            provider = self.service.accounts.provider(account.provider)
            try:
                image = await provider.create_image(
                    self.service.accounts.account(account),
                    source.region,
                    source.instance_id,
                    cloud_image_name(resource.id, resource.name),
                    tags=self._tags(resource),
                    log=steps,
                )
            except CorralError as exc:
                if exc.retryable:
                    raise  # the driver retries with back-off; the create is idempotent
                await steps.fail_running(exc.message)
                return self._failed(status, exc.message)
            status.update(
                cloud_account=account.name,
                provider=account.provider,
                region=source.region,
                instance_id=source.instance_id,
                image_id=image.id,
            )
        else:
            found = await self._image(resource, status)
            if found is None:
                return self._failed(status, f"image {status['image_id']} is gone from the cloud")
            image = found
        if image.size_gib is not None:
            status["size_gib"] = image.size_gib
        if image.state is ImageState.AVAILABLE:
            await steps.step(WAITING_STEP, StepState.COMPLETED, image.id)
            await ctx.emit("os_snapshot.provisioned", {"name": resource.name})
            return ReconcileResult(observed_state="provisioned", status=status)
        if image.state in (ImageState.FAILED, ImageState.DELETED):
            reason = f"the cloud could not make image {image.id} ({image.state})"
            await steps.step(WAITING_STEP, StepState.FAILED, reason)
            return self._failed(status, reason)
        await steps.step(WAITING_STEP, StepState.RUNNING, image.id)
        return ReconcileResult(
            observed_state="provisioning", status=status, requeue_after=self.poll_seconds
        )

    @staticmethod
    def _tags(resource: ResourceSnapshot) -> dict[str, str]:
        return {
            TAG_SNAPSHOT: str(resource.id),
            "Name": f"{resource.owner}/{resource.name}",
            "User": resource.owner,
            "OrganizationID": resource.org,
            "Date": utcnow().date().isoformat(),
            "GroupID": "none",
            "Project": "",
            "Pool": "",
            "Session": "",
            "SessionID": "",
        }

    async def _account(self, org: str, name: str) -> CloudAccountRecord | None:
        try:
            return await self.service.accounts.get(org, name)
        except NotFound:
            return None

    async def _image(self, resource: ResourceSnapshot, status: dict[str, Any]) -> Image | None:
        account = await self._account(resource.org, str(status["cloud_account"]))
        if account is None:
            raise NotFound(f"cloud account {status['cloud_account']!r} no longer exists")
        provider = self.service.accounts.provider(account.provider)
        images = await provider.list_images(
            self.service.accounts.account(account), str(status["region"])
        )
        return next((i for i in images if i.id == status["image_id"]), None)

    @staticmethod
    def _failed(status: dict[str, Any], reason: str) -> ReconcileResult:
        return ReconcileResult(observed_state="failed", reason=reason, status=status)

    async def _delete(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        status = dict(resource.status)
        now = self.service.clock()
        deleted_at = _when(status.get("deleted_at"))
        if deleted_at is None:
            await self._delete_image(resource, status, ctx)
            deleted_at = now
            status["deleted_at"] = now.isoformat()
            await ctx.emit("os_snapshot.deleted", {"name": resource.name})
        left = (deleted_at + DELETED_VISIBLE - now).total_seconds()
        if left <= 0:
            await self.service.resources.delete(resource.id)
            return ReconcileResult(observed_state="deleted", status=status)
        return ReconcileResult(observed_state="deleted", status=status, requeue_after=left)

    async def _delete_image(
        self, resource: ResourceSnapshot, status: dict[str, Any], ctx: ReconcileContext
    ) -> None:
        """Delete the image at the cloud (errors propagate: the driver retries)."""
        await self.service.resources.mark_observed(resource.id, "deleting", unless=())
        image_id = str(status.get("image_id") or "")
        account = None
        region = str(status.get("region") or "")
        if status.get("cloud_account"):
            account = await self._account(resource.org, str(status["cloud_account"]))
        if not image_id:
            # never saw the image's id: one may exist under its name (a create cut short)
            try:
                definition = msgspec.convert(resource.spec, OsSnapshotDefinition)
                principal = await self.service.owners.principal(resource.owner)
                source = await self.service.source(principal, definition.cluster)
            except (CorralError, msgspec.ValidationError):
                return  # nothing was made: the source never ran
            account, region = source.account, source.region
            provider = self.service.accounts.provider(account.provider)
            name = cloud_image_name(resource.id, resource.name)
            images = await provider.list_images(self.service.accounts.account(account), region)
            made = next(
                (i for i in images if i.source is ImageSource.ACCOUNT and i.name == name), None
            )
            if made is None:
                return
            image_id = made.id
        if account is None:
            log.warning("OS snapshot %s: its cloud account is gone; forgetting it", resource.id)
            return
        steps = NetworkSteps(self.service.db, resource.id, ctx)
        await steps.step("Delete image", StepState.RUNNING, image_id)
        await self.service.accounts.provider(account.provider).delete_image(
            self.service.accounts.account(account), region, image_id
        )
        await steps.step("Delete image", StepState.COMPLETED, image_id)
