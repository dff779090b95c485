"""Cloud accounts: an organization's cloud credentials and the provider plugin that uses them.

Credentials are decoded by the provider's own struct, checked with the provider when the account
is created, encrypted at rest with the platform key and decrypted only to hand them to the
provider for one call; the API never returns them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from corral_core.clusters.models import CloudAccountRecord
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.db import Database, utcnow
from corral_core.identity.roles import Principal, Role
from corral_core.networks.spec import NETWORK_KIND
from corral_core.plugins import Kernel
from corral_core.resources.models import Resource
from corral_core.secrets import SecretBox
from corral_sdk.config import describe_validation_error
from corral_sdk.errors import Conflict, CorralError, Invalid, NotFound, PermissionDenied
from corral_sdk.providers.cloud import CloudAccount, CloudProvider
from corral_sdk.wire import CloudAccountCreate, CloudAccountInfo

__all__ = ["CloudAccounts", "account_info"]

_NAME = re.compile(r"^[a-z0-9]{1,63}$")


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
    )


class CloudAccounts:
    def __init__(self, db: Database, kernel: Kernel, secrets: SecretBox) -> None:
        self.db = db
        self.kernel = kernel
        self.secrets = secrets
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
            record = self.kernel.cloud(data.provider)
        except NotFound:
            known = ", ".join(sorted(self.kernel.clouds())) or "none installed"
            raise Invalid(
                f"cloud provider {data.provider!r} is not installed (installed: {known})",
                field="provider",
            ) from None
        if record.credentials is not None:
            try:
                credentials = msgspec.convert(data.credentials, record.credentials)
            except msgspec.ValidationError as exc:
                field, message = describe_validation_error(exc, prefix="credentials")
                raise Invalid(message, field=field) from None
        elif data.credentials:
            raise Invalid(
                f"cloud provider {data.provider!r} takes no credentials", field="credentials"
            )
        else:
            credentials = None
        account = CloudAccount(
            name=data.name, credentials=credentials, govcloud=data.govcloud, settings=data.settings
        )
        check = await self.provider(data.provider).validate_credentials(account)
        row = CloudAccountRecord(
            org=principal.org,
            name=data.name,
            provider=data.provider,
            govcloud=data.govcloud,
            settings=dict(data.settings),
            credentials=self.secrets.encrypt(json.dumps(data.credentials))
            if data.credentials
            else "",
            principal=check.principal,
            permissions="sufficient" if check.sufficient else "insufficient",
            message=check.message,
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
        return row

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
