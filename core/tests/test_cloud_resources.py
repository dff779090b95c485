"""OS snapshots and static IPs through the kernel: name rules, states, the hour a deleted
snapshot stays visible (on an injected clock), use by cloud clusters, and the refusals.

The provider here, ``imagelab``, stands in for a cloud's image and address API, which cannot run
in the kernel's tests (they may not import plugins; the AWS plugin's images and addresses are
tested against moto in its own package). It keeps images and addresses in memory; a test moves
an image from pending to available or failed as a cloud would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from corral_core.cloud_resources.snapshots import cloud_image_name
from corral_core.clusters.models import ClusterSession
from corral_core.clusters.spec import CLUSTER_KIND, CloudClusterSpec
from corral_core.db import utcnow
from corral_core.identity.models import User
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.migrations import upgrade
from corral_core.plugins import PluginSource, load_kernel
from corral_core.plugins.manager import builtin_sources
from corral_core.resources.models import Resource
from corral_core.runtime import Runtime
from corral_core.testing import ADMIN_PASSWORD, TestDeployment
from corral_sdk.errors import Conflict, Invalid, NotFound
from corral_sdk.features import CloudFeature
from corral_sdk.plugin import hookimpl
from corral_sdk.providers import StepState
from corral_sdk.providers.cloud import (
    CloudAccount,
    CloudProviderBase,
    CredentialCheck,
    Image,
    ImageSource,
    ImageState,
    InstanceType,
    Region,
    StaticIp,
)
from corral_sdk.records import CloudRecord
from corral_sdk.wire import CloudAccountCreate, OsSnapshotCreate, StaticIpCreate

pytestmark = pytest.mark.anyio


class ImageLab(CloudProviderBase):
    """Images and addresses in memory, found again by name as a cloud's are by their tags."""

    images: dict[str, Image] = {}
    addresses: dict[str, StaticIp] = {}
    calls: list[str] = []

    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        return CredentialCheck(principal="lab")

    async def list_regions(self, account: CloudAccount) -> list[Region]:
        return [Region(name="r1", zones=("r1a",)), Region(name="r2", zones=("r2a",))]

    async def list_instance_types(self, account: CloudAccount, region: str) -> list[InstanceType]:
        return [InstanceType(name="small", vcpus=1, memory_gib=1)]

    async def list_images(self, account: CloudAccount, region: str) -> list[Image]:
        base = Image(id="img-base", name="base", region=region, latest=True)
        return [base, *(i for i in type(self).images.values() if i.region == region)]

    async def create_instances(self, account: Any, request: Any, *, log: Any) -> Any:
        raise AssertionError("not used")

    async def describe_instances(self, account: Any, region: Any, **kw: Any) -> Any:
        return []

    async def start_instances(self, *args: Any) -> None: ...
    async def stop_instances(self, *args: Any) -> None: ...
    async def delete_instances(self, *args: Any) -> None: ...

    async def create_image(
        self,
        account: CloudAccount,
        region: str,
        instance_id: str,
        name: str,
        *,
        tags: Any = None,
        log: Any,
    ) -> Image:
        type(self).calls.append(f"create_image {instance_id} {name}")
        await log.step(f"OS snapshot {name}", StepState.RUNNING)
        found = next((i for i in type(self).images.values() if i.name == name), None)
        if found is None:
            found = Image(
                id=f"ami-{len(type(self).images) + 1}",
                name=name,
                region=region,
                source=ImageSource.ACCOUNT,
                state=ImageState.PENDING,
                size_gib=100,
                tags=dict(tags or {}),
            )
            type(self).images[found.id] = found
        await log.step(f"OS snapshot {name}", StepState.COMPLETED, found.id)
        return found

    async def delete_image(self, account: CloudAccount, region: str, image_id: str) -> None:
        type(self).calls.append(f"delete_image {image_id}")
        type(self).images.pop(image_id, None)

    async def allocate_static_ip(
        self, account: CloudAccount, region: str, name: str, *, tags: Any = None
    ) -> StaticIp:
        type(self).calls.append(f"allocate {name}")
        if name not in type(self).addresses:
            number = len(type(self).addresses) + 10
            type(self).addresses[name] = StaticIp(
                id=f"eipalloc-{number}", address=f"203.0.113.{number}", region=region
            )
        return type(self).addresses[name]

    async def release_static_ip(self, account: CloudAccount, region: str, ip_id: str) -> None:
        type(self).calls.append(f"release {ip_id}")
        for name, ip in list(type(self).addresses.items()):
            if ip.id == ip_id:
                if ip.attached_to:
                    raise Conflict(f"static IP {ip.address} is attached to {ip.attached_to}")
                del type(self).addresses[name]


