"""Storage through the kernel: the reconciler drives stopped -> starting -> active -> stopping
-> stopped with the type's provider, resumes a provision cut short without making a second
bucket, retries what the provider says may work later, fails with the reason otherwise (a stop
cleans up), polls what is still provisioning, and keeps cloud accounts while storage uses them.

The provider here, ``vault``, stands in for a cloud's object store, which the kernel's tests
cannot reach (they may not import plugins; the AWS S3 type is tested against moto in its own
package). It keeps buckets in memory, found again by the uid the kernel hands it, and fails
when a test tells it to, as a cloud would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import msgspec
import pytest
from sqlmodel import col, select

from corral_core.identity.models import User
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.migrations import upgrade
from corral_core.plugins import PluginSource, load_kernel
from corral_core.plugins.manager import builtin_sources
from corral_core.resources.models import Resource
from corral_core.runtime import Runtime
from corral_core.storage.models import StorageSession
from corral_core.testing import ADMIN_PASSWORD, TestDeployment
from corral_sdk.errors import Conflict, Invalid, TransportError
from corral_sdk.features import CloudFeature, StorageCategory, StorageFeature
from corral_sdk.plugin import hookimpl
from corral_sdk.providers.cloud import CloudAccount, CloudProviderBase, CredentialCheck, Region
from corral_sdk.providers.storage import (
    StorageBase,
    StorageInfo,
    StorageSpec,
    StorageState,
    TemporaryCredentials,
)
from corral_sdk.records import CloudRecord, StorageTypeRecord
from corral_sdk.wire import CloudAccountCreate, StorageCreate, StorageUpdate

pytestmark = pytest.mark.anyio


class VaultOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    region: str


class Vault(StorageBase):
    """Buckets in memory by the kernel's uid. ``fail`` holds errors the next provision calls
    raise (after making the bucket, as a call cut short would); ``slow`` makes new buckets
    pending until ``ready`` is set."""

    buckets: ClassVar[dict[str, StorageInfo]] = {}
    fail: ClassVar[list[Exception]] = []
    slow: ClassVar[bool] = False
    ready: ClassVar[bool] = False
    calls: ClassVar[list[str]] = []
    specs: ClassVar[list[StorageSpec]] = []

    async def validate(self, spec: StorageSpec) -> None:
        if not spec.options.region.startswith("v"):
            raise Invalid(f"no region {spec.options.region!r}", field="region")

    async def estimate_cost(self, spec: StorageSpec) -> Any:
        return None

    async def provision(self, spec: StorageSpec, *, log: Any) -> StorageInfo:
        type(self).calls.append(f"provision {spec.resource_id}")
        type(self).specs.append(spec)
        state = StorageState.PROVISIONING if type(self).slow else StorageState.AVAILABLE
        if spec.resource_id not in type(self).buckets:
            await log.log(f"Creating bucket vault-{spec.resource_id}")
            type(self).buckets[spec.resource_id] = StorageInfo(
                id=f"vault-{spec.resource_id}",
                state=state,
                uri=f"vault://vault-{spec.resource_id}",
                region=spec.options.region,
            )
        else:
            await log.log(f"Found bucket vault-{spec.resource_id}")
        if type(self).fail:
            raise type(self).fail.pop(0)
        return type(self).buckets[spec.resource_id]

    async def describe(self, spec: StorageSpec, info: StorageInfo) -> StorageInfo:
        type(self).calls.append(f"describe {spec.resource_id}")
        found = type(self).buckets.get(spec.resource_id)
        if found is None:
            return msgspec.structs.replace(info, state=StorageState.DELETED)
        if type(self).ready:
            found = msgspec.structs.replace(found, state=StorageState.AVAILABLE)
            type(self).buckets[spec.resource_id] = found
        return found

    async def deprovision(self, spec: StorageSpec, info: StorageInfo, *, log: Any) -> None:
        type(self).calls.append(f"deprovision {spec.resource_id} {info.id or '?'}")
        type(self).buckets.pop(spec.resource_id, None)

    async def temporary_credentials(
        self, spec: StorageSpec, info: StorageInfo, **kw: Any
    ) -> TemporaryCredentials:
        raise AssertionError("not used here")


class VaultCloud(CloudProviderBase):
    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        return CredentialCheck(principal="vault")

    async def list_regions(self, account: CloudAccount) -> list[Region]:
        return [Region(name="v1")]

    async def list_instance_types(self, *args: Any) -> Any:
        return []

    async def create_instances(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used")

    async def describe_instances(self, *args: Any, **kwargs: Any) -> Any:
        return []

    async def start_instances(self, *args: Any) -> None: ...
    async def stop_instances(self, *args: Any) -> None: ...
    async def delete_instances(self, *args: Any) -> None: ...


class VaultPlugin:
    @hookimpl
    def corral_register_clouds(self) -> list[CloudRecord]:
        return [
            CloudRecord(name="vaultcloud", factory=VaultCloud),
            CloudRecord(
                name="othercloud", factory=VaultCloud, features=frozenset({CloudFeature.GPUS})
            ),
        ]

    @hookimpl
    def corral_register_storage_types(self) -> list[StorageTypeRecord]:
        return [
            StorageTypeRecord(
                name="vault",
                factory=Vault,
                config=VaultOptions,
                category=StorageCategory.BUCKET,
                cloud="vaultcloud",
                features=frozenset({StorageFeature.TEMPORARY_CREDENTIALS}),
            )
        ]


class Env:
    def __init__(self, runtime: Runtime, admin: Principal) -> None:
        self.runtime = runtime
        self.admin = admin
        self.storage = runtime.storage

    def ref(self, name: str) -> ResourceRef:
        return ResourceRef(self.admin.username, name)

    async def create(self, name: str, **fields: Any) -> int:
        body = {"name": name, "type": "vault", "cloud_account": "lab", **fields}
        body.setdefault("storage_options", {"region": "v1"})
        row = await self.storage.create(self.admin, msgspec.convert(body, StorageCreate))
        assert row.id is not None
        return row.id

    async def reconcile(self, resource_id: int) -> None:
        await self.runtime.reconciler.reconcile(resource_id)

    async def row(self, name: str) -> Resource:
        return await self.storage.get(self.admin, self.ref(name))

    async def sessions(self, resource_id: int) -> list[tuple[int, str]]:
        return [(s.number, s.status) for s in await self.storage.sessions.history(resource_id)]

    async def expire_lease(self, resource_id: int) -> None:
        """What a killed worker leaves behind: its lease runs out."""
        async with self.runtime.db.session() as session:
            row = await session.get(Resource, resource_id)
            assert row is not None
            row.lease_owner, row.lease_expires_at = None, None
            session.add(row)
            await session.commit()


@pytest.fixture
async def env(deployment: TestDeployment) -> AsyncIterator[Env]:
    Vault.buckets, Vault.fail, Vault.calls, Vault.specs = {}, [], [], []
    Vault.slow, Vault.ready = False, False
    source = PluginSource(name="vault", distribution="corral-vault", version="1", load=VaultPlugin)
    runtime = Runtime(
        deployment.settings(), load_kernel(sources=[*builtin_sources(), source]), "all"
    )
    upgrade(runtime.db)
    await runtime.identity.bootstrap("default", "root", ADMIN_PASSWORD)
    async with runtime.db.session() as session:
        user = (await session.exec(select(User).where(col(User.username) == "root"))).one()
    admin = await runtime.authn.principal(user)
    for name, provider in (("lab", "vaultcloud"), ("other", "othercloud")):
        await runtime.cloud_accounts.create(admin, CloudAccountCreate(name=name, provider=provider))
    try:
        yield Env(runtime, admin)
    finally:
        await runtime.close()


async def test_the_account_must_be_of_the_types_cloud_and_options_follow_its_rules(
    env: Env,
) -> None:
    for fields, field in [
        ({"cloud_account": ""}, "cloud_account"),
        ({"cloud_account": "nowhere"}, "cloud_account"),
        ({"cloud_account": "other"}, "cloud_account"),
        ({"storage_options": {"region": "x1"}}, "storage_options.region"),
        ({"storage_options": {}}, "storage_options.region"),
    ]:
        with pytest.raises(Invalid) as raised:
            await env.create("data", **fields)
        assert raised.value.field == field, raised.value.message
    with pytest.raises(Invalid) as raised:
        await env.create("data", cloud_account="other")
    assert "othercloud account" in raised.value.message and "vaultcloud" in raised.value.message
    assert Vault.calls == []


async def test_a_provision_cut_short_is_found_again_not_made_twice(env: Env) -> None:
    resource_id = await env.create("data")
    await env.storage.start(env.admin, env.ref("data"))
    # the cloud made the bucket, then the call died before the kernel heard back
    Vault.fail.append(TransportError("connection reset", retryable=True))
    await env.reconcile(resource_id)
    row = await env.row("data")
    assert (row.observed_state, row.reason) == ("starting", "connection reset")
    assert await env.sessions(resource_id) == [(1, "provisioning")]
    await env.expire_lease(resource_id)
    await env.reconcile(resource_id)
    row = await env.row("data")
    assert row.observed_state == "active"
    assert len(Vault.buckets) == 1
    uid = next(iter(Vault.buckets))
    assert Vault.calls == [f"provision {uid}", f"provision {uid}"]
    session = (await env.storage.sessions.history(resource_id))[0]
    assert (session.uid, session.csp_uri) == (uid, f"vault://vault-{uid}")
    assert row.status["csp_uri"] == f"vault://vault-{uid}" and row.status["session"] == 1
    lines = [
        x.message
        for x in (await env.storage.read_log(env.admin, env.ref("data"), 1, "provision"))[1]
    ]
    assert lines == [
        "Provisioning vault data (session 00001) in cloud account lab",
        f"Creating bucket vault-{uid}",
        "Retrying: connection reset",
        "Provisioning vault data (session 00001) in cloud account lab",
        f"Found bucket vault-{uid}",
        f"Storage active: vault://vault-{uid}",
    ]
    assert Vault.specs[0].tags == {
        "Name": "data",
        "User": "root",
        "OrganizationID": "default",
        "GroupID": "none",
        "Session": "00001",
        "SessionID": uid,
    }
    assert Vault.specs[0].account is not None and Vault.specs[0].account.name == "lab"


async def test_a_failure_fails_the_storage_and_a_stop_cleans_up(env: Env) -> None:
    resource_id = await env.create("data")
    await env.storage.start(env.admin, env.ref("data"))
    Vault.fail.append(Conflict("the bucket name is taken"))
    await env.reconcile(resource_id)
    row = await env.row("data")
    assert (row.observed_state, row.reason) == ("failed", "the bucket name is taken")
    assert await env.sessions(resource_id) == [(1, "failed")]
    await env.reconcile(resource_id)  # settled: not provisioned again
    assert len([c for c in Vault.calls if c.startswith("provision")]) == 1
    with pytest.raises(Conflict) as refused:
        await env.storage.start(env.admin, env.ref("data"))
    assert "stop it" in refused.value.message
    uid = next(iter(Vault.buckets))
    await env.storage.stop(env.admin, env.ref("data"))
    await env.reconcile(resource_id)
    assert (await env.row("data")).observed_state == "stopped"
    assert Vault.buckets == {}
    assert Vault.calls[-1] == f"deprovision {uid} ?"  # never recorded: found by its uid
    assert await env.sessions(resource_id) == [(1, "deleted")]
    await env.storage.start(env.admin, env.ref("data"))
    await env.reconcile(resource_id)
    assert (await env.row("data")).observed_state == "active"
    assert await env.sessions(resource_id) == [(2, "active"), (1, "deleted")]


async def test_a_storage_still_provisioning_is_polled_until_available(env: Env) -> None:
    resource_id = await env.create("data")
    Vault.slow = True
    await env.storage.start(env.admin, env.ref("data"))
    await env.reconcile(resource_id)
    assert (await env.row("data")).observed_state == "starting"
    await env.expire_lease(resource_id)
    await env.reconcile(resource_id)
    assert (await env.row("data")).observed_state == "starting"
    Vault.ready = True
    await env.expire_lease(resource_id)
    await env.reconcile(resource_id)
    assert (await env.row("data")).observed_state == "active"
    uid = next(iter(Vault.buckets))
    assert Vault.calls == [f"provision {uid}", f"describe {uid}", f"describe {uid}"]


async def test_the_definition_changes_only_while_stopped_and_accounts_wait(env: Env) -> None:
    resource_id = await env.create("data")
    await env.storage.start(env.admin, env.ref("data"))
    await env.reconcile(resource_id)
    with pytest.raises(Conflict):
        await env.storage.update(
            env.admin, env.ref("data"), StorageUpdate(storage_options={"region": "v2"})
        )
    with pytest.raises(Conflict) as busy:
        await env.runtime.cloud_accounts.delete(env.admin, "lab")
    assert "storage root/data" in busy.value.message
    await env.storage.stop(env.admin, env.ref("data"))
    await env.reconcile(resource_id)
    changed = await env.storage.update(
        env.admin, env.ref("data"), StorageUpdate(storage_options={"region": "v2"})
    )
    assert changed.spec["storage_options"] == {"region": "v2"}
    await env.runtime.cloud_accounts.delete(env.admin, "lab")
    with pytest.raises(Invalid) as gone:
        await env.storage.start(env.admin, env.ref("data"))
    assert gone.value.field == "cloud_account"


async def test_a_session_row_is_what_the_provider_names_things_by(env: Env) -> None:
    resource_id = await env.create("data")
    await env.storage.start(env.admin, env.ref("data"))
    await env.reconcile(resource_id)
    async with env.runtime.db.session() as session:
        row = (await session.exec(select(StorageSession))).one()
    assert len(row.uid) == 24 and Vault.buckets[row.uid].id == f"vault-{row.uid}"
