"""What OS snapshots and static IPs share: their cloud account, their owner as a principal,
their step log and how they are listed and shown."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlmodel import col, select

from corral_core.clusters.accounts import CloudAccounts
from corral_core.clusters.models import CloudAccountRecord, ProvisionStep
from corral_core.db import Database
from corral_core.identity.authn import Authenticator
from corral_core.identity.models import User
from corral_core.identity.roles import Principal
from corral_core.networks.service import PROVISION_TAB
from corral_core.plugins import Kernel
from corral_sdk.errors import Conflict, Invalid, NotFound
from corral_sdk.features import CloudFeature
from corral_sdk.wire import ResourceStep

__all__ = ["DESCRIPTION_MAX", "Clock", "Owners", "check_description", "cloud_account", "steps_of"]

Clock = Callable[[], datetime]
DESCRIPTION_MAX = 100


def check_description(description: str) -> None:
    if len(description) > DESCRIPTION_MAX:
        raise Invalid(
            f"description must be {DESCRIPTION_MAX} characters or fewer "
            f"(it has {len(description)})",
            field="description",
        )


async def cloud_account(
    accounts: CloudAccounts, kernel: Kernel, org: str, name: str, feature: CloudFeature, what: str
) -> CloudAccountRecord:
    """Cloud account ``name`` of ``org`` if its provider has ``feature``; else ``Invalid``
    naming ``cloud_account``."""
    try:
        row = await accounts.get(org, name)
    except NotFound:
        raise Invalid(f"{org} has no cloud account named {name!r}", field="cloud_account") from None
    try:
        features = kernel.cloud(row.provider).features
    except NotFound:
        raise Invalid(
            f"cloud account {name!r} uses cloud provider {row.provider!r}, which is not installed",
            field="cloud_account",
        ) from None
    if feature not in features:
        raise Invalid(
            f"cloud account {name!r} is on {row.provider}, which has no {what}",
            field="cloud_account",
        )
    if row.deleting_at is not None:
        raise Conflict(f"cloud account {name!r} is being deleted", reason="account-deleting")
    return row


class Owners:
    """The owner of a resource as a principal, for checks a reconciler makes on their behalf."""

    def __init__(self, db: Database, authn: Authenticator) -> None:
        self.db, self.authn = db, authn

    async def principal(self, username: str) -> Principal:
        async with self.db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == username))).first()
        if user is None:
            raise NotFound(f"user {username!r} no longer exists")
        return await self.authn.principal(user)


async def steps_of(db: Database, resource_id: int) -> list[ResourceStep]:
    async with db.session() as session:
        rows = await session.exec(
            select(ProvisionStep)
            .where(col(ProvisionStep.resource_id) == resource_id)
            .where(col(ProvisionStep.log) == PROVISION_TAB)
            .order_by(col(ProvisionStep.position), col(ProvisionStep.id))
        )
        return [
            ResourceStep(
                name=s.name,
                state=s.state,  # type: ignore[arg-type]
                detail=s.detail,
                updated_at=s.updated_at,
            )
            for s in rows
        ]
