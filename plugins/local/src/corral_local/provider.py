"""The local cloud as a :class:`~corral_sdk.providers.cloud.CloudProvider`."""

from __future__ import annotations

import asyncio
import getpass
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime

from corral_local.catalog import INSTANCE_TYPES, REGION, ZONE, host_image, region
from corral_local.hosts import HostRecord, LocalHosts, parse_settings
from corral_sdk.errors import Invalid, NotFound
from corral_sdk.providers._common import ProgressLog, StepState
from corral_sdk.providers.cloud import (
    CloudAccount,
    CloudProviderBase,
    CredentialCheck,
    Image,
    Instance,
    InstanceRequest,
    InstanceState,
    InstanceType,
    Region,
)

__all__ = ["LocalCloud"]

_STATES = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "stopped": InstanceState.STOPPED,
    "terminating": InstanceState.TERMINATING,
}


class LocalCloud(CloudProviderBase):
    """Instances are hosts on this machine (see :mod:`corral_local.hosts`). Stateless: what the
    hosts are is read from the account's state directory at every call."""

    @staticmethod
    def hosts(account: CloudAccount) -> LocalHosts:
        return LocalHosts(*parse_settings(account.settings))

    @staticmethod
    def _region(name: str) -> None:
        if name != REGION:
            raise NotFound(f"the local cloud has one region, {REGION!r}, not {name!r}")

    async def validate_credentials(self, account: CloudAccount) -> CredentialCheck:
        self.hosts(account)  # settings are checked before anything else
        able, why = LocalHosts.can_create()
        principal = f"{getpass.getuser()}@{platform.node()}"
        if able:
            return CredentialCheck(principal=principal, message="hosts can be created here")
        return CredentialCheck(
            principal=principal,
            sufficient=False,
            missing_permissions=("root",) if "root" in why else (),
            message=why,
        )

    async def list_regions(self, account: CloudAccount) -> Sequence[Region]:
        return [region()]

    async def list_instance_types(
        self, account: CloudAccount, region: str
    ) -> Sequence[InstanceType]:
        self._region(region)
        return INSTANCE_TYPES

    async def list_images(self, account: CloudAccount, region: str) -> Sequence[Image]:
        self._region(region)
        return [host_image()]

    async def create_instances(
        self, account: CloudAccount, request: InstanceRequest, *, log: ProgressLog
    ) -> Sequence[Instance]:
        self._region(request.region)
        kinds = {t.name: t for t in INSTANCE_TYPES}
        kind = kinds.get(request.instance_type)
        if kind is None:
            raise Invalid(
                f"the local cloud has no instance type {request.instance_type!r} "
                f"(it has {', '.join(kinds)})",
                field="instance_type",
            )
        if request.image != host_image().id:
            raise Invalid(f"the local cloud has one image, {host_image().id!r}", field="image")
        if request.zones and ZONE not in request.zones:
            raise Invalid(f"the local cloud has one zone, {ZONE!r}", field="zones")
        hosts = self.hosts(account)
        step = f"Local hosts {', '.join(request.names)}"
        await log.step(step, StepState.RUNNING)
        try:
            records = await asyncio.to_thread(
                hosts.create,
                names=request.names,
                instance_type=kind.name,
                image=request.image,
                vcpus=kind.vcpus,
                memory_mib=int(kind.memory_gib * 1024),
                user_data=request.user_data,
                tags=request.tags,
                idempotency_key=request.idempotency_key,
            )
        except Exception as exc:
            await log.step(step, StepState.FAILED, str(exc))
            raise
        await log.step(step, StepState.COMPLETED, ", ".join(r.address for r in records))
        return [_instance(hosts, record) for record in records]

    async def describe_instances(
        self,
        account: CloudAccount,
        region: str,
        *,
        instance_ids: Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Sequence[Instance]:
        self._region(region)
        hosts = self.hosts(account)
        records = await asyncio.to_thread(hosts.records)
        found = []
        for record in records:
            if instance_ids is not None and record.id not in instance_ids:
                continue
            if tags and any(record.tags.get(k) != v for k, v in tags.items()):
                continue
            found.append(_instance(hosts, record))
        return found

    async def start_instances(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> None:
        self._region(region)
        await asyncio.to_thread(self.hosts(account).start, instance_ids)

    async def stop_instances(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> None:
        self._region(region)
        await asyncio.to_thread(self.hosts(account).stop, instance_ids)

    async def delete_instances(
        self, account: CloudAccount, region: str, instance_ids: Sequence[str]
    ) -> None:
        self._region(region)
        await asyncio.to_thread(self.hosts(account).delete, instance_ids)


def _instance(hosts: LocalHosts, record: HostRecord) -> Instance:
    status, _ = hosts.user_data_result(record)
    details = {"namespace": record.namespace, "limits": record.limits}
    if status is not None:
        details["user_data_exit_status"] = str(status)
    return Instance(
        id=record.id,
        name=record.name,
        state=_STATES.get(hosts.observed_state(record), InstanceState.UNKNOWN),
        region=REGION,
        zone=ZONE,
        instance_type=record.instance_type,
        image=record.image,
        private_ip=record.address,
        launched_at=datetime.fromisoformat(record.launched_at) if record.launched_at else None,
        tags=dict(record.tags),
        details=details,
    )
