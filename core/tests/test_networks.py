"""Networks through the kernel: validation, the provisioning state machine, edits, failures,
deletion (also after a kill and with the cloud account) and where clusters are placed.

The provider here, ``netlab``, stands in for a cloud's network API, which cannot run in the
kernel's tests (they may not import plugins; the AWS plugin is tested against moto in its own
package). It keeps networks in memory, reports one step per resource like a cloud plugin, and
can be held at a gate or made to fail, so every state can be observed from outside.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from corral_core.clusters.models import CloudAccountRecord
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.db import utcnow
from corral_core.identity.models import User
from corral_core.identity.roles import Principal
from corral_core.migrations import upgrade
from corral_core.networks.placement import cluster_network
from corral_core.plugins import PluginSource, load_kernel
from corral_core.plugins.manager import builtin_sources
from corral_core.resources.models import Resource
from corral_core.runtime import Runtime
from corral_core.testing import ADMIN_PASSWORD, TestDeployment
from corral_sdk.errors import Conflict, Invalid, NotFound, ProviderError, TransportError
from corral_sdk.features import CloudFeature
from corral_sdk.plugin import hookimpl
from corral_sdk.providers import StepState
from corral_sdk.providers.cloud import (
    CloudAccount,
    CloudProviderBase,
    CredentialCheck,
    Image,
    InstanceType,
    NetworkInfo,
    NetworkRegionInfo,
    NetworkSpec,
    Region,
)
from corral_sdk.records import CloudRecord
from corral_sdk.wire import (
    CloudAccountCreate,
    CloudClusterDefinition,
    NetworkCreate,
    NetworkRegionDefinition,
    NetworkUpdate,
)

pytestmark = pytest.mark.anyio


class NetLab(CloudProviderBase):
    """Networks in memory, keyed by the kernel's ``corral-network`` tag (so a create called
    again finds what the first made, as a real provider finds it by tags)."""

    networks: dict[str, NetworkInfo] = {}
    calls: list[str] = []
    gate: asyncio.Event | None = None
    entered: asyncio.Event | None = None
    fail_region = "fail-1"
    transient_failures = 0

    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        return CredentialCheck(principal="lab")

    async def list_regions(self, account: CloudAccount) -> list[Region]:
        return [Region(name="r1", zones=("r1a", "r1b")), Region(name="r2", zones=("r2a",))]

    async def list_instance_types(self, account: CloudAccount, region: str) -> list[InstanceType]:
        return [InstanceType(name="small", vcpus=1, memory_gib=1)]

    async def list_images(self, account: CloudAccount, region: str) -> list[Image]:
        return [Image(id="img", name="img", latest=True)]

    async def create_instances(self, account: Any, request: Any, *, log: Any) -> Any:
        raise AssertionError("not used")

    async def describe_instances(self, account: Any, region: Any, **kw: Any) -> Any:
        return []

    async def start_instances(self, *args: Any) -> None: ...
    async def stop_instances(self, *args: Any) -> None: ...
    async def delete_instances(self, *args: Any) -> None: ...

    async def _wait(self) -> None:
        cls = type(self)
        if cls.entered is not None:
            cls.entered.set()
        if cls.gate is not None:
            await cls.gate.wait()

    async def _provision(self, spec: NetworkSpec, log: Any, known: set[str]) -> NetworkInfo:
        cls = type(self)
        if cls.transient_failures:
            cls.transient_failures -= 1
            raise TransportError("the cloud API did not answer", retryable=True)
        key = spec.tags["corral-network"]
        regions = []
        for region in spec.regions:
            if region.region in known:
                await log.step(f"VPC {region.region}", StepState.COMPLETED, f"vpc-{region.region}")
                await log.step(f"Subnet {region.region}", StepState.COMPLETED)
            else:
                await log.step(f"VPC {region.region}", StepState.PENDING)
                await log.step(f"Subnet {region.region}", StepState.PENDING)
                await log.step(f"VPC {region.region}", StepState.RUNNING)
                await self._wait()
                if region.region == cls.fail_region:
                    await log.step(f"VPC {region.region}", StepState.FAILED, "quota exceeded")
                    raise ProviderError(f"VPC quota exceeded in {region.region}")
                await log.step(f"VPC {region.region}", StepState.COMPLETED, f"vpc-{region.region}")
                await log.step(f"Subnet {region.region}", StepState.COMPLETED)
            regions.append(
                NetworkRegionInfo(
                    region=region.region,
                    cidr=region.cidr,
                    network_id=f"vpc-{region.region}",
                    subnet_ids=(f"subnet-{region.region}",),
                    security_group_ids=(f"sg-{region.region}",),
                    details={f"subnet:{region.region}b": f"subnet-{region.region}b"},
                )
            )
        await log.log(f"network {spec.name} has {len(regions)} regions")
        cls.networks[key] = NetworkInfo(id=f"net-{key}", name=spec.name, regions=tuple(regions))
        return cls.networks[key]

    async def check_network(self, account: Any, spec: NetworkSpec) -> None:
        return None  # the stand-in provisions any mode

    async def create_network(self, account: Any, spec: NetworkSpec, *, log: Any) -> NetworkInfo:
        type(self).calls.append(f"create {spec.name}")
        existing = type(self).networks.get(spec.tags["corral-network"])
        known = {r.region for r in existing.regions} if existing else set()
        return await self._provision(spec, log, known)

    async def update_network(
        self, account: Any, network: NetworkInfo, spec: NetworkSpec, *, log: Any
    ) -> NetworkInfo:
        type(self).calls.append(f"update {spec.name}")
        return await self._provision(spec, log, {r.region for r in network.regions})

    async def delete_network(self, account: Any, network: NetworkInfo, *, log: Any) -> None:
        type(self).calls.append(f"delete {network.name}")
        for region in network.regions:
            await log.step(f"VPC {region.region}", StepState.RUNNING)
            await self._wait()
            await log.step(f"Subnet {region.region}", StepState.COMPLETED)
            await log.step(f"VPC {region.region}", StepState.COMPLETED)
        type(self).networks.pop(network.id.removeprefix("net-"), None)


class NoNetworks(NetLab):
    """A cloud without networks (as the local cloud)."""


class NetLabPlugin:
    @hookimpl
    def corral_register_clouds(self) -> list[CloudRecord]:
        return [
            CloudRecord(name="netlab", factory=NetLab, features=frozenset({CloudFeature.NETWORKS})),
            CloudRecord(name="nonet", factory=NoNetworks),
        ]


class Env:
    def __init__(self, runtime: Runtime, admin: Principal) -> None:
        self.runtime = runtime
        self.admin = admin
        self.networks = runtime.networks

    async def create(self, name: str, *regions: tuple[str, str], account: str = "lab") -> int:
        row = await self.networks.create(
            self.admin,
            NetworkCreate(
                name=name,
                cloud_account=account,
                regions=[NetworkRegionDefinition(region=r, cidr=c) for r, c in regions],
            ),
        )
        assert row.id is not None
        return row.id

    async def show(self, name: str) -> Any:
        return await self.networks.details(await self.networks.get(self.admin, name))

    def steps(self, shown: Any) -> dict[str, str]:
        return {s.name: s.status for s in shown.steps}


@pytest.fixture
async def env(deployment: TestDeployment) -> AsyncIterator[Env]:
    NetLab.networks, NetLab.calls = {}, []
    NetLab.gate = NetLab.entered = None
    NetLab.transient_failures = 0
    source = PluginSource(
        name="netlab", distribution="corral-netlab", version="1", load=NetLabPlugin
    )
    runtime = Runtime(
        deployment.settings(), load_kernel(sources=[*builtin_sources(), source]), "all"
    )
    upgrade(runtime.db)
    await runtime.identity.bootstrap("default", "root", ADMIN_PASSWORD)
    async with runtime.db.session() as session:
        user = (await session.exec(select(User).where(col(User.username) == "root"))).one()
    admin = await runtime.authn.principal(user)
    for name, provider in (("lab", "netlab"), ("other", "netlab"), ("local", "nonet")):
        await runtime.cloud_accounts.create(admin, CloudAccountCreate(name=name, provider=provider))
    try:
        yield Env(runtime, admin)
    finally:
        await runtime.close()


async def reconcile(env: Env, resource_id: int) -> None:
    await env.runtime.reconciler.reconcile(resource_id)


async def stored(env: Env, name: str) -> Resource | None:
    async with env.runtime.db.session() as session:
        return (
            await session.exec(
                select(Resource)
                .where(col(Resource.kind) == "network")
                .where(col(Resource.name) == name)
            )
        ).first()


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regions", "field"),
    [
        ((("r1", "10.0.0.0/16"), ("r2", "10.0.128.0/17")), "regions.1.cidr"),
        ((("r1", "10.0.0.0/16"), ("r1", "10.1.0.0/16")), "regions.1.region"),
        ((("r1", "10.0.0.0/33"),), "regions.0.cidr"),
        ((), "regions"),
    ],
)
async def test_invalid_cidrs_and_regions_are_refused_naming_the_field_and_nothing_is_stored(
    env: Env, regions: tuple[tuple[str, str], ...], field: str
) -> None:
    with pytest.raises(Invalid) as raised:
        await env.create("net1", *regions)
    assert raised.value.field == field
    assert await stored(env, "net1") is None
    assert NetLab.calls == []


async def test_names_and_accounts_are_checked(env: Env) -> None:
    for bad in ("Net1", "net-1", "n" * 64):
        with pytest.raises(Invalid) as raised:
            await env.create(bad, ("r1", "10.0.0.0/16"))
        assert raised.value.field == "name"
    with pytest.raises(Invalid) as raised:
        await env.create("net1", ("r1", "10.0.0.0/16"), account="nope")
    assert raised.value.field == "cloud_account"
    with pytest.raises(Invalid) as raised:  # a provider without networks
        await env.create("net1", ("r1", "10.0.0.0/16"), account="local")
    assert raised.value.field == "cloud_account" and "no networks" in raised.value.message
    await env.create("net1", ("r1", "10.0.0.0/16"))
    with pytest.raises(Conflict):
        await env.create("net1", ("r2", "10.1.0.0/16"))


# --- the state machine ------------------------------------------------------------------------


async def test_create_provisions_every_step_and_stores_the_cloud_ids(env: Env) -> None:
    network_id = await env.create("net1", ("r1", "10.0.0.0/16"), ("r2", "10.1.0.0/16"))
    assert (await env.show("net1")).status == "Pending"
    await reconcile(env, network_id)
    shown = await env.show("net1")
    assert shown.status == "Provisioned", shown.reason
    assert env.steps(shown) == {
        "VPC r1": "Provisioned",
        "Subnet r1": "Provisioned",
        "VPC r2": "Provisioned",
        "Subnet r2": "Provisioned",
    }
    assert shown.log == ["network net1 has 2 regions"]
    assert [(r.region, r.network_id, r.subnet_ids) for r in shown.resources] == [
        ("r1", "vpc-r1", ["subnet-r1"]),
        ("r2", "vpc-r2", ["subnet-r2"]),
    ]
    assert NetLab.calls == ["create net1"]


async def test_steps_show_provisioning_while_the_provider_works_and_edits_are_refused(
    env: Env,
) -> None:
    network_id = await env.create("net1", ("r1", "10.0.0.0/16"))
    NetLab.gate, NetLab.entered = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(reconcile(env, network_id))
    await NetLab.entered.wait()
    shown = await env.show("net1")
    assert shown.status == "Provisioning"
    assert env.steps(shown) == {"VPC r1": "Provisioning", "Subnet r1": "Pending"}
    with pytest.raises(Conflict) as raised:
        await env.networks.update(
            env.admin,
            "net1",
            NetworkUpdate(regions=[NetworkRegionDefinition(region="r2", cidr="10.9.0.0/16")]),
        )
    assert raised.value.reason == "network-provisioning"
    NetLab.gate.set()
    await task
    assert (await env.show("net1")).status == "Provisioned"


async def test_an_edit_reprovisions_and_only_the_new_region_goes_through_pending(
    env: Env,
) -> None:
    network_id = await env.create("net1", ("r1", "10.0.0.0/16"))
    await reconcile(env, network_id)
    with pytest.raises(Invalid) as raised:  # the same validation as on create
        await env.networks.update(
            env.admin,
            "net1",
            NetworkUpdate(
                regions=[
                    NetworkRegionDefinition(region="r1", cidr="10.0.0.0/16"),
                    NetworkRegionDefinition(region="r2", cidr="10.0.5.0/24"),
                ]
            ),
        )
    assert raised.value.field == "regions.1.cidr"
    await env.networks.update(
        env.admin,
        "net1",
        NetworkUpdate(
            regions=[
                NetworkRegionDefinition(region="r1", cidr="10.0.0.0/16"),
                NetworkRegionDefinition(region="r2", cidr="10.1.0.0/16"),
            ]
        ),
    )
    assert (await env.show("net1")).status == "Pending"
    NetLab.gate, NetLab.entered = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(reconcile(env, network_id))
    await NetLab.entered.wait()
    assert env.steps(await env.show("net1")) == {
        "VPC r1": "Provisioned",
        "Subnet r1": "Provisioned",
        "VPC r2": "Provisioning",
        "Subnet r2": "Pending",
    }
    NetLab.gate.set()
    await task
    shown = await env.show("net1")
    assert shown.status == "Provisioned"
    assert [r.region for r in shown.resources] == ["r1", "r2"]
    assert NetLab.calls == ["create net1", "update net1"]


async def test_a_failure_fails_the_network_with_the_reason_and_delete_recovers(env: Env) -> None:
    network_id = await env.create("net1", ("r1", "10.0.0.0/16"), ("fail-1", "10.1.0.0/16"))
    await reconcile(env, network_id)
    shown = await env.show("net1")
    assert shown.status == "Failed"
    assert shown.reason == "VPC quota exceeded in fail-1"
    assert env.steps(shown)["VPC fail-1"] == "Failed"
    assert env.steps(shown)["VPC r1"] == "Provisioned"
    await reconcile(env, network_id)  # no retry of its own
    assert NetLab.calls == ["create net1"]
    with pytest.raises(Conflict) as raised:
        await env.networks.update(env.admin, "net1", NetworkUpdate(mode="other"))
    assert raised.value.reason == "network-failed"
    await env.networks.delete(env.admin, "net1")
    await reconcile(env, network_id)
    assert await stored(env, "net1") is None
    assert NetLab.networks == {}
    await env.create("net1", ("r1", "10.0.0.0/16"))  # and created again


async def test_an_unreachable_api_is_retried_not_failed(env: Env) -> None:
    network_id = await env.create("net1", ("r1", "10.0.0.0/16"))
    NetLab.transient_failures = 1
    await reconcile(env, network_id)
    row = await stored(env, "net1")
    assert row is not None and row.observed_state == "provisioning"
    assert row.reason == "the cloud API did not answer" and row.next_reconcile_at is not None
    await reconcile(env, network_id)
    assert (await env.show("net1")).status == "Provisioned"


async def test_delete_shows_deleting_removes_steps_as_they_go_and_then_the_network(
    env: Env,
) -> None:
    network_id = await env.create("net1", ("r1", "10.0.0.0/16"), ("r2", "10.1.0.0/16"))
    await reconcile(env, network_id)
    deleting = await env.networks.delete(env.admin, "net1")
    assert (await env.networks.details(deleting)).status == "Deleting"
    NetLab.gate, NetLab.entered = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(reconcile(env, network_id))
    await NetLab.entered.wait()
    shown = await env.show("net1")
    assert shown.status == "Deleting"
    assert set(env.steps(shown).values()) == {"Deleting"}
    NetLab.gate.set()
    await task
    assert await stored(env, "net1") is None
    assert NetLab.networks == {}
    with pytest.raises(NotFound):
        await env.networks.get(env.admin, "net1")
    assert {"resource.deleted", "network.deleted"} <= {
        e.type for e in await env.runtime.events.read()
    }


async def test_a_create_killed_midway_resumes_and_makes_one_network(env: Env) -> None:
    network_id = await env.create("net1", ("r1", "10.0.0.0/16"))
    NetLab.gate, NetLab.entered = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(reconcile(env, network_id))
    await NetLab.entered.wait()
    task.cancel()  # the worker dies; its lease stays until it expires
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await stored(env, "net1")
    assert row is not None and row.observed_state == "provisioning" and row.lease_owner
    await reconcile(env, network_id)  # another worker: the lease is still held
    assert NetLab.calls == ["create net1"]
    async with env.runtime.db.session() as session:
        await session.exec(
            update(Resource)
            .where(col(Resource.id) == network_id)
            # the lease's time passes (the sweep looks again when the lease ends)
            .values(
                lease_expires_at=utcnow() - timedelta(seconds=1),
                next_reconcile_at=utcnow() - timedelta(seconds=1),
            )
        )
        await session.commit()
    NetLab.gate.set()
    assert network_id in await env.runtime.reconciler.due()
    await reconcile(env, network_id)
    assert (await env.show("net1")).status == "Provisioned"
    assert NetLab.calls == ["create net1", "create net1"]
    assert len(NetLab.networks) == 1


# --- clusters and accounts --------------------------------------------------------------------


async def cluster(env: Env, name: str, network: str, state: str = "active") -> int:
    created = await env.runtime.resources.create(
        CLUSTER_KIND,
        org=env.admin.org,
        owner=env.admin.username,
        name=name,
        spec={
            "type": "cloud",
            "cloud": {"cloud_account": "lab", "network": network, "partitions": [{"name": "a"}]},
        },
        desired_state="off",
    )
    await env.runtime.resources.mark_observed(created.id, state, unless=())
    return created.id


async def test_a_network_clusters_run_on_cannot_be_deleted(env: Env) -> None:
    network_id = await env.create("net1", ("r1", "10.0.0.0/16"))
    await reconcile(env, network_id)
    await cluster(env, "hpc", "net1")
    await cluster(env, "old", "net1", state="off")
    with pytest.raises(Conflict) as raised:
        await env.networks.delete(env.admin, "net1")
    assert "root/hpc" in raised.value.message and "old" not in raised.value.message
    assert (await env.show("net1")).status == "Provisioned"


async def test_deleting_the_account_deprovisions_its_networks_then_goes(env: Env) -> None:
    first = await env.create("net1", ("r1", "10.0.0.0/16"))
    second = await env.create("net2", ("r2", "10.1.0.0/16"))
    other = await env.create("net3", ("r1", "10.0.0.0/16"), account="other")
    for network_id in (first, second, other):
        await reconcile(env, network_id)
    await env.runtime.cloud_accounts.delete(env.admin, "lab")
    assert [(await env.show(n)).status for n in ("net1", "net2", "net3")] == [
        "Deleting",
        "Deleting",
        "Provisioned",
    ]
    account = await env.runtime.cloud_accounts.get(env.admin.org, "lab")
    assert account.deleting_at is not None
    with pytest.raises(Conflict):
        await env.create("net4", ("r1", "10.0.0.0/16"))
    await reconcile(env, first)
    await env.runtime.cloud_accounts.get(env.admin.org, "lab")  # still there: net2 is left
    await reconcile(env, second)
    with pytest.raises(NotFound):
        await env.runtime.cloud_accounts.get(env.admin.org, "lab")
    assert [n.name for n in NetLab.networks.values()] == ["net3"]


async def test_account_deletion_is_refused_while_its_clusters_are_not_off(env: Env) -> None:
    await cluster(env, "hpc", "")
    with pytest.raises(Conflict):
        await env.runtime.cloud_accounts.delete(env.admin, "lab")
    async with env.runtime.db.session() as session:
        row = (
            await session.exec(
                select(CloudAccountRecord).where(col(CloudAccountRecord.name) == "lab")
            )
        ).one()
    assert row.deleting_at is None


async def test_clusters_are_placed_in_their_networks_region(env: Env) -> None:
    def cloud(network: str, account: str = "lab") -> CloudClusterDefinition:
        return msgspec.convert(
            {"cloud_account": account, "network": network}, CloudClusterDefinition
        )

    async def place(network: str, region: str = "r1", **kw: Any) -> Any:
        return await cluster_network(
            env.runtime.db,
            env.runtime.kernel,
            env.admin.org,
            cloud(network, **kw),
            "netlab",
            region,
        )

    network_id = await env.create("net1", ("r1", "10.0.0.0/16"))
    for network, region, needle in (
        ("", "r1", "needs a network"),
        ("nope", "r1", "no network named"),
        ("net1", "r1", "is Pending"),
    ):
        with pytest.raises(Invalid) as raised:
            await place(network, region)
        assert raised.value.field == "cloud.network" and needle in raised.value.message
    await reconcile(env, network_id)
    with pytest.raises(Invalid) as raised:
        await place("net1", "r2")
    assert "has no region r2" in raised.value.message
    with pytest.raises(Invalid) as raised:
        await place("net1", account="other")
    assert "belongs to cloud account 'lab'" in raised.value.message
    attached = await place("net1")
    assert attached is not None
    assert attached.placement(("r1b",)).subnet_id == "subnet-r1b"  # the zone's own subnet
    placed = attached.placement(("r1a",))
    assert (placed.network_id, placed.subnet_id, placed.security_group_ids) == (
        "vpc-r1",
        "subnet-r1",
        ("sg-r1",),
    )
    assert attached.options["name"] == "net1" and attached.options["cidr"] == "10.0.0.0/16"
    # a cloud without networks takes clusters without one
    assert (
        await cluster_network(
            env.runtime.db, env.runtime.kernel, env.admin.org, cloud("", "local"), "nonet", "r1"
        )
        is None
    )


async def test_a_cloud_clusters_network_is_looked_up_through_its_account(env: Env) -> None:
    from corral_core.clusters.spec import CloudClusterSpec

    network_id = await env.create("net1", ("r1", "10.0.0.0/16"))
    await reconcile(env, network_id)
    spec = msgspec.convert(
        {
            "type": "cloud",
            "cloud": {"cloud_account": "lab", "network": "net1", "partitions": [{"name": "a"}]},
        },
        CloudClusterSpec,
    )
    attached = await env.runtime.cloud_clusters.network_of(env.admin.org, spec, "r1")
    assert attached is not None and attached.placement().network_id == "vpc-r1"
    local = msgspec.convert(
        {"type": "cloud", "cloud": {"cloud_account": "local", "partitions": [{"name": "a"}]}},
        CloudClusterSpec,
    )
    assert await env.runtime.cloud_clusters.network_of(env.admin.org, local, "r1") is None
