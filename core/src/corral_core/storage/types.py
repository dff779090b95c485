"""Storage types as the kernel uses them: the installed records, their providers, options
decoded by each type's own struct, the cloud account a storage lives in, and the
:class:`~corral_sdk.providers.storage.StorageSpec` a provider is handed."""

from __future__ import annotations

from typing import Any

import msgspec

from corral_core.clusters.accounts import CloudAccounts
from corral_core.clusters.models import CloudAccountRecord
from corral_core.plugins import Kernel
from corral_sdk.config import describe_validation_error
from corral_sdk.errors import Conflict, Invalid, NotFound
from corral_sdk.features import StorageCategory
from corral_sdk.providers.storage import StorageSpec, StorageType
from corral_sdk.records import StorageTypeRecord

__all__ = ["StorageTypes", "type_label"]

OPTIONS = "storage_options"


def type_label(record: StorageTypeRecord) -> str:
    return record.label or record.name


class StorageTypes:
    def __init__(self, kernel: Kernel, accounts: CloudAccounts) -> None:
        self.kernel = kernel
        self.accounts = accounts
        self._providers: dict[str, StorageType] = {}

    def record(self, name: str) -> StorageTypeRecord:
        """The installed type ``name``; ``Invalid`` naming ``type`` when there is none."""
        try:
            return self.kernel.storage_type(name)
        except NotFound:
            known = ", ".join(sorted(self.kernel.storage_types())) or "none installed"
            raise Invalid(
                f"type: there is no storage type {name!r} (installed: {known})", field="type"
            ) from None

    def provider(self, name: str) -> StorageType:
        if name not in self._providers:
            self._providers[name] = self.record(name).create()
        return self._providers[name]

    @staticmethod
    def options(record: StorageTypeRecord, raw: dict[str, Any]) -> Any:
        """``raw`` decoded by the type's options struct; ``Invalid`` naming the option."""
        if record.config is None:
            if raw:
                raise Invalid(f"{OPTIONS}: {record.name} takes no options", field=OPTIONS)
            return None
        try:
            return msgspec.convert(raw, record.config)
        except msgspec.ValidationError as exc:
            field, message = describe_validation_error(exc, prefix=OPTIONS)
            raise Invalid(message, field=field or OPTIONS) from None
        except Invalid as exc:  # raised by the struct's own checks (__post_init__)
            raise _under_options(exc) from None

    @staticmethod
    def check_ephemeral(record: StorageTypeRecord, ephemeral: bool) -> None:
        if ephemeral and record.category is not StorageCategory.LUSTRE:
            raise Invalid(
                f"ephemeral: only Lustre storage may be ephemeral, and {record.name} is "
                f"{record.category.value} storage",
                field="ephemeral",
            )

    async def account(
        self, org: str, record: StorageTypeRecord, name: str
    ) -> CloudAccountRecord | None:
        """The cloud account ``name`` of ``org`` for a storage of ``record``'s type; ``Invalid``
        naming ``cloud_account`` when it is missing, unknown or of another cloud."""
        if not record.cloud:
            if name:
                raise Invalid(
                    f"cloud_account: {record.name} storage lives in no cloud account",
                    field="cloud_account",
                )
            return None
        if not name:
            raise Invalid(
                f"cloud_account: {type_label(record)} storage needs a cloud account on "
                f"{record.cloud}",
                field="cloud_account",
            )
        try:
            row = await self.accounts.get(org, name)
        except NotFound:
            raise Invalid(
                f"cloud_account: {org} has no cloud account named {name!r}",
                field="cloud_account",
            ) from None
        if row.provider != record.cloud:
            raise Invalid(
                f"cloud_account: {name!r} is a {row.provider} account; {type_label(record)} "
                f"storage needs a {record.cloud} account",
                field="cloud_account",
            )
        if row.deleting_at is not None:
            raise Conflict(f"cloud account {name!r} is being deleted", reason="account-deleting")
        return row

    def spec(
        self,
        record: StorageTypeRecord,
        *,
        name: str,
        resource_id: str,
        options: Any,
        account: CloudAccountRecord | None,
        ephemeral: bool = False,
        tags: dict[str, str] | None = None,
    ) -> StorageSpec:
        return StorageSpec(
            name=name,
            resource_id=resource_id,
            options=options,
            account=self.accounts.account(account) if account is not None else None,
            ephemeral=ephemeral,
            tags=dict(tags or {}),
        )

    async def validate(self, record: StorageTypeRecord, spec: StorageSpec) -> None:
        """The type's own rules (no cloud call); ``Invalid`` naming the option."""
        try:
            await self.provider(record.name).validate(spec)
        except Invalid as exc:
            raise _under_options(exc) from None


def _under_options(exc: Invalid) -> Invalid:
    field = exc.field or ""
    if field and not field.startswith((OPTIONS, "cloud_account", "ephemeral")):
        field = f"{OPTIONS}.{field}"
    message = exc.message
    if field and not message.startswith(field):
        message = f"{field}: {message}"
    return Invalid(message, field=field or OPTIONS, reason=exc.reason)
