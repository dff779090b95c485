"""The ``network`` permission on cloud accounts: who may create and manage networks under an
account and start clusters on them (spec §4.5). Org admins always hold it; others through a
grant to the whole organization or to one of their groups. New accounts have no grant."""

from __future__ import annotations

from sqlalchemy import delete, or_
from sqlmodel import col, select

from corral_core.clusters.models import CloudAccountGrant, CloudAccountRecord
from corral_core.db import Database
from corral_core.identity.models import Group
from corral_core.identity.roles import Principal, Role
from corral_sdk.errors import Invalid, PermissionDenied
from corral_sdk.wire import CloudAccountAccess

__all__ = ["NETWORK_PERMISSION", "AccountAccess"]

NETWORK_PERMISSION = "network"


class AccountAccess:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def holds(self, principal: Principal, account: CloudAccountRecord) -> bool:
        """Whether the caller holds ``network`` on ``account`` (of their organization)."""
        if account.org != principal.org and not principal.platform_admin:
            return False
        if principal.has(Role.ORG_ADMIN):
            return True
        groups = list(principal.group_ids) or [-1]
        async with self.db.session() as session:
            found = (
                await session.exec(
                    select(CloudAccountGrant.id)
                    .where(col(CloudAccountGrant.account_id) == account.id)
                    .where(col(CloudAccountGrant.permission) == NETWORK_PERMISSION)
                    .where(
                        or_(
                            col(CloudAccountGrant.group_id).is_(None),
                            col(CloudAccountGrant.group_id).in_(groups),
                        )
                    )
                )
            ).first()
        return found is not None

    async def providers_available(self, principal: Principal) -> set[str]:
        """The providers whose cluster types ``principal`` may use (spec §2.8): those of the
        organization's cloud accounts on which they hold ``network``."""
        query = select(CloudAccountRecord.provider).where(
            col(CloudAccountRecord.org) == principal.org
        )
        if not principal.has(Role.ORG_ADMIN):
            groups = list(principal.group_ids) or [-1]
            query = (
                query.join(
                    CloudAccountGrant,
                    col(CloudAccountGrant.account_id) == col(CloudAccountRecord.id),
                )
                .where(col(CloudAccountGrant.permission) == NETWORK_PERMISSION)
                .where(
                    or_(
                        col(CloudAccountGrant.group_id).is_(None),
                        col(CloudAccountGrant.group_id).in_(groups),
                    )
                )
            )
        async with self.db.session() as session:
            return set(await session.exec(query.distinct()))

    async def require(self, principal: Principal, account: CloudAccountRecord, doing: str) -> None:
        if not await self.holds(principal, account):
            raise PermissionDenied(
                f"{doing} needs org:admin or the network permission on cloud account "
                f"{account.name!r}",
                reason="network-permission",
            )

    async def get(self, account: CloudAccountRecord) -> CloudAccountAccess:
        async with self.db.session() as session:
            rows = list(
                await session.exec(
                    select(CloudAccountGrant.group_id, Group.name)
                    .join(Group, col(Group.id) == col(CloudAccountGrant.group_id), isouter=True)
                    .where(col(CloudAccountGrant.account_id) == account.id)
                    .where(col(CloudAccountGrant.permission) == NETWORK_PERMISSION)
                )
            )
        return CloudAccountAccess(
            org_wide=any(group_id is None for group_id, _ in rows),
            groups=sorted(name for group_id, name in rows if group_id is not None and name),
        )

    async def set(
        self, principal: Principal, account: CloudAccountRecord, access: CloudAccountAccess
    ) -> CloudAccountAccess:
        """Replace who holds ``network`` on ``account`` (org:admin only)."""
        if not principal.has(Role.ORG_ADMIN):
            raise PermissionDenied("sharing a cloud account needs org:admin")
        async with self.db.session() as session:
            found = {
                name: group_id
                for group_id, name in await session.exec(
                    select(Group.id, Group.name)
                    .where(col(Group.org_id) == principal.org_id)
                    .where(col(Group.name).in_(access.groups))
                )
            }
            for index, name in enumerate(access.groups):
                if name not in found:
                    raise Invalid(
                        f"no group named {name!r} in {principal.org}", field=f"groups.{index}"
                    )
            await session.exec(
                delete(CloudAccountGrant)
                .where(col(CloudAccountGrant.account_id) == account.id)
                .where(col(CloudAccountGrant.permission) == NETWORK_PERMISSION)
            )
            assert account.id is not None
            wanted: list[int | None] = [found[name] for name in sorted(set(access.groups))]
            if access.org_wide:
                wanted.append(None)
            for group_id in wanted:
                session.add(
                    CloudAccountGrant(
                        account_id=account.id, group_id=group_id, permission=NETWORK_PERMISSION
                    )
                )
            await session.commit()
        return await self.get(account)