def set_image(image_id: str, state: ImageState) -> None:
    ImageLab.images[image_id] = msgspec.structs.replace(ImageLab.images[image_id], state=state)


class Plain(ImageLab):
    """A cloud without images of its own or static IPs (as the local cloud)."""


class ImageLabPlugin:
    @hookimpl
    def corral_register_clouds(self) -> list[CloudRecord]:
        extras = frozenset({CloudFeature.OS_SNAPSHOTS, CloudFeature.STATIC_IPS})
        return [
            CloudRecord(name="imagelab", factory=ImageLab, features=extras),
            CloudRecord(name="plain", factory=Plain),
        ]


class Env:
    def __init__(self, runtime: Runtime, admin: Principal) -> None:
        self.runtime = runtime
        self.admin = admin
        self.now = utcnow()
        runtime.os_snapshots.clock = lambda: self.now

    async def cluster(
        self, name: str, *, state: str = "active", account: str = "lab", **cloud: Any
    ) -> int:
        created = await self.runtime.resources.create(
            CLUSTER_KIND,
            org=self.admin.org,
            owner=self.admin.username,
            name=name,
            spec={
                "type": "cloud",
                "cloud": {
                    "cloud_account": account,
                    "partitions": [{"name": "a"}],
                    "controller": {"region": "r1"},
                    **cloud,
                },
            },
            desired_state="off",
        )
        await self.runtime.resources.mark_observed(created.id, state, unless=())
        if state == "active":
            row = await self.runtime.cloud_clusters.open_session(created.id)
            async with self.runtime.db.session() as session:
                await session.exec(
                    update(ClusterSession)
                    .where(col(ClusterSession.id) == row.id)
                    .values(controller_id=f"i-{name}")
                )
                await session.commit()
        return created.id

    async def snapshot(self, name: str, cluster: str = "hpc") -> int:
        row = await self.runtime.os_snapshots.create(
            self.admin, OsSnapshotCreate(name=name, cluster=cluster)
        )
        assert row.id is not None
        return row.id

    async def show(self, name: str) -> Any:
        service = self.runtime.os_snapshots
        ref = ResourceRef(self.admin.username, name)
        return await service.info(await service.get(self.admin, ref))

    async def ip(self, name: str) -> Any:
        service = self.runtime.static_ips
        ref = ResourceRef(self.admin.username, name)
        return await service.info(await service.get(self.admin, ref))

    async def reconcile(self, resource_id: int) -> None:
        await self.runtime.reconciler.reconcile(resource_id)

    async def placement(self, **cloud: Any) -> dict[str, Any]:
        spec = msgspec.convert(
            {
                "type": "cloud",
                "cloud": {"cloud_account": "lab", "partitions": [{"name": "a"}], **cloud},
            },
            CloudClusterSpec,
        )
        clusters = self.runtime.cloud_clusters
        provider, account, _ = await clusters.account_of(self.admin.org, spec)
        return await clusters.placement(provider, account, spec, self.admin.username)


@pytest.fixture
async def env(deployment: TestDeployment) -> AsyncIterator[Env]:
    ImageLab.images, ImageLab.addresses, ImageLab.calls = {}, {}, []
    source = PluginSource(
        name="imagelab", distribution="corral-imagelab", version="1", load=ImageLabPlugin
    )
    runtime = Runtime(
        deployment.settings(), load_kernel(sources=[*builtin_sources(), source]), "all"
    )
    upgrade(runtime.db)
    await runtime.identity.bootstrap("default", "root", ADMIN_PASSWORD)
    async with runtime.db.session() as session:
        user = (await session.exec(select(User).where(col(User.username) == "root"))).one()
    admin = await runtime.authn.principal(user)
    for name, provider in (("lab", "imagelab"), ("plain", "plain")):
        await runtime.cloud_accounts.create(admin, CloudAccountCreate(name=name, provider=provider))
    try:
        yield Env(runtime, admin)
    finally:
        await runtime.close()


