"""Helpers for API tests: an in-process API and ways to act as different users."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import msgspec
from litestar.testing import AsyncTestClient

from corral_core.migrations import upgrade
from corral_core.plugins import PluginSource, load_kernel
from corral_core.plugins.manager import builtin_sources
from corral_core.runtime import Runtime
from corral_core.testing import ADMIN_PASSWORD, ADMIN_USERNAME, TestDeployment
from corral_sdk.errors import Invalid
from corral_sdk.plugin import (
    ReconcileResult,
    ResourceKindRecord,
    SchedulerRecord,
    StorageCategory,
    StorageFeature,
    StorageTypeRecord,
    hookimpl,
)
from corral_sdk.providers.scheduler import SchedulerBase
from corral_sdk.providers.storage import (
    StorageBase,
    StorageInfo,
    StorageState,
    TemporaryCredentials,
)
from corral_sdk.providers.storage import StorageSpec as StorageRequest
from corral_sdk.reconcile import ReconcileContext, ResourceSnapshot

PASSWORD = "Correct-horse-battery-9!"


class Api:
    """The test client plus ways to become someone."""

    def __init__(self, client: AsyncTestClient[Any], runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime

    async def key(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        """Sign in as ``username`` and return headers carrying a fresh API key."""
        login = await self.client.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        assert login.status_code == 200, login.text
        created = await self.client.post("/api/auth/apikeys", json={"name": "test"})
        assert created.status_code == 201, created.text
        self.client.cookies.clear()
        return {"Authorization": f"Bearer {created.json()['secret']}"}

    async def admin(self) -> dict[str, str]:
        return await self.key(ADMIN_USERNAME, ADMIN_PASSWORD)

    async def org_with_admin(self, org: str, admin: str) -> dict[str, str]:
        """A new organization whose ``admin`` holds org:admin; returns their headers."""
        created = await self.client.post(
            "/api/orgs",
            json={"name": org, "admin": {"username": admin, "password": PASSWORD}},
            headers=await self.admin(),
        )
        assert created.status_code == 201, created.text
        return await self.key(admin)

    async def user(
        self, as_: dict[str, str], username: str, *, groups: tuple[str, ...] = ()
    ) -> dict[str, str]:
        """Create ``username`` (by ``as_``), optionally in groups; returns their headers."""
        created = await self.client.post(
            "/api/users",
            json={"username": username, "password": PASSWORD, "groups": list(groups)},
            headers=as_,
        )
        assert created.status_code == 201, created.text
        return await self.key(username)

    async def group(self, as_: dict[str, str], name: str, roles: tuple[str, ...] = ()) -> None:
        created = await self.client.post("/api/groups", json={"name": name}, headers=as_)
        assert created.status_code == 201, created.text
        if roles:
            set_roles = await self.client.put(
                f"/api/groups/{name}/roles", json={"roles": list(roles)}, headers=as_
            )
            assert set_roles.status_code == 200, set_roles.text


def make_runtime(deployment: TestDeployment, *extra: PluginSource) -> Runtime:
    runtime = Runtime(
        deployment.settings(), load_kernel(sources=[*builtin_sources(), *extra]), "api"
    )
    upgrade(runtime.db)
    return runtime


class LampSpec(msgspec.Struct, forbid_unknown_fields=True):
    watts: int = 10


class LampReconciler:
    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        return ReconcileResult(observed_state=resource.desired_state)


class StorageSpec(msgspec.Struct, forbid_unknown_fields=True):
    size_gb: int = 1


class UnusedScheduler(SchedulerBase):
    """Registered so clusters can be defined in API tests; those tests never start them (the
    cluster tests against a real Slurm are in tests/)."""

    def __init__(self, runner: Any, config: Any) -> None:
        raise AssertionError("API tests never start a cluster")


class ShelfOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    region: str = "shelf-1"


class ShelfBucket(StorageBase):
    """Buckets on a shelf in memory, found again by their uid: stands in for a cloud's object
    store, which API tests cannot reach (the AWS type is tested against moto in its plugin)."""

    shelf: ClassVar[dict[str, StorageInfo]] = {}

    async def validate(self, spec: StorageRequest) -> None:
        if spec.options.region not in ("shelf-1", "shelf-2"):
            raise Invalid(f"there is no region {spec.options.region!r}", field="region")

    async def estimate_cost(self, spec: StorageRequest) -> Any:
        return None

    async def provision(self, spec: StorageRequest, *, log: Any) -> StorageInfo:
        name = f"shelf-{spec.resource_id}"
        await log.log(f"Creating bucket {name}")
        info = StorageInfo(
            id=name, state=StorageState.AVAILABLE, uri=f"shelf://{name}", region=spec.options.region
        )
        return type(self).shelf.setdefault(spec.resource_id, info)

    async def describe(self, spec: StorageRequest, info: StorageInfo) -> StorageInfo:
        found = type(self).shelf.get(spec.resource_id)
        return found or msgspec.structs.replace(info, state=StorageState.DELETED)

    async def deprovision(self, spec: StorageRequest, info: StorageInfo, *, log: Any) -> None:
        await log.log(f"Deleting bucket shelf-{spec.resource_id}")
        type(self).shelf.pop(spec.resource_id, None)

    async def temporary_credentials(
        self, spec: StorageRequest, info: StorageInfo, **kw: Any
    ) -> TemporaryCredentials:
        token = secrets.token_hex(8)
        return TemporaryCredentials(
            env={"SHELF_TOKEN": token},
            credentials={"token": token},
            expires_at=datetime.now(UTC) + timedelta(hours=12),
            uri=info.uri,
            bucket_name=info.id,
            region=info.region,
        )


class LampPlugin:
    @hookimpl
    def corral_register_storage_types(self) -> list[StorageTypeRecord]:
        return [
            StorageTypeRecord(
                name="shelf-bucket",
                factory=ShelfBucket,
                config=ShelfOptions,
                category=StorageCategory.BUCKET,
                label="Shelf Bucket",
                features=frozenset({StorageFeature.TEMPORARY_CREDENTIALS}),
            ),
            StorageTypeRecord(
                name="shelf-nfs", factory=ShelfBucket, config=ShelfOptions,
                category=StorageCategory.NFS,
            ),
            StorageTypeRecord(
                name="shelf-lustre", factory=ShelfBucket, config=ShelfOptions,
                category=StorageCategory.LUSTRE,
            ),
        ]  # fmt: skip

    @hookimpl
    def corral_register_schedulers(self) -> list[SchedulerRecord]:
        return [SchedulerRecord(name="unused", factory=UnusedScheduler)]

    @hookimpl
    def corral_register_resource_kinds(self) -> list[ResourceKindRecord]:
        return [
            ResourceKindRecord(
                name="lamp",
                factory=LampReconciler,
                config=LampSpec,
                states=("off", "on"),
                initial_state="off",
                terminal_states=frozenset({"off", "on"}),
                share_levels=("view", "edit"),
            ),
            ResourceKindRecord(
                name="disk",
                factory=LampReconciler,
                config=StorageSpec,
                states=("off", "on"),
                initial_state="off",
                terminal_states=frozenset({"off", "on"}),
                share_levels=("mount", "view-edit"),
            ),
        ]
