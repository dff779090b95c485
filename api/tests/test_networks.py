"""Networks over the API: who may create and change them (org:admin or the cloud account's
``network`` permission, org-wide or per group), validation errors naming the field, 409s, and
another organization's networks answering 404; the provider's rules for clusters on a network.

No worker runs here, so networks stay as the API left them (``Pending``, ``Deleting``) unless a
test runs the reconciler itself, as a worker would; the provisioning is tested in
core/tests/test_networks.py. ``apinet`` stands in for a cloud with networks (API tests may not
import plugins): its networks are ids in memory, and its rule for clusters on them is AWS's
``controller-nat`` one (every partition in the controller's zone), which the AWS plugin tests
against its own networks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from api_support import Api, LampPlugin, make_runtime
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from corral_api.app import create_app
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.plugins import PluginSource
from corral_core.resources.models import Resource
from corral_core.testing import ADMIN_PASSWORD, ADMIN_USERNAME, TestDeployment
from corral_sdk.errors import Invalid
from corral_sdk.features import CloudFeature, SchedulerFeature
from corral_sdk.plugin import CloudRecord, SchedulerRecord, hookimpl
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
from corral_sdk.providers.scheduler import SchedulerBase

pytestmark = pytest.mark.anyio


class ApiNet(CloudProviderBase):
    cluster_checks: list[tuple[str, str, str, dict[str, list[str]]]] = []
    """What check_cluster_network was asked: network id, mode, controller zone, partitions."""

    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        return CredentialCheck(principal="apinet")

    async def list_regions(self, *args: Any) -> Any:
        return [Region(name="r1", zones=("r1a", "r1b"))]

    async def list_instance_types(self, *args: Any) -> Any:
        return [InstanceType(name="small", vcpus=1, memory_gib=2)]

    async def list_images(self, *args: Any) -> Any:
        return [Image(id="img-1", name="base", latest=True)]

    async def create_instances(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("API tests never start a cluster")

    async def describe_instances(self, *args: Any, **kwargs: Any) -> Any:
        return []

    async def start_instances(self, *args: Any) -> None: ...
    async def stop_instances(self, *args: Any) -> None: ...
    async def delete_instances(self, *args: Any) -> None: ...

    async def check_network(self, account: CloudAccount, spec: NetworkSpec) -> None:
        if spec.mode not in ("", "private", "controller-nat"):
            raise Invalid(f"no networking mode {spec.mode!r}", field="mode")
        if spec.mode == "private" and not spec.options.get("transit_gateway_id"):
            raise Invalid("a private network needs its gateway", field="options.transit_gateway_id")

    async def check_cluster_network(
        self,
        account: CloudAccount,
        network: NetworkRegionInfo,
        mode: str,
        controller_zone: str,
        partition_zones: Any,
    ) -> None:
        asked = {name: list(zones) for name, zones in partition_zones.items()}
        ApiNet.cluster_checks.append((network.network_id, mode, controller_zone, asked))
        if mode != "controller-nat":
            return
        for index, (name, zones) in enumerate(asked.items()):
            if any(zone != controller_zone for zone in zones):
                raise Invalid(
                    f"partition {name} must be in the controller's zone {controller_zone}",
                    field=f"cloud.partitions.{index}.zones",
                )

    async def create_network(self, account: Any, spec: NetworkSpec, *, log: Any) -> NetworkInfo:
        regions = tuple(
            NetworkRegionInfo(region=r.region, cidr=r.cidr, network_id=f"vpc-{spec.name}")
            for r in spec.regions
        )
        return NetworkInfo(id=spec.name, name=spec.name, regions=regions)


class ElasticScheduler(SchedulerBase):
    def __init__(self, runner: Any, config: Any) -> None:
        pass


class ApiNetPlugin:
    @hookimpl
    def corral_register_clouds(self) -> list[CloudRecord]:
        return [
            CloudRecord(name="apinet", factory=ApiNet, features=frozenset({CloudFeature.NETWORKS})),
            CloudRecord(name="flat", factory=ApiNet),
        ]

    @hookimpl
    def corral_register_schedulers(self) -> list[SchedulerRecord]:
        features = frozenset({SchedulerFeature.ELASTIC_NODES})
        return [SchedulerRecord(name="elastic", factory=ElasticScheduler, features=features)]


@pytest.fixture
async def api(deployment: TestDeployment) -> AsyncIterator[Api]:
    runtime = make_runtime(
        deployment,
        PluginSource(name="lamps", distribution="corral-lamps", version="1", load=LampPlugin),
        PluginSource(name="apinet", distribution="corral-apinet", version="1", load=ApiNetPlugin),
    )
    await runtime.identity.bootstrap("default", ADMIN_USERNAME, ADMIN_PASSWORD)
    async with AsyncTestClient(app=create_app(runtime)) as client:
        yield Api(client, runtime)
    await runtime.close()


NET = {"name": "net1", "cloud_account": "lab", "regions": [{"region": "r1", "cidr": "10.0.0.0/16"}]}


@pytest.fixture
async def acme(api: Api) -> dict[str, dict[str, str]]:
    """acme: alice (org:admin), bob (group team), carol (no group), sam (org:settings only);
    cloud accounts lab (with networks) and flat (without)."""
    alice = await api.org_with_admin("acme", "alice")
    await api.group(alice, "team")
    await api.group(alice, "settings", roles=("org:settings",))
    people = {
        "alice": alice,
        "bob": await api.user(alice, "bob", groups=("team",)),
        "carol": await api.user(alice, "carol"),
        "sam": await api.user(alice, "sam", groups=("settings",)),
    }
    for name, provider in (("lab", "apinet"), ("flat", "flat")):
        created = await api.client.post(
            "/api/cloud-accounts", json={"name": name, "provider": provider}, headers=alice
        )
        assert created.status_code == 201, created.text
    return people


def field_of(response: Any) -> str:
    return str(response.json()["errors"][0]["field"])


async def test_the_network_permission_comes_from_org_admin_a_group_or_the_whole_org(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    def net(name: str) -> dict[str, Any]:
        return {**NET, "name": name}

    for who in ("bob", "carol", "sam"):
        refused = await api.client.post("/api/networks", json=net(who), headers=acme[who])
        assert refused.status_code == 403, (who, refused.text)
        assert "network permission" in refused.json()["detail"]
    access = await api.client.get("/api/cloud-accounts/lab/access", headers=acme["alice"])
    assert access.json() == {"org_wide": False, "groups": []}
    shared = await api.client.put(
        "/api/cloud-accounts/lab/access", json={"groups": ["team"]}, headers=acme["bob"]
    )
    assert shared.status_code == 403  # only org admins share accounts
    shared = await api.client.put(
        "/api/cloud-accounts/lab/access", json={"groups": ["team"]}, headers=acme["alice"]
    )
    assert shared.status_code == 200 and shared.json() == {"org_wide": False, "groups": ["team"]}
    made = await api.client.post("/api/networks", json=net("bobs"), headers=acme["bob"])
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "Pending" and made.json()["provider"] == "apinet"
    assert (
        await api.client.post("/api/networks", json=net("carols"), headers=acme["carol"])
    ).status_code == 403
    # every member reads the organization's networks
    listed = await api.client.get("/api/networks", headers=acme["carol"])
    assert [n["name"] for n in listed.json()["items"]] == ["bobs"]
    shared = await api.client.put(
        "/api/cloud-accounts/lab/access", json={"org_wide": True}, headers=acme["alice"]
    )
    assert shared.json() == {"org_wide": True, "groups": []}
    assert (
        await api.client.post("/api/networks", json=net("carols"), headers=acme["carol"])
    ).status_code == 201
    # a group created afterwards holds it too (sam's group was already there; a new one)
    await api.group(acme["alice"], "late")
    dave = await api.user(acme["alice"], "dave", groups=("late",))
    assert (
        await api.client.post("/api/networks", json=net("daves"), headers=dave)
    ).status_code == 201
    assert (
        await api.client.put(
            "/api/cloud-accounts/lab/access", json={"groups": ["nope"]}, headers=acme["alice"]
        )
    ).status_code == 422


async def test_cluster_types_of_a_cloud_with_networks_follow_the_network_permission(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    """Spec §2.8: a group has a provider's cluster types when it holds ``network`` on one of
    that provider's accounts; a provider without networks is open to every member."""

    async def types(who: str) -> dict[str, bool]:
        listed = await api.client.get("/api/clusters/types", headers=acme[who])
        assert listed.status_code == 200, listed.text
        return {t["provider"]: t["available"] for t in listed.json()}

    def cluster(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "cloud",
            "scheduler": "unused",
            "cloud": {"cloud_account": "lab", "partitions": [{"name": "a"}]},
        }

    assert (await types("bob"))["apinet"] is False
    assert (await types("bob"))["flat"] is True
    assert (await types("alice"))["apinet"] is True  # org admins hold it on every account
    refused = await api.client.post("/api/clusters", json=cluster("c1"), headers=acme["bob"])
    assert refused.status_code == 403, refused.text
    assert "network permission on a apinet cloud account" in refused.json()["detail"]
    await api.client.put(
        "/api/cloud-accounts/lab/access", json={"groups": ["team"]}, headers=acme["alice"]
    )
    assert (await types("bob"))["apinet"] is True
    assert (await types("carol"))["apinet"] is False
    # bob now gets past the permission to the next check (this test's scheduler is not elastic)
    allowed = await api.client.post("/api/clusters", json=cluster("c1"), headers=acme["bob"])
    assert allowed.status_code == 422, allowed.text
    assert "cannot run elastic cloud nodes" in allowed.json()["detail"]
    refused = await api.client.post("/api/clusters", json=cluster("c2"), headers=acme["carol"])
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("regions", "field"),
    [
        (
            [{"region": "r1", "cidr": "10.0.0.0/16"}, {"region": "r2", "cidr": "10.0.128.0/17"}],
            "regions.1.cidr",
        ),
        (
            [{"region": "r1", "cidr": "10.0.0.0/16"}, {"region": "r1", "cidr": "10.1.0.0/16"}],
            "regions.1.region",
        ),
        ([{"region": "r1", "cidr": "10.0.0.0/33"}], "regions.0.cidr"),
    ],
)
async def test_bad_cidrs_are_422_naming_the_field(
    api: Api, acme: dict[str, dict[str, str]], regions: list[dict[str, str]], field: str
) -> None:
    response = await api.client.post(
        "/api/networks", json={**NET, "regions": regions}, headers=acme["alice"]
    )
    assert response.status_code == 422, response.text
    assert field_of(response) == field
    assert (await api.client.get("/api/networks", headers=acme["alice"])).json()["total"] == 0


