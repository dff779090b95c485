"""Cloud accounts: an organization's cloud credentials and the provider plugin that uses them.

Credentials are decoded by the provider's own struct (malformed ones are refused at once),
encrypted at rest with the platform key and decrypted only to hand them to the provider for one
call; the API never returns them. Whether they authenticate and hold the permissions Corral needs
is checked by a background job after every create and update (and on demand): the account shows
``checking``, then ``sufficient``, ``insufficient`` (with the missing permissions and the
provider's guide) or ``error``.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from corral_core.cloud_resources.spec import OS_SNAPSHOT_KIND, STATIC_IP_KIND
from corral_core.clusters.cloud_settings import CloudSettings
from corral_core.clusters.models import CloudAccountRecord
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.db import Database, utcnow
from corral_core.identity.roles import Principal, Role
from corral_core.leases import release_lease, try_acquire_lease
from corral_core.networks.spec import NETWORK_KIND
from corral_core.plugins import Kernel
from corral_core.resources.models import Resource
from corral_core.secrets import SecretBox
from corral_core.storage.spec import STORAGE_KIND
from corral_sdk.config import describe_validation_error
from corral_sdk.errors import Conflict, CorralError, Invalid, NotFound, PermissionDenied
from corral_sdk.providers.cloud import CloudAccount, CloudProvider, CredentialCheck
from corral_sdk.wire import (
    CloudAccountCreate,
    CloudAccountInfo,
    CloudAccountUpdate,
    InstanceTypeInfo,
    InstanceTypeList,
)

__all__ = ["CloudAccounts", "account_info"]

log = logging.getLogger("corral.clusters")

_NAME = re.compile(r"^[a-z0-9]{1,63}$")
CHECK_LEASE_SECONDS = 300.0
CHECK_ROUNDS = 5
"""Validations one job runs back to back when updates keep asking for newer ones."""


def account_info(row: CloudAccountRecord) -> CloudAccountInfo:
    return CloudAccountInfo(
        name=row.name,
        provider=row.provider,
        govcloud=row.govcloud,
        settings=dict(row.settings),
        principal=row.principal,
        permissions=row.permissions,  # type: ignore[arg-type]
        message=row.message,
        credentials_updated_at=row.credentials_updated_at,
        created_at=row.created_at,
        deleting=row.deleting_at is not None,
        missing_permissions=list(row.missing_permissions),
        guide_url=row.guide_url,
        validated_at=row.validated_at,
    )


class CloudAccounts:
    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        secrets: SecretBox,
        settings: CloudSettings,
        enqueue_validation: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.kernel = kernel
        self.secrets = secrets
        self.settings = settings
        """The organization's instance type policy and capacity reservations."""
        self.enqueue_validation = enqueue_validation
        """Sends an account id to the validation job; ``None``: validate within the call."""
        self._providers: dict[str, CloudProvider] = {}
        self.retire_network: Callable[[int], Awaitable[None]] | None = None
        """Starts the deletion of a network (by resource id) when its account is deleted."""

    def provider(self, name: str) -> CloudProvider:
        if name not in self._providers:
            self._providers[name] = self.kernel.cloud(name).create()
        return self._providers[name]

    def account(self, row: CloudAccountRecord) -> CloudAccount:
        """The account as a provider receives it, credentials decrypted for this call."""
        record = self.kernel.cloud(row.provider)
        raw: dict[str, Any] = (
            json.loads(self.secrets.decrypt(row.credentials)) if row.credentials else {}
        )
        credentials = msgspec.convert(raw, record.credentials) if record.credentials else None
        return CloudAccount(
            name=row.name, credentials=credentials, govcloud=row.govcloud, settings=row.settings
        )

    @staticmethod
    def _require_admin(principal: Principal) -> None:
        if not principal.has(Role.ORG_ADMIN):
            raise PermissionDenied("managing cloud accounts needs org:admin")

    async def create(self, principal: Principal, data: CloudAccountCreate) -> CloudAccountRecord:
        self._require_admin(principal)
        if not _NAME.match(data.name):
            raise Invalid(
                f"cloud account name {data.name!r} must be lowercase letters and digits only",
                field="name",
            )
        try:
            self.kernel.cloud(data.provider)
        except NotFound:
            known = ", ".join(sorted(self.kernel.clouds())) or "none installed"
            raise Invalid(
                f"cloud provider {data.provider!r} is not installed (installed: {known})",
                field="provider",
            ) from None
        self._decode_credentials(data.provider, data.credentials)
        row = CloudAccountRecord(
            org=principal.org,
            name=data.name,
            provider=data.provider,
            govcloud=data.govcloud,
            settings=dict(data.settings),
            credentials=self.secrets.encrypt(json.dumps(data.credentials))
            if data.credentials
            else "",
            permissions="checking",
            validation=1,
            created_by=principal.username,
        )
        async with self.db.session() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(
                    f"{principal.org} already has a cloud account named {data.name!r}",
                    reason="name-taken",
                ) from None
            await session.refresh(row)
        return await self._validate_later(row)

    def _decode_credentials(self, provider: str, raw: dict[str, Any]) -> Any:
        """The provider's credentials struct from ``raw``; malformed fields are refused here,
        before any call to the cloud."""
        record = self.kernel.cloud(provider)
        if record.credentials is None:
            if raw:
                raise Invalid(
                    f"cloud provider {provider!r} takes no credentials", field="credentials"
                )
            return None
        try:
            return msgspec.convert(raw, record.credentials)
        except msgspec.ValidationError as exc:
            field, message = describe_validation_error(exc, prefix="credentials")
            raise Invalid(message, field=field) from None

    async def update(
        self, principal: Principal, name: str, data: CloudAccountUpdate
    ) -> CloudAccountRecord:
        """New credentials (merged over the stored ones: every field can change), settings or
        GovCloud flag; any of them starts a new validation. Name and provider are immutable."""
        row = await self.get(principal.org, name)  # another organization's: 404, never 403
        self._require_admin(principal)
        for fixed in ("name", "provider"):
            if getattr(data, fixed) is not None:
                raise Invalid(
                    f"a cloud account's {fixed} cannot change (create another account instead)",
                    field=fixed,
                    reason="immutable",
                )
        values: dict[str, Any] = {}
        if data.credentials is not None:
            stored: dict[str, Any] = (
                json.loads(self.secrets.decrypt(row.credentials)) if row.credentials else {}
            )
            merged = {**stored, **data.credentials}
            self._decode_credentials(row.provider, merged)
            values["credentials"] = self.secrets.encrypt(json.dumps(merged)) if merged else ""
            values["credentials_updated_at"] = utcnow()
        if data.settings is not None:
            values["settings"] = dict(data.settings)
        if data.govcloud is not None:
            values["govcloud"] = data.govcloud
        if not values:
            return row
        async with self.db.session() as session:
            await session.exec(
                update(CloudAccountRecord)
                .where(col(CloudAccountRecord.id) == row.id)
                .values(
                    permissions="checking",
                    validation=col(CloudAccountRecord.validation) + 1,
                    **values,
                )
            )
            await session.commit()
        return await self._validate_later(await self.get(principal.org, name))

    async def revalidate(self, principal: Principal, name: str) -> CloudAccountRecord:
        """Check the account's credentials and permissions again (``POST .../validate``)."""
        row = await self.get(principal.org, name)
        self._require_admin(principal)
        async with self.db.session() as session:
            await session.exec(
                update(CloudAccountRecord)
                .where(col(CloudAccountRecord.id) == row.id)
                .values(permissions="checking", validation=col(CloudAccountRecord.validation) + 1)
            )
            await session.commit()
        return await self._validate_later(await self.get(principal.org, name))

    async def _validate_later(self, row: CloudAccountRecord) -> CloudAccountRecord:
        assert row.id is not None
        if self.enqueue_validation is not None:
            await self.enqueue_validation(row.id)
            return row
        await self.validate(row.id)
        return await self.get(row.org, row.name)

    async def validate(self, account_id: int) -> None:
        """The validation job: ask the provider whether the account's credentials authenticate
        and suffice, and record the answer unless a newer validation was asked for meanwhile.
        Idempotent; one process at a time per account."""
        lease, holder = f"cloud-account-check:{account_id}", uuid.uuid4().hex
        if not await try_acquire_lease(self.db, lease, holder, CHECK_LEASE_SECONDS):
            return
        try:
            for _ in range(CHECK_ROUNDS):
                async with self.db.session() as session:
                    row = await session.get(CloudAccountRecord, account_id)
                if row is None or row.permissions != "checking":
                    return
                number = row.validation
                outcome: dict[str, Any]
                try:
                    account = self.account(row)
                    check = await self.provider(row.provider).validate_credentials(account)
                except CorralError as exc:
                    outcome = _failed(exc.message)
                except Exception:  # a provider bug must not leave the account checking forever
                    log.exception("validating cloud account %s failed", account_id)
                    outcome = _failed("the provider failed unexpectedly (see the server log)")
                else:
                    outcome = _outcome(check)
                    if check.credentials is not None:
                        # replaced credentials (a rotated key): stored, then checked again,
                        # with which the provider retires what they replace
                        outcome = {
                            "credentials": self.secrets.encrypt(
                                json.dumps(msgspec.to_builtins(check.credentials))
                            ),
                            "credentials_updated_at": utcnow(),
                        }
                async with self.db.session() as session:
                    done = await session.exec(
                        update(CloudAccountRecord)
                        .where(col(CloudAccountRecord.id) == account_id)
                        .where(col(CloudAccountRecord.validation) == number)
                        .values(validated_at=utcnow(), **outcome)
                    )
                    await session.commit()
                if done.rowcount and "permissions" in outcome:
                    return  # else new credentials to check, or a newer validation asked for
        finally:
            await release_lease(self.db, lease, holder)

    async def due_validations(self) -> list[int]:
        """Accounts whose validation has not finished, for the sweep to enqueue again (its
        message may have been lost with a killed process; a duplicate finds the lease held or
        the result recorded, and does nothing)."""
        async with self.db.session() as session:
            rows = await session.exec(
                select(CloudAccountRecord.id).where(
                    col(CloudAccountRecord.permissions) == "checking"
                )
            )
            return [i for i in rows if i is not None]

    async def instance_types(
        self,
        principal: Principal,
        name: str,
        region: str = "",
        *,
        include_disallowed: bool = False,
    ) -> InstanceTypeList:
        """The instance types of the account's region (default: its first), with vCPUs,
        memory, GPUs and prices, marked (and unless ``include_disallowed`` filtered) by the
        organization's instance type policy."""
        row = await self.get(principal.org, name)
        provider, account = self.provider(row.provider), self.account(row)
        if not region:
            regions = list(await provider.list_regions(account))
            if not regions:
                raise NotFound(f"cloud account {name!r} offers no region", reason="no-region")
            region = regions[0].name
        try:
            offered = list(await provider.list_instance_types(account, region))
        except NotFound as exc:
            raise Invalid(exc.message, field="region") from None
        allowed = await self.settings.allowed_types(row.org, row.provider)
        items = []
        for kind in sorted(offered, key=lambda t: (t.vcpus, t.memory_gib, t.name)):
            ok = allowed is None or kind.name in allowed
            if not ok and not include_disallowed:
                continue
            items.append(
                InstanceTypeInfo(
                    name=kind.name,
                    vcpus=kind.vcpus,
                    memory_gib=kind.memory_gib,
                    gpus=kind.gpus,
                    gpu_model=kind.gpu_model,
                    gpu_memory_gib=kind.gpu_memory_gib,
                    architecture=str(kind.architecture),
                    price_per_hour=_money(kind.price_per_hour),
                    spot_price_per_hour=_money(kind.spot_price_per_hour),
                    currency=kind.currency,
                    zones=list(kind.zones),
                    allowed=ok,
                )
            )
        return InstanceTypeList(account=name, provider=row.provider, region=region, items=items)

    async def list(self, org: str) -> list[CloudAccountRecord]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(CloudAccountRecord)
                .where(col(CloudAccountRecord.org) == org)
                .order_by(col(CloudAccountRecord.name))
            )
            return list(rows)

    async def get(self, org: str, name: str) -> CloudAccountRecord:
        async with self.db.session() as session:
            row = (
                await session.exec(
                    select(CloudAccountRecord)
                    .where(col(CloudAccountRecord.org) == org)
                    .where(col(CloudAccountRecord.name) == name)
                )
            ).first()
        if row is None:
            raise NotFound(
                f"{org} has no cloud account named {name!r}", reason="resource-not-found"
            )
        return row

    async def delete(self, principal: Principal, name: str) -> None:
        """Delete an account, refused while clusters built with it are not off. Its networks
        are deprovisioned first (they go ``Deleting``); the account goes with the last one."""
        row = await self.get(principal.org, name)  # another organization's: 404, never 403
        self._require_admin(principal)
        async with self.db.session() as session:
            clusters = await session.exec(
                select(Resource)
                .where(col(Resource.kind) == CLUSTER_KIND)
                .where(col(Resource.org) == principal.org)
            )
            using = [
                f"{r.owner}/{r.name}"
                for r in clusters
                if (r.spec.get("cloud") or {}).get("cloud_account") == name
                and r.observed_state != "off"
            ]
            if using:
                raise Conflict(
                    f"cloud account {name!r} still has infrastructure: clusters "
                    f"{', '.join(using)} are not off (destroy them first)",
                    reason="account-in-use",
                )
            kept = [
                f"{r.kind} {r.owner}/{r.name}"
                for r in await session.exec(
                    select(Resource)
                    .where(col(Resource.kind).in_([OS_SNAPSHOT_KIND, STATIC_IP_KIND, STORAGE_KIND]))
                    .where(col(Resource.org) == principal.org)
                )
                if r.spec.get("cloud_account") == name
                and r.observed_state != "deleted"
                # stopped storage holds nothing at the cloud; it is refused at its next start
                and not (r.kind == STORAGE_KIND and _stopped(r))
            ]
            if kept:
                raise Conflict(
                    f"cloud account {name!r} still has infrastructure: {', '.join(kept)} "
                    "(delete them first)",
                    reason="account-in-use",
                )
            networks = [
                r.id
                for r in await session.exec(
                    select(Resource)
                    .where(col(Resource.kind) == NETWORK_KIND)
                    .where(col(Resource.org) == principal.org)
                )
                if r.spec.get("cloud_account") == name and r.id is not None
            ]
            found = await session.get(CloudAccountRecord, row.id)
            if found is not None and not networks:
                await session.delete(found)
            elif found is not None:
                found.deleting_at = found.deleting_at or utcnow()
                session.add(found)
            await session.commit()
        if networks and self.retire_network is None:
            raise CorralError("cloud accounts cannot delete their networks in this process")
        for network_id in networks:
            assert self.retire_network is not None
            await self.retire_network(network_id)

    async def forget_if_retired(self, account_id: int) -> None:
        """Delete an account whose delete waited for its networks, once none is left."""
        async with self.db.session() as session:
            row = await session.get(CloudAccountRecord, account_id)
            if row is None or row.deleting_at is None:
                return
            remaining = [
                r
                for r in await session.exec(
                    select(Resource)
                    .where(col(Resource.kind) == NETWORK_KIND)
                    .where(col(Resource.org) == row.org)
                )
                if r.spec.get("cloud_account") == row.name
            ]
            if not remaining:
                await session.delete(row)
                await session.commit()


def _stopped(resource: Resource) -> bool:
    return resource.desired_state == resource.observed_state == "stopped"


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _failed(message: str) -> dict[str, Any]:
    return {"permissions": "error", "message": message, "missing_permissions": [], "guide_url": ""}


def _outcome(check: CredentialCheck) -> dict[str, Any]:
    return {
        "principal": check.principal,
        "permissions": "sufficient" if check.sufficient else "insufficient",
        "message": check.message,
        "missing_permissions": list(check.missing_permissions),
        "guide_url": check.guide_url,
    }