async def stored(env: Env, name: str) -> Resource | None:
    async with env.runtime.db.session() as session:
        return (await session.exec(select(Resource).where(col(Resource.name) == name))).first()


# --- OS snapshots -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["ab", "1abc", "My-Snap", "a b c", "a" * 37])
async def test_snapshot_names_follow_the_rule(env: Env, bad: str) -> None:
    await env.cluster("hpc")
    with pytest.raises(Invalid) as raised:
        await env.snapshot(bad)
    assert raised.value.field == "name"
    assert "3 to 36" in raised.value.message
    assert await stored(env, bad) is None


async def test_a_snapshot_needs_a_running_cloud_cluster_on_a_cloud_with_snapshots(
    env: Env,
) -> None:
    await env.cluster("hpc")
    await env.cluster("cold", state="off")
    await env.cluster("flat", account="plain")
    with pytest.raises(Invalid) as raised:
        await env.snapshot("snap", cluster="nope")
    assert raised.value.field == "cluster"
    with pytest.raises(Conflict) as conflict:
        await env.snapshot("snap", cluster="cold")
    assert "off" in conflict.value.message
    with pytest.raises(Invalid) as raised:
        await env.snapshot("snap", cluster="flat")
    assert raised.value.field == "cloud_account" and "OS snapshots" in raised.value.message
    assert ImageLab.calls == []
    await env.snapshot("my-snap-1")
    assert (await env.show("my-snap-1")).status == "provisioning"
    with pytest.raises(Conflict) as conflict:  # a name its owner has is a 409, not a 422
        await env.snapshot("my-snap-1")
    assert conflict.value.reason == "name-taken" and "for an hour" in conflict.value.message


async def test_provisioning_polls_until_the_image_is_available(env: Env) -> None:
    await env.cluster("hpc")
    snapshot_id = await env.snapshot("my-snap")
    await env.reconcile(snapshot_id)
    shown = await env.show("my-snap")
    assert shown.status == "provisioning"
    assert shown.image_id == "ami-1" and shown.region == "r1" and shown.cloud_account == "lab"
    assert {s.name: s.state for s in shown.steps} == {
        f"OS snapshot {cloud_image_name(snapshot_id, 'my-snap')}": "completed",
        "Image available": "running",
    }
    assert ImageLab.calls == [f"create_image i-hpc my-snap-{snapshot_id}"]
    await env.reconcile(snapshot_id)  # still pending: polled, not made again
    assert (await env.show("my-snap")).status == "provisioning"
    set_image("ami-1", ImageState.AVAILABLE)
    await env.reconcile(snapshot_id)
    shown = await env.show("my-snap")
    assert shown.status == "provisioned" and shown.size_gib == 100
    assert ImageLab.calls == [f"create_image i-hpc my-snap-{snapshot_id}"]


async def test_an_image_the_cloud_fails_fails_the_snapshot_with_the_reason(env: Env) -> None:
    await env.cluster("hpc")
    snapshot_id = await env.snapshot("bad-snap")
    await env.reconcile(snapshot_id)
    set_image("ami-1", ImageState.FAILED)
    await env.reconcile(snapshot_id)
    shown = await env.show("bad-snap")
    assert shown.status == "failed" and "ami-1" in shown.reason