async def test_names_accounts_and_providers_are_checked(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    alice = acme["alice"]
    for body, field in (
        ({**NET, "name": "Net-1"}, "name"),
        ({**NET, "cloud_account": "nope"}, "cloud_account"),
        ({**NET, "cloud_account": "flat"}, "cloud_account"),
        # the provider's own rules, before anything is stored (CloudProvider.check_network)
        ({**NET, "mode": "bogus"}, "mode"),
        ({**NET, "mode": "private"}, "options.transit_gateway_id"),
    ):
        response = await api.client.post("/api/networks", json=body, headers=alice)
        assert response.status_code == 422, response.text
        assert field_of(response) == field
    assert (await api.client.post("/api/networks", json=NET, headers=alice)).status_code == 201
    again = await api.client.post("/api/networks", json=NET, headers=alice)
    assert again.status_code == 409


async def test_edits_wait_for_provisioning_and_delete_shows_deleting(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    alice = acme["alice"]
    assert (await api.client.post("/api/networks", json=NET, headers=alice)).status_code == 201
    edit = await api.client.patch(
        "/api/networks/net1",
        json={"regions": [{"region": "r2", "cidr": "10.2.0.0/16"}]},
        headers=alice,
    )
    assert edit.status_code == 409, edit.text  # still Pending: nothing has provisioned it
    described = await api.client.patch(
        "/api/networks/net1", json={"description": "main"}, headers=alice
    )
    assert described.status_code == 200 and described.json()["description"] == "main"
    assert (await api.client.delete("/api/networks/net1", headers=acme["bob"])).status_code == 403
    deleted = await api.client.delete("/api/networks/net1", headers=alice)
    assert deleted.status_code == 202, deleted.text
    assert deleted.json()["status"] == "Deleting"
    shown = await api.client.get("/api/networks/net1", headers=alice)
    assert shown.json()["status"] == "Deleting"


async def test_another_org_gets_404_for_networks_and_account_access(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    assert (
        await api.client.post("/api/networks", json=NET, headers=acme["alice"])
    ).status_code == 201
    gil = await api.org_with_admin("globex", "gil")
    for method, url, body in (
        ("GET", "/api/networks/net1", None),
        ("PATCH", "/api/networks/net1", {"description": "x"}),
        ("DELETE", "/api/networks/net1", None),
        ("GET", "/api/cloud-accounts/lab/access", None),
        ("PUT", "/api/cloud-accounts/lab/access", {"org_wide": True}),
    ):
        response = await api.client.request(method, url, json=body, headers=gil)
        assert response.status_code == 404, (method, url, response.text)
    listed = await api.client.get("/api/networks", headers=gil)
    assert listed.json()["items"] == [] and "acme" not in listed.text
    # globex's own account named lab is not acme's
    response = await api.client.post("/api/networks", json=NET, headers=gil)
    assert response.status_code == 422 and field_of(response) == "cloud_account"


async def test_the_providers_rules_for_clusters_on_a_network_are_422s_naming_the_field(
    api: Api, acme: dict[str, dict[str, str]]
) -> None:
    """Spec §3.4: on a controller-as-NAT network every partition is in the controller's zone.
    The kernel asks the provider (``CloudProvider.check_cluster_network``) at create, at an
    edit of the cloud definition and at start, with the zones as it resolved them."""
    alice = acme["alice"]
    ApiNet.cluster_checks = []
    made = await api.client.post(
        "/api/networks", json={**NET, "mode": "controller-nat"}, headers=alice
    )
    assert made.status_code == 201, made.text
    async with api.runtime.db.session() as session:
        network = (
            await session.exec(
                select(Resource)
                .where(col(Resource.kind) == "network")
                .where(col(Resource.name) == "net1")
            )
        ).one()
    assert network.id is not None
    await api.runtime.reconciler.reconcile(network.id)  # as a worker would: it is provisioned
    shown = (await api.client.get("/api/networks/net1", headers=alice)).json()
    assert shown["status"] == "Provisioned"

    def cluster(name: str, *partitions: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "type": "cloud",
            "scheduler": "elastic",
            "cloud": {
                "cloud_account": "lab",
                "network": "net1",
                "controller": {"region": "r1", "zone": "r1a"},
                "partitions": [{"name": "cpu", "default": True}, *partitions],
            },
        }

    # a MultiZone partition reaching past the controller's zone
    refused = await api.client.post(
        "/api/clusters",
        json=cluster("hpc", {"name": "gpu", "zones": ["r1a", "r1b"]}),
        headers=alice,
    )
    assert refused.status_code == 422, refused.text
    assert field_of(refused) == "cloud.partitions.1.zones"
    assert "controller's zone r1a" in refused.json()["detail"]
    # the provider saw the network's region, its mode and the zones as placed (cpu named none:
    # it gets the controller's)
    assert ApiNet.cluster_checks[-1] == (
        "vpc-net1",
        "controller-nat",
        "r1a",
        {"cpu": ["r1a"], "gpu": ["r1a", "r1b"]},
    )
    assert (await api.client.get("/api/clusters/alice/hpc", headers=alice)).status_code == 404

    accepted = await api.client.post(
        "/api/clusters", json=cluster("hpc", {"name": "gpu", "zones": ["r1a"]}), headers=alice
    )
    assert accepted.status_code == 201, accepted.text
    edited = await api.client.patch(
        "/api/clusters/alice/hpc",
        json={"cloud": cluster("hpc", {"name": "gpu", "zones": ["r1b"]})["cloud"]},
        headers=alice,
    )
    assert edited.status_code == 422, edited.text
    assert field_of(edited) == "cloud.partitions.1.zones"

    # a cluster defined before the rule was checked (stored as it is) is refused at start, and
    # stays off
    await api.runtime.resources.create(
        CLUSTER_KIND,
        org="acme",
        owner="alice",
        name="old",
        spec={
            "type": "cloud",
            "scheduler": "elastic",
            "cloud": cluster("old", {"name": "gpu", "zones": ["r1b"]})["cloud"],
        },
        desired_state="off",
    )
    started = await api.client.post("/api/clusters/alice/old/start", headers=alice)
    assert started.status_code == 422, started.text
    assert field_of(started) == "cloud.partitions.1.zones"
    shown = (await api.client.get("/api/clusters/alice/old", headers=alice)).json()
    assert shown["status"] == "off"
    started = await api.client.post("/api/clusters/alice/hpc/start", headers=alice)
    assert started.status_code == 202, started.text
