"""Networks over the API: who may create and change them (org:admin or the cloud account's
``network`` permission, org-wide or per group), validation errors naming the field, 409s, and
another organization's networks answering 404.

No worker runs here, so networks stay as the API left them (``Pending``, ``Deleting``); the
provisioning itself is tested in core/tests/test_networks.py. ``apinet`` stands in for a cloud
with networks (API tests may not import plugins); it is never asked to provision anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from api_support import Api, LampPlugin, make_runtime
from litestar.testing import AsyncTestClient

from corral_api.app import create_app
from corral_core.plugins import PluginSource
from corral_core.testing import ADMIN_PASSWORD, ADMIN_USERNAME, TestDeployment
from corral_sdk.errors import Invalid
from corral_sdk.features import CloudFeature
from corral_sdk.plugin import CloudRecord, hookimpl
from corral_sdk.providers.cloud import (
    CloudAccount,
    CloudProviderBase,
    CredentialCheck,
    NetworkSpec,
)

pytestmark = pytest.mark.anyio


class ApiNet(CloudProviderBase):
    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        return CredentialCheck(principal="apinet")

    async def list_regions(self, *args: Any) -> Any:
        return []

    async def list_instance_types(self, *args: Any) -> Any:
        return []

    async def list_images(self, *args: Any) -> Any:
        return []

    async def create_instances(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("API tests never start a cluster")

    async def describe_instances(self, *args: Any, **kwargs: Any) -> Any:
        return []

    async def start_instances(self, *args: Any) -> None: ...
    async def stop_instances(self, *args: Any) -> None: ...
    async def delete_instances(self, *args: Any) -> None: ...

    async def check_network(self, account: CloudAccount, spec: NetworkSpec) -> None:
        if spec.mode not in ("", "private"):
            raise Invalid(f"no networking mode {spec.mode!r}", field="mode")
        if spec.mode == "private" and not spec.options.get("transit_gateway_id"):
            raise Invalid("a private network needs its gateway", field="options.transit_gateway_id")


class ApiNetPlugin:
    @hookimpl
    def corral_register_clouds(self) -> list[CloudRecord]:
        return [
            CloudRecord(name="apinet", factory=ApiNet, features=frozenset({CloudFeature.NETWORKS})),
            CloudRecord(name="flat", factory=ApiNet),
        ]


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
