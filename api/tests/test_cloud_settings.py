"""Cloud accounts (update, validation as a job, instance types), the organization's instance
type policy and capacity reservations, through the API.

A small cloud provider registered by this module stands in for a cloud (it answers from fixed
catalogues and never creates anything); the kernel code under test is the real one. Background
validation messages go to the suite's broker and nobody consumes them here: each test runs the
validation job itself, as a worker would, after seeing the account ``checking``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from api_support import Api, LampPlugin, make_runtime
from litestar.testing import AsyncTestClient

from corral_api.app import create_app
from corral_core.clusters.models import CloudAccountRecord
from corral_core.plugins import PluginSource
from corral_core.testing import ADMIN_PASSWORD, ADMIN_USERNAME, TestDeployment
from corral_sdk.errors import Invalid, NotAuthenticated, NotFound
from corral_sdk.features import SchedulerFeature
from corral_sdk.plugin import CloudRecord, SchedulerRecord, hookimpl
from corral_sdk.providers.cloud import (
    CloudAccount,
    CloudProviderBase,
    CredentialCheck,
    Image,
    InstanceType,
    Region,
)
from corral_sdk.providers.scheduler import SchedulerBase

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-Value-never-shown"
GUIDE = "https://docs.example/testcloud/permissions"


class LabCredentials(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key_id: str
    secret: str

    def __post_init__(self) -> None:
        if not self.key_id.startswith("K"):
            raise Invalid("the key id starts with K", field="credentials.key_id")


class LabCloud(CloudProviderBase):
    """Answers like a cloud whose secret decides the outcome: ``wrong`` does not authenticate,
    ``restricted`` lacks a permission, ``rotate-me`` is replaced by a key of the cloud's own
    (which the next check, made with it, reports as ``rotated``), as AWS keys are."""

    calls: list[str] = []

    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        LabCloud.calls.append(account.credentials.secret)
        if account.credentials.secret == "wrong":
            raise NotAuthenticated("the cloud rejected key " + account.credentials.key_id)
        if account.credentials.secret == "restricted":
            return CredentialCheck(
                principal=account.credentials.key_id,
                sufficient=False,
                missing_permissions=("compute:RunInstances",),
                guide_url=GUIDE,
                message="1 permission is missing",
            )
        if account.credentials.secret == "rotate-me":
            replaced = LabCredentials(key_id="K-rotated", secret="made-by-the-cloud")
            return CredentialCheck(principal=account.credentials.key_id, credentials=replaced)
        return CredentialCheck(principal=account.credentials.key_id)

    async def list_regions(self, account: CloudAccount) -> Sequence[Region]:
        return [Region(name="r1", zones=("r1a", "r1b")), Region(name="r2")]

    async def list_instance_types(
        self, account: CloudAccount, region: str
    ) -> Sequence[InstanceType]:
        if region not in ("r1", "r2"):
            raise NotFound(f"region {region!r} does not exist")
        types = [
            InstanceType(name="big.8", vcpus=8, memory_gib=32, price_per_hour=Decimal("0.40")),
            InstanceType(name="small.2", vcpus=2, memory_gib=4, price_per_hour=Decimal("0.10")),
            InstanceType(
                name="gpu.8",
                vcpus=8,
                memory_gib=64,
                gpus=1,
                gpu_model="T4",
                price_per_hour=Decimal("2.5"),
                spot_price_per_hour=Decimal("0.75"),
            ),
        ]
        return types if region == "r1" else types[:1]

    async def list_images(self, account: CloudAccount, region: str) -> Sequence[Image]:
        return [Image(id="img-1", name="base", region=region, latest=True)]

    async def create_instances(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("API tests never start a cloud cluster")

    async def describe_instances(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("API tests never start a cloud cluster")

    async def start_instances(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("API tests never start a cloud cluster")

    async def stop_instances(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("API tests never start a cloud cluster")

    async def delete_instances(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("API tests never start a cloud cluster")


class ElasticScheduler(SchedulerBase):
    def __init__(self, runner: Any, config: Any) -> None:
        pass


class LabCloudPlugin:
    @hookimpl
    def corral_register_clouds(self) -> list[CloudRecord]:
        return [CloudRecord(name="testcloud", factory=LabCloud, credentials=LabCredentials)]

    @hookimpl
    def corral_register_schedulers(self) -> list[SchedulerRecord]:
        return [
            SchedulerRecord(
                name="elastic",
                factory=ElasticScheduler,
                features=frozenset({SchedulerFeature.ELASTIC_NODES}),
            )
        ]


@pytest.fixture
async def api(deployment: TestDeployment) -> AsyncIterator[Api]:
    runtime = make_runtime(
        deployment,
        PluginSource(name="lamps", distribution="corral-lamps", version="1", load=LampPlugin),
        PluginSource(
            name="testcloud", distribution="corral-testcloud", version="1", load=LabCloudPlugin
        ),
    )
    await runtime.identity.bootstrap("default", ADMIN_USERNAME, ADMIN_PASSWORD)
    async with AsyncTestClient(app=create_app(runtime)) as client:
        yield Api(client, runtime)
    await runtime.close()


async def run_validation(api: Api, org: str, name: str) -> None:
    """What a worker does with the message the API sent."""
    row = await api.runtime.cloud_accounts.get(org, name)
    assert row.id is not None
    await api.runtime.cloud_accounts.validate(row.id)


async def add_account(
    api: Api, headers: dict[str, str], name: str = "lab1", secret: str = SECRET
) -> dict[str, Any]:
    created = await api.client.post(
        "/api/cloud-accounts",
        json={
            "name": name,
            "provider": "testcloud",
            "credentials": {"key_id": "K1", "secret": secret},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["permissions"] == "checking"
    await run_validation(api, "default", name)
    return dict((await api.client.get(f"/api/cloud-accounts/{name}", headers=headers)).json())


def field_of(response: Any) -> str:
    return str(response.json()["errors"][0]["field"])


def cloud(**partition: Any) -> dict[str, Any]:
    return {
        "cloud_account": "lab1",
        "controller": {"region": "r1", "instance_type": "small.2"},
        "partitions": [{"name": "batch", "instance_type": "big.8", "max_nodes": 2, **partition}],
    }


async def create_cluster(
    api: Api, headers: dict[str, str], name: str = "hpc", **definition: Any
) -> Any:
    return await api.client.post(
        "/api/clusters",
        json={"name": name, "type": "cloud", "scheduler": "elastic", "cloud": definition},
        headers=headers,
    )


# --- cloud accounts -----------------------------------------------------------------------------


async def test_validation_is_a_job_recorded_on_the_account(api: Api) -> None:
    admin = await api.admin()
    shown = await add_account(api, admin)
    assert shown["permissions"] == "sufficient"
    assert shown["principal"] == "K1"
    assert shown["validated_at"] is not None
    assert SECRET not in str(shown)

    restricted = await add_account(api, admin, "lab2", secret="restricted")
    assert restricted["permissions"] == "insufficient"
    assert restricted["missing_permissions"] == ["compute:RunInstances"]
    assert restricted["guide_url"] == GUIDE

    wrong = await add_account(api, admin, "lab3", secret="wrong")
    assert wrong["permissions"] == "error"
    assert "rejected key K1" in wrong["message"]


async def test_malformed_credentials_are_refused_before_any_call(api: Api) -> None:
    LabCloud.calls.clear()
    created = await api.client.post(
        "/api/cloud-accounts",
        json={
            "name": "lab1",
            "provider": "testcloud",
            "credentials": {"key_id": "X", "secret": "s"},
        },
        headers=await api.admin(),
    )
    assert created.status_code == 422
    assert field_of(created) == "credentials.key_id"
    assert LabCloud.calls == []


async def test_update_credentials_revalidates_and_never_returns_them(api: Api) -> None:
    admin = await api.admin()
    before = await add_account(api, admin, secret="restricted")
    assert before["permissions"] == "insufficient"

    updated = await api.client.patch(
        "/api/cloud-accounts/lab1", json={"credentials": {"secret": "n3w-Secret"}}, headers=admin
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["permissions"] == "checking"
    assert updated.json()["credentials_updated_at"] > before["credentials_updated_at"]
    assert "n3w-Secret" not in updated.text
    await run_validation(api, "default", "lab1")
    after = (await api.client.get("/api/cloud-accounts/lab1", headers=admin)).json()
    assert after["permissions"] == "sufficient"
    assert after["missing_permissions"] == []
    assert after["validated_at"] > before["validated_at"]
    # the key id was kept (merged), the secret replaced; stored encrypted, never listed
    row = await api.runtime.cloud_accounts.get("default", "lab1")
    assert api.runtime.cloud_accounts.account(row).credentials == LabCredentials(
        key_id="K1", secret="n3w-Secret"
    )
    assert "n3w-Secret" not in row.credentials
    listed = await api.client.get("/api/cloud-accounts", headers=admin)
    assert "n3w-Secret" not in listed.text and SECRET not in listed.text

    bad = await api.client.patch(
        "/api/cloud-accounts/lab1", json={"credentials": {"key_id": "nope"}}, headers=admin
    )
    assert bad.status_code == 422 and field_of(bad) == "credentials.key_id"


async def test_credentials_a_provider_replaces_are_stored_and_checked_again(api: Api) -> None:
    admin = await api.admin()
    LabCloud.calls.clear()
    made = await add_account(api, admin, secret="rotate-me")
    # stored encrypted, then validated with: the account's principal is the new key
    assert made["permissions"] == "sufficient", made
    assert made["principal"] == "K-rotated"
    assert LabCloud.calls == ["rotate-me", "made-by-the-cloud"]
    row = await api.runtime.cloud_accounts.get("default", "lab1")
    assert api.runtime.cloud_accounts.account(row).credentials == LabCredentials(
        key_id="K-rotated", secret="made-by-the-cloud"
    )
    assert "made-by-the-cloud" not in row.credentials
    shown = await api.client.get("/api/cloud-accounts/lab1", headers=admin)
    assert "made-by-the-cloud" not in shown.text


@pytest.mark.parametrize("field", ["name", "provider"])
async def test_name_and_provider_cannot_change(api: Api, field: str) -> None:
    admin = await api.admin()
    await add_account(api, admin)
    refused = await api.client.patch(
        "/api/cloud-accounts/lab1", json={field: "other"}, headers=admin
    )
    assert refused.status_code == 422
    assert field_of(refused) == field
    assert (await api.client.get("/api/cloud-accounts/lab1", headers=admin)).json()[
        "provider"
    ] == "testcloud"


async def test_validate_again_and_a_newer_request_wins(api: Api) -> None:
    admin = await api.admin()
    await add_account(api, admin)
    again = await api.client.post("/api/cloud-accounts/lab1/validate", headers=admin)
    assert again.status_code == 202 and again.json()["permissions"] == "checking"
    # an update while that check is queued: the job records only the newest one
    await api.client.patch(
        "/api/cloud-accounts/lab1", json={"credentials": {"secret": "wrong"}}, headers=admin
    )
    await run_validation(api, "default", "lab1")
    assert (await api.client.get("/api/cloud-accounts/lab1", headers=admin)).json()[
        "permissions"
    ] == "error"
    assert await api.runtime.cloud_accounts.due_validations() == []
    row = await api.runtime.cloud_accounts.get("default", "lab1")
    assert row.validation == 3


async def test_members_cannot_update_or_validate_accounts(api: Api) -> None:
    admin = await api.admin()
    await add_account(api, admin)
    await api.group(admin, "settings", roles=("org:settings",))
    member = await api.user(admin, "sam", groups=("settings",))
    for call in (
        api.client.patch("/api/cloud-accounts/lab1", json={"settings": {}}, headers=member),
        api.client.post("/api/cloud-accounts/lab1/validate", headers=member),
    ):
        assert (await call).status_code == 403


async def test_instance_types_of_a_region_with_prices(api: Api) -> None:
    admin = await api.admin()
    await add_account(api, admin)
    listed = (await api.client.get("/api/cloud-accounts/lab1/instance-types", headers=admin)).json()
    assert listed["region"] == "r1" and listed["provider"] == "testcloud"
    assert [t["name"] for t in listed["items"]] == ["small.2", "big.8", "gpu.8"]
    gpu = listed["items"][2]
    assert (gpu["vcpus"], gpu["memory_gib"], gpu["gpus"], gpu["gpu_model"]) == (8, 64, 1, "T4")
    assert (gpu["price_per_hour"], gpu["spot_price_per_hour"]) == ("2.5000", "0.7500")
    r2 = await api.client.get(
        "/api/cloud-accounts/lab1/instance-types", params={"region": "r2"}, headers=admin
    )
    assert [t["name"] for t in r2.json()["items"]] == ["big.8"]
    unknown = await api.client.get(
        "/api/cloud-accounts/lab1/instance-types", params={"region": "mars"}, headers=admin
    )
    assert unknown.status_code == 422 and field_of(unknown) == "region"


# --- instance type policy -----------------------------------------------------------------------


async def set_policy(api: Api, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return await api.client.put("/api/orgs/default/instance-types", json=body, headers=headers)


async def test_custom_policy_limits_what_is_offered_and_accepted(api: Api) -> None:
    admin = await api.admin()
    await add_account(api, admin)
    await api.group(admin, "settings", roles=("org:settings",))
    settings = await api.user(admin, "sam", groups=("settings",))
    member = await api.user(admin, "mia")

    assert (await set_policy(api, member, {"mode": "custom"})).status_code == 403
    saved = await set_policy(
        api, settings, {"mode": "custom", "allowed": {"testcloud": ["small.2", "small.2"]}}
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["allowed"] == {"testcloud": ["small.2"]}
    assert saved.json()["updated_by"] == "sam"
    shown = await api.client.get("/api/orgs/default/instance-types", headers=member)
    assert shown.json()["mode"] == "custom"

    offered = await api.client.get("/api/cloud-accounts/lab1/instance-types", headers=member)
    assert [t["name"] for t in offered.json()["items"]] == ["small.2"]
    everything = await api.client.get(
        "/api/cloud-accounts/lab1/instance-types", params={"all": "true"}, headers=member
    )
    assert {t["name"]: t["allowed"] for t in everything.json()["items"]} == {
        "small.2": True,
        "big.8": False,
        "gpu.8": False,
    }

    refused = await create_cluster(api, member, **cloud())
    assert refused.status_code == 422, refused.text
    assert field_of(refused) == "cloud.partitions.0.instance_type"
    assert "big.8" in refused.json()["detail"]
    defaulted = await create_cluster(
        api, member, cloud_account="lab1", controller={"instance_type": "gpu.8"},
        partitions=[{"name": "batch"}],
    )  # fmt: skip
    assert field_of(defaulted) == "cloud.controller.instance_type"
    ok = await create_cluster(api, member, **cloud(instance_type="small.2"))
    assert ok.status_code == 201, ok.text
    edit = await api.client.patch(
        "/api/clusters/mia/hpc",
        json={"cloud": cloud(instance_type="gpu.8")},
        headers=member,
    )
    assert edit.status_code == 422 and field_of(edit) == "cloud.partitions.0.instance_type"

    # back to default: every type goes through again
    assert (await set_policy(api, admin, {"mode": "default"})).status_code == 200
    assert (await create_cluster(api, member, "hpc2", **cloud())).status_code == 201


async def test_an_empty_custom_list_allows_none_and_unknown_providers_are_refused(api: Api) -> None:
    admin = await api.admin()
    await add_account(api, admin)
    assert (
        await set_policy(api, admin, {"mode": "custom", "allowed": {"testcloud": []}})
    ).status_code == 200
    offered = await api.client.get("/api/cloud-accounts/lab1/instance-types", headers=admin)
    assert offered.json()["items"] == []
    refused = await create_cluster(api, admin, **cloud(instance_type="small.2"))
    assert field_of(refused) == "cloud.controller.instance_type"
    assert "no testcloud instance type" in refused.json()["detail"]

    unknown = await set_policy(api, admin, {"mode": "custom", "allowed": {"aws9": ["x"]}})
    assert unknown.status_code == 422 and field_of(unknown) == "allowed.aws9"
    lists_in_default = await set_policy(
        api, admin, {"mode": "default", "allowed": {"testcloud": ["small.2"]}}
    )
    assert lists_in_default.status_code == 422 and field_of(lists_in_default) == "allowed"
    # custom without naming the provider: not restricted
    assert (await set_policy(api, admin, {"mode": "custom", "allowed": {}})).status_code == 200
    assert (await create_cluster(api, admin, **cloud())).status_code == 201


# --- capacity reservations ----------------------------------------------------------------------


async def test_a_reservation_maps_to_one_group_and_only_its_members_use_it(api: Api) -> None:
    admin = await api.admin()
    await add_account(api, admin)
    await api.group(admin, "alpha")
    await api.group(admin, "beta")
    await api.group(admin, "settings", roles=("org:settings",))
    settings = await api.user(admin, "sam", groups=("settings",))
    ann = await api.user(admin, "ann", groups=("alpha",))
    bob = await api.user(admin, "bob", groups=("beta",))

    url = "/api/orgs/default/capacity-reservations"
    added = await api.client.post(
        url, json={"reservation_id": "cr-0abc", "group": "alpha"}, headers=settings
    )
    assert added.status_code == 201, added.text
    assert added.json()["group"] == "alpha"
    twice = await api.client.post(
        url, json={"reservation_id": "cr-0abc", "group": "beta"}, headers=admin
    )
    assert twice.status_code == 409
    by_member = await api.client.post(
        url, json={"reservation_id": "cr-0def", "group": "beta"}, headers=bob
    )
    assert by_member.status_code == 403
    no_group = await api.client.post(
        url, json={"reservation_id": "cr-0def", "group": "gamma"}, headers=admin
    )
    assert no_group.status_code == 422 and field_of(no_group) == "group"
    bad_id = await api.client.post(
        url, json={"reservation_id": "cr 1/2", "group": "beta"}, headers=admin
    )
    assert bad_id.status_code == 422 and field_of(bad_id) == "reservation_id"

    # members see their groups' reservations (the cluster form), settings admins see all
    assert [r["reservation_id"] for r in (await api.client.get(url, headers=ann)).json()] == [
        "cr-0abc"
    ]
    assert (await api.client.get(url, headers=bob)).json() == []
    assert len((await api.client.get(url, headers=settings)).json()) == 1

    reserved = cloud(capacity_reservation=True, capacity_reservation_id="cr-0abc")
    theirs = await create_cluster(api, bob, **reserved)
    assert theirs.status_code == 422
    assert field_of(theirs) == "cloud.partitions.0.capacity_reservation_id"
    unmapped = await create_cluster(
        api, ann, **cloud(capacity_reservation=True, capacity_reservation_id="cr-9zzz")
    )
    assert unmapped.status_code == 422 and "not mapped" in unmapped.json()["detail"]
    no_id = await create_cluster(api, ann, **cloud(capacity_reservation=True))
    assert field_of(no_id) == "cloud.partitions.0.capacity_reservation_id"
    id_only = await create_cluster(api, ann, **cloud(capacity_reservation_id="cr-0abc"))
    assert field_of(id_only) == "cloud.partitions.0.capacity_reservation"
    mine = await create_cluster(api, ann, **reserved)
    assert mine.status_code == 201, mine.text

    # the mapping removed: starting the cluster is refused
    assert (await api.client.delete(f"{url}/cr-0abc", headers=bob)).status_code == 403
    assert (await api.client.delete(f"{url}/cr-0abc", headers=settings)).status_code == 204
    assert (await api.client.delete(f"{url}/cr-0abc", headers=settings)).status_code == 404
    start = await api.client.post("/api/clusters/ann/hpc/start", headers=ann)
    assert start.status_code == 422, start.text
    assert field_of(start) == "cloud.partitions.0.capacity_reservation_id"


async def test_reservation_groups_give_the_partition_its_cost_group(api: Api) -> None:
    admin = await api.admin()
    await api.group(admin, "alpha")
    await api.user(admin, "ann", groups=("alpha",))
    await api.client.post(
        "/api/orgs/default/capacity-reservations",
        json={"reservation_id": "cr-0abc", "group": "alpha"},
        headers=admin,
    )
    from corral_sdk.wire import CloudPartition

    partitions = [
        CloudPartition(name="plain"),
        CloudPartition(name="fast", capacity_reservation=True, capacity_reservation_id="cr-0abc"),
    ]
    settings = api.runtime.cloud_settings
    assert await settings.reservation_groups("default", "ann", partitions) == {"fast": "alpha"}
    with pytest.raises(Invalid) as refused:
        await settings.reservation_groups("default", ADMIN_USERNAME, partitions)
    assert refused.value.field == "cloud.partitions.1.capacity_reservation_id"


async def test_settings_of_another_org_are_not_found(api: Api) -> None:
    admin = await api.admin()
    await api.group(admin, "alpha")
    await api.client.post(
        "/api/orgs/default/capacity-reservations",
        json={"reservation_id": "cr-0abc", "group": "alpha"},
        headers=admin,
    )
    gil = await api.org_with_admin("globex", "gil")
    for method, path in (
        ("GET", "/api/orgs/default/instance-types"),
        ("GET", "/api/orgs/default/capacity-reservations"),
        ("DELETE", "/api/orgs/default/capacity-reservations/cr-0abc"),
    ):
        response = await api.client.request(method, path, headers=gil)
        assert response.status_code == 404, (method, path, response.text)
    own = await api.client.get("/api/orgs/globex/capacity-reservations", headers=gil)
    assert own.json() == []
    assert (
        await api.client.request(
            "PUT", "/api/orgs/default/instance-types", json={"mode": "default"}, headers=gil
        )
    ).status_code == 404


async def test_account_record_never_holds_plain_credentials(api: Api) -> None:
    admin = await api.admin()
    await add_account(api, admin)
    async with api.runtime.db.session() as session:
        from sqlmodel import select

        rows = list(await session.exec(select(CloudAccountRecord)))
    assert rows and all(SECRET not in r.credentials for r in rows)
