"""Organization workflow variables: the ``org`` context of workflows (spec 40 §4.8).

Admins of an organization (``org:admin`` or ``org:settings``) set key/value pairs; every run
started afterwards reads them as ``${{ org.<key> }}`` in its form defaults and in its jobs. A run
keeps the values it started with (in its plan), so a change shows in the next run, never in the
middle of one. Ordinary members do not list them: they only reach them through runs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select

from corral_core.db import Database, utcnow
from corral_core.identity.names import ORG_VARIABLE_KEY
from corral_core.identity.roles import Principal, Role
from corral_core.identity.service import IdentityService
from corral_sdk.errors import Invalid, NotFound, PermissionDenied

__all__ = ["MAX_VALUE_BYTES", "OrgVariable", "OrgVariableService", "org_variables"]

MAX_VALUE_BYTES = 64 * 1024
"""The longest value, in bytes of UTF-8."""


class OrgVariable(SQLModel, table=True):
    """One variable of an organization, read by workflows as ``org.<key>``."""

    __tablename__ = "org_variable"
    __table_args__ = (UniqueConstraint("org_id", "key", name="uq_org_variable_key"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", ondelete="CASCADE")
    key: str = Field(max_length=128)
    value: str = Field(sa_column=Column(Text, nullable=False))
    updated_by: str = Field(max_length=255)
    updated_at: datetime = Field(default_factory=utcnow)


async def org_variables(db: Database, org_id: int) -> dict[str, str]:
    """Every variable of an organization, as runs see them (no permission check)."""
    async with db.session() as session:
        rows = await session.exec(
            select(OrgVariable.key, OrgVariable.value).where(col(OrgVariable.org_id) == org_id)
        )
        return dict(rows.all())


def _check_value(value: str) -> str:
    if "\x00" in value:
        raise Invalid("value: must not contain NUL characters", field="value")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_VALUE_BYTES:
        raise Invalid(
            f"value: {size} bytes is too long: at most {MAX_VALUE_BYTES} bytes (64 KiB)",
            field="value",
        )
    return value


class OrgVariableService:
    """Listing, setting and deleting an organization's variables, for its admins."""

    def __init__(self, db: Database, identity: IdentityService) -> None:
        self._db = db
        self._identity = identity

    async def _org_id(self, principal: Principal, org: str) -> int:
        # another organization is "not found" before any role is looked at
        found = await self._identity.org_for(principal, org)
        assert found.id is not None
        if not principal.has(Role.ORG_SETTINGS):
            raise PermissionDenied(
                "organization variables need the role org:admin or org:settings",
                reason="role-required",
            )
        return found.id

    async def list_variables(self, principal: Principal, org: str) -> list[OrgVariable]:
        org_id = await self._org_id(principal, org)
        async with self._db.session() as session:
            return list(
                await session.exec(
                    select(OrgVariable)
                    .where(col(OrgVariable.org_id) == org_id)
                    .order_by(col(OrgVariable.key))
                )
            )

    async def set_variable(
        self, principal: Principal, org: str, key: str, value: str
    ) -> OrgVariable:
        """Create or replace ``key``; runs started from now on see the new value."""
        org_id = await self._org_id(principal, org)
        ORG_VARIABLE_KEY.check(key, "key")
        _check_value(value)
        for attempt in range(2):
            async with self._db.session() as session:
                row = (
                    await session.exec(
                        select(OrgVariable)
                        .where(col(OrgVariable.org_id) == org_id)
                        .where(col(OrgVariable.key) == key)
                    )
                ).first()
                if row is None:
                    row = OrgVariable(org_id=org_id, key=key, value=value, updated_by="")
                row.value = value
                row.updated_by = principal.username
                row.updated_at = utcnow()
                session.add(row)
                try:
                    await session.commit()
                except IntegrityError:  # set at the same moment by someone else: replace it
                    if attempt:
                        raise
                    continue
                await session.refresh(row)
                return row
        raise AssertionError("unreachable")

    async def delete_variable(self, principal: Principal, org: str, key: str) -> None:
        org_id = await self._org_id(principal, org)
        async with self._db.session() as session:
            row = (
                await session.exec(
                    select(OrgVariable)
                    .where(col(OrgVariable.org_id) == org_id)
                    .where(col(OrgVariable.key) == key)
                )
            ).first()
            if row is None:
                raise NotFound(f"no organization variable named {key!r}", reason="not-found")
            await session.delete(row)
            await session.commit()