async def test_a_deleted_snapshot_is_listed_as_deleted_for_an_hour_then_gone(env: Env) -> None:
    await env.cluster("hpc")
    snapshot_id = await env.snapshot("old-snap")
    await env.reconcile(snapshot_id)
    set_image("ami-1", ImageState.AVAILABLE)
    await env.reconcile(snapshot_id)
    ref = ResourceRef(env.admin.username, "old-snap")
    deleting = await env.runtime.os_snapshots.delete(env.admin, ref)
    assert deleting.observed_state == "deleting"
    await env.reconcile(snapshot_id)
    shown = await env.show("old-snap")
    assert shown.status == "deleted" and shown.deleted_at == env.now
    assert "ami-1" not in ImageLab.images and ImageLab.calls[-1] == "delete_image ami-1"
    listed, total = await env.runtime.os_snapshots.list_snapshots(env.admin)
    assert [r.name for r in listed] == ["old-snap"] and total == 1
    source = await stored(env, "hpc")  # deleting a snapshot leaves its cluster running
    assert source is not None and source.observed_state == "active"
    env.now += timedelta(minutes=59)
    await env.reconcile(snapshot_id)
    assert (await env.show("old-snap")).status == "deleted"
    env.now += timedelta(minutes=1)
    with pytest.raises(NotFound):  # past the hour: hidden even before a worker removes it
        await env.show("old-snap")
    assert (await env.runtime.os_snapshots.list_snapshots(env.admin))[1] == 0
    await env.reconcile(snapshot_id)
    assert await stored(env, "old-snap") is None
    assert ImageLab.calls.count("delete_image ami-1") == 1


async def test_clusters_boot_from_a_provisioned_snapshot_by_name_and_keep_it(env: Env) -> None:
    await env.cluster("hpc")
    snapshot_id = await env.snapshot("gold")
    await env.reconcile(snapshot_id)
    with pytest.raises(Invalid) as raised:  # not yet provisioned
        await env.placement(controller={"region": "r1", "image": "gold"})
    assert raised.value.field == "cloud.controller.image" and "provisioning" in str(raised.value)
    set_image("ami-1", ImageState.AVAILABLE)
    await env.reconcile(snapshot_id)
    placed = await env.placement(
        controller={"region": "r1", "image": "gold"},
        partitions=[{"name": "a", "elastic_image": "pw://root/gold"}],
    )
    assert placed["controller_image"] == "ami-1"
    assert placed["partitions"][0]["image"] == "ami-1"
    with pytest.raises(Invalid) as raised:  # made in r1, not r2
        await env.placement(controller={"region": "r2", "image": "gold"})
    assert raised.value.field == "cloud.controller.image" and "r1" in str(raised.value)
    await env.cluster("copy", state="stopped", controller={"region": "r1", "image": "gold"})
    await env.cluster("gone", state="off", partitions=[{"name": "a", "elastic_image": "gold"}])
    with pytest.raises(Conflict) as conflict:
        await env.runtime.os_snapshots.delete(env.admin, ResourceRef("root", "gold"))
    assert "pw://root/copy" in conflict.value.message and "gone" not in conflict.value.message
    assert (await env.show("gold")).status == "provisioned"


# --- static IPs ---------------------------------------------------------------------------------


async def test_a_static_ip_is_allocated_once_and_shows_its_address(env: Env) -> None:
    with pytest.raises(Invalid) as raised:
        await env.runtime.static_ips.create(
            env.admin, StaticIpCreate(name="web", cloud_account="plain", region="r1")
        )
    assert raised.value.field == "cloud_account" and "static IPs" in raised.value.message
    with pytest.raises(Invalid) as raised:
        await env.runtime.static_ips.create(
            env.admin, StaticIpCreate(name="web", cloud_account="lab", region="r9")
        )
    assert raised.value.field == "region"
    with pytest.raises(Invalid) as raised:
        await env.runtime.static_ips.create(
            env.admin, StaticIpCreate(name="Web!", cloud_account="lab", region="r1")
        )
    assert raised.value.field == "name"
    row = await env.runtime.static_ips.create(
        env.admin, StaticIpCreate(name="web", cloud_account="lab", region="r1")
    )
    assert row.id is not None
    assert (await env.ip("web")).status == "provisioning"
    await env.reconcile(row.id)
    shown = await env.ip("web")
    assert shown.status == "provisioned" and shown.address == "203.0.113.10"
    assert shown.ip_id == "eipalloc-10"
    with pytest.raises(Conflict):
        await env.runtime.static_ips.create(
            env.admin, StaticIpCreate(name="web", cloud_account="lab", region="r1")
        )
    # a reconcile again (a worker killed before it wrote the result) finds the same address
    async with env.runtime.db.session() as session:
        await session.exec(
            update(Resource).where(col(Resource.id) == row.id).values(observed_generation=0)
        )
        await session.commit()
    await env.reconcile(row.id)
    assert (await env.ip("web")).address == "203.0.113.10" and len(ImageLab.addresses) == 1
    # infrastructure made with the account: the account cannot be deleted under it
    with pytest.raises(Conflict) as refused:
        await env.runtime.cloud_accounts.delete(env.admin, "lab")
    assert "static-ip" in refused.value.message and "web" in refused.value.message


