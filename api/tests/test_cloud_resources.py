"""OS snapshots and static IPs over the API: name rules and providers without the feature
answer 422 naming the field, another organization (and an unshared colleague) gets 404,
sharing at level ``use``, and 409 while a cluster uses one.

The provider registered here stands in for a cloud's image and address API, which cannot run
in these tests; the kernel code under test is the real one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from api_support import Api, LampPlugin, make_runtime
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlmodel import col, select

from corral_api.app import create_app
from corral_core.clusters.models import ClusterSession
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.plugins import PluginSource
from corral_core.resources.models import Resource
from corral_core.testing import ADMIN_PASSWORD, ADMIN_USERNAME, TestDeployment
from corral_sdk.features import CloudFeature
from corral_sdk.plugin import CloudRecord, hookimpl
from corral_sdk.providers.cloud import (
    CloudAccount,
    CloudProviderBase,
    CredentialCheck,
    Image,
    ImageSource,
    ImageState,
    Region,
    StaticIp,
)

pytestmark = pytest.mark.anyio


class ApiImages(CloudProviderBase):
    """Every image is available at once; addresses are numbered."""

    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        return CredentialCheck(principal="lab")

    async def list_regions(self, *args: Any) -> Any:
        return [Region(name="r1")]

    async def list_instance_types(self, *args: Any) -> Any:
        return []

    async def list_images(self, *args: Any) -> Any:
        return [Image(id="ami-7", name="x", state=ImageState.AVAILABLE)]

    async def create_image(self, account: Any, region: str, *args: Any, **kw: Any) -> Image:
        return Image(id="ami-7", name="x", region=region, source=ImageSource.ACCOUNT)

    async def allocate_static_ip(self, account: Any, region: str, name: str, **kw: Any) -> Any:
        return StaticIp(id="eipalloc-1", address="198.51.100.7", region=region)

    async def create_instances(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used")

    async def describe_instances(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used")

    async def start_instances(self, *args: Any) -> None: ...
    async def stop_instances(self, *args: Any) -> None: ...
    async def delete_instances(self, *args: Any) -> None: ...


class ApiImagesPlugin:
    @hookimpl
    def corral_register_clouds(self) -> list[CloudRecord]:
        extras = frozenset({CloudFeature.OS_SNAPSHOTS, CloudFeature.STATIC_IPS})
        return [
            CloudRecord(name="apiimages", factory=ApiImages, features=extras),
            CloudRecord(name="bare", factory=ApiImages),
        ]


@pytest.fixture
async def api(deployment: TestDeployment) -> AsyncIterator[Api]:
    runtime = make_runtime(
        deployment,
        PluginSource(name="lamps", distribution="corral-lamps", version="1", load=LampPlugin),
        PluginSource(
            name="apiimages", distribution="corral-apiimages", version="1", load=ApiImagesPlugin
        ),
    )
    await runtime.identity.bootstrap("default", ADMIN_USERNAME, ADMIN_PASSWORD)
    async with AsyncTestClient(app=create_app(runtime)) as client:
        yield Api(client, runtime)
    await runtime.close()


@pytest.fixture
async def people(api: Api) -> dict[str, dict[str, str]]:
    """acme: alice (org:admin), bob (group team); zeta: zed (org:admin)."""
    alice = await api.org_with_admin("acme", "alice")
    await api.group(alice, "team")
    found = {
        "alice": alice,
        "bob": await api.user(alice, "bob", groups=("team",)),
        "zed": await api.org_with_admin("zeta", "zed"),
    }
    for name, provider in (("lab", "apiimages"), ("bare", "bare")):
        created = await api.client.post(
            "/api/cloud-accounts", json={"name": name, "provider": provider}, headers=alice
        )
        assert created.status_code == 201, created.text
    return found


def field_of(response: Any) -> str:
    return str(response.json()["errors"][0]["field"])


async def reconcile(api: Api, owner: str, name: str) -> None:
    async with api.runtime.db.session() as session:
        row = (
            await session.exec(
                select(Resource)
                .where(col(Resource.owner) == owner)
                .where(col(Resource.name) == name)
            )
        ).one()
    assert row.id is not None
    await api.runtime.reconciler.reconcile(row.id)


async def running_cluster(api: Api, name: str, **controller: str) -> None:
    created = await api.runtime.resources.create(
        CLUSTER_KIND,
        org="acme",
        owner="alice",
        name=name,
        spec={
            "type": "cloud",
            "cloud": {
                "cloud_account": "lab",
                "partitions": [{"name": "a"}],
                "controller": {"region": "r1", **controller},
            },
        },
        desired_state="off",
    )
    await api.runtime.resources.mark_observed(created.id, "active", unless=())
    row = await api.runtime.cloud_clusters.open_session(created.id)
    async with api.runtime.db.session() as session:
        await session.exec(
            update(ClusterSession)
            .where(col(ClusterSession.id) == row.id)
            .values(controller_id="i-1")
        )
        await session.commit()


async def test_static_ips_over_the_api(api: Api, people: dict[str, dict[str, str]]) -> None:
    alice, bob, zed = people["alice"], people["bob"], people["zed"]
    body = {"name": "web", "cloud_account": "lab", "region": "r1"}
    bad = await api.client.post("/api/static-ips", json={**body, "name": "Web"}, headers=alice)
    assert bad.status_code == 422 and field_of(bad) == "name"
    bare = await api.client.post(
        "/api/static-ips", json={**body, "cloud_account": "bare"}, headers=alice
    )
    assert bare.status_code == 422 and field_of(bare) == "cloud_account"
    made = await api.client.post("/api/static-ips", json=body, headers=alice)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "provisioning" and made.json()["uri"] == "pw://alice/web"
    await reconcile(api, "alice", "web")
    shown = await api.client.get("/api/static-ips/alice/web", headers=alice)
    assert shown.json()["status"] == "provisioned"
    assert shown.json()["address"] == "198.51.100.7"
    for who in (zed, bob):  # another organization, and a colleague it is not shared with
        assert (await api.client.get("/api/static-ips/alice/web", headers=who)).status_code == 404
        gone = await api.client.delete("/api/static-ips/alice/web", headers=who)
        assert gone.status_code == 404
        assert (await api.client.get("/api/static-ips", headers=who)).json()["total"] == 0
    shared = await api.client.put(
        "/api/resources/alice/web/grants/team", json={"level": "use"}, headers=alice
    )
    assert shared.status_code == 200, shared.text
    assert (await api.client.get("/api/static-ips/alice/web", headers=bob)).status_code == 200
    refused = await api.client.delete("/api/static-ips/alice/web", headers=bob)
    assert refused.status_code == 403
    await running_cluster(api, "hpc", static_ip="web")
    busy = await api.client.delete("/api/static-ips/alice/web", headers=alice)
    assert busy.status_code == 409 and "pw://alice/hpc" in busy.json()["detail"]


async def test_os_snapshots_over_the_api(api: Api, people: dict[str, dict[str, str]]) -> None:
    alice, zed = people["alice"], people["zed"]
    await running_cluster(api, "hpc")
    for name in ("ab", "1abc", "My-Snap", "a b c", "a" * 37):
        bad = await api.client.post(
            "/api/os-snapshots", json={"name": name, "cluster": "hpc"}, headers=alice
        )
        assert bad.status_code == 422 and field_of(bad) == "name", name
    other = await api.client.post(
        "/api/os-snapshots", json={"name": "snap", "cluster": "pw://alice/hpc"}, headers=zed
    )
    assert other.status_code == 422 and field_of(other) == "cluster"
    made = await api.client.post(
        "/api/os-snapshots", json={"name": "my-snap-1", "cluster": "hpc"}, headers=alice
    )
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "provisioning"
    assert made.json()["cluster"] == "pw://alice/hpc"
    await reconcile(api, "alice", "my-snap-1")
    shown = await api.client.get("/api/os-snapshots/alice/my-snap-1", headers=alice)
    assert shown.json()["status"] == "provisioned" and shown.json()["image_id"] == "ami-7"
    assert (
        await api.client.get("/api/os-snapshots/alice/my-snap-1", headers=zed)
    ).status_code == 404
    assert (
        await api.client.delete("/api/os-snapshots/alice/my-snap-1", headers=zed)
    ).status_code == 404
    await running_cluster(api, "copy", image="my-snap-1")
    busy = await api.client.delete("/api/os-snapshots/alice/my-snap-1", headers=alice)
    assert busy.status_code == 409 and "pw://alice/copy" in busy.json()["detail"]