async def test_a_static_ip_goes_to_one_running_cluster_and_is_released_when_unused(
    env: Env,
) -> None:
    from corral_core.cloud_resources.attach import static_ip_id

    row = await env.runtime.static_ips.create(
        env.admin, StaticIpCreate(name="web", cloud_account="lab", region="r1")
    )
    assert row.id is not None

    async def attach(cluster: str, region: str = "r1", value: str = "web") -> str | None:
        spec = msgspec.convert(
            {
                "type": "cloud",
                "cloud": {
                    "cloud_account": "lab",
                    "controller": {"region": region, "static_ip": value},
                    "partitions": [{"name": "a"}],
                },
            },
            CloudClusterSpec,
        )
        return await static_ip_id(
            env.runtime.db,
            org=env.admin.org,
            owner=env.admin.username,
            cluster=f"pw://root/{cluster}",
            cloud=spec.cloud,
            region=region,
        )

    with pytest.raises(Invalid) as raised:  # not allocated yet
        await attach("hpc")
    assert raised.value.field == "cloud.controller.static_ip"
    await env.reconcile(row.id)
    assert await attach("hpc") == "eipalloc-10"
    with pytest.raises(Invalid) as raised:
        await attach("hpc", value="nope")
    assert raised.value.field == "cloud.controller.static_ip" and "nope" in str(raised.value)
    with pytest.raises(Invalid) as raised:
        await attach("hpc", region="r2")
    assert "r1" in str(raised.value)
    await env.cluster("hpc", controller={"region": "r1", "static_ip": "web"})
    assert await attach("hpc") == "eipalloc-10"  # its own
    with pytest.raises(Invalid) as raised:  # another running cluster has it
        await attach("other")
    assert raised.value.field == "cloud.controller.static_ip"
    assert "pw://root/hpc" in str(raised.value)
    assert (await env.ip("web")).used_by == ["pw://root/hpc"]
    with pytest.raises(Conflict) as conflict:
        await env.runtime.static_ips.delete(env.admin, ResourceRef("root", "web"))
    assert "pw://root/hpc" in conflict.value.message
    async with env.runtime.db.session() as session:  # the cluster is destroyed
        await session.exec(
            update(Resource)
            .where(col(Resource.name) == "hpc")
            .values(observed_state="off", desired_state="off")
        )
        await session.commit()
    shown = await env.runtime.static_ips.delete(env.admin, ResourceRef("root", "web"))
    assert shown.observed_state == "deleting"
    ImageLab.addresses["corral-" + str(row.id) + "-web"] = msgspec.structs.replace(
        ImageLab.addresses[f"corral-{row.id}-web"], attached_to="i-late"
    )
    await env.reconcile(row.id)  # the cloud still has it attached: retried, not lost
    assert (await env.ip("web")).status == "deleting"
    ImageLab.addresses[f"corral-{row.id}-web"] = msgspec.structs.replace(
        ImageLab.addresses[f"corral-{row.id}-web"], attached_to=None
    )
    async with env.runtime.db.session() as session:
        await session.exec(
            update(Resource).where(col(Resource.id) == row.id).values(next_reconcile_at=utcnow())
        )
        await session.commit()
    await env.reconcile(row.id)
    assert await stored(env, "web") is None and ImageLab.addresses == {}
