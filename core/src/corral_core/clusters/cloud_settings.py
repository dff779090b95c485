"""An organization's cloud settings: the instance types its users may choose, and the capacity
reservations it mapped to groups.

Instance type policy: in ``default`` mode every type is allowed. In ``custom`` mode each cloud
provider named in ``allowed`` is restricted to its list, and an empty list allows none of that
provider's types (the admin deselected them all: clusters of that provider cannot be defined);
a provider not named is not restricted, so a cloud plugin installed later is usable until the
admin restricts it. The policy is checked when a cluster is defined, changed and started, never
against nodes of a cluster already running.

Capacity reservations: a reservation id (made in the cloud's console) maps to exactly one group
(unique per organization). A cluster partition may launch into it only when the cluster's owner
belongs to that group, and its nodes carry that group in their ``GroupID`` tag so their costs are
the group's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from corral_core.clusters.models import CapacityReservationRecord, OrgInstancePolicy
from corral_core.db import Database, utcnow
from corral_core.identity.models import Group, GroupMember, Org, User
from corral_core.identity.roles import Principal, Role
from corral_core.identity.service import IdentityService
from corral_core.plugins import Kernel
from corral_sdk.errors import Conflict, Invalid, NotFound, PermissionDenied
from corral_sdk.wire import (
    CapacityReservationCreate,
    CapacityReservationInfo,
    CloudPartition,
    InstanceTypePolicy,
    InstanceTypePolicyUpdate,
)

__all__ = ["CloudSettings", "policy_info"]

RESERVATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")
"""AWS ``cr-...``, a Google reservation's name, an Azure capacity reservation group's name."""
INSTANCE_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,254}$")
TYPES_MAX = 10_000


def policy_info(row: OrgInstancePolicy | None) -> InstanceTypePolicy:
    if row is None:
        return InstanceTypePolicy()
    return InstanceTypePolicy(
        mode="custom" if row.mode == "custom" else "default",
        allowed={k: list(v) for k, v in sorted(row.allowed.items())},
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


class CloudSettings:
    def __init__(self, db: Database, kernel: Kernel, identity: IdentityService) -> None:
        self.db = db
        self.kernel = kernel
        self.identity = identity

    async def _org(self, principal: Principal, org: str) -> Org:
        # another organization is "not found" before any role is looked at
        return await self.identity.org_for(principal, org)

    @staticmethod
    def _require_settings(principal: Principal, what: str) -> None:
        if not principal.has(Role.ORG_SETTINGS):
            raise PermissionDenied(
                f"{what} needs the role org:admin or org:settings", reason="role-required"
            )

    # --- instance type policy -------------------------------------------------------------------

    async def policy(self, principal: Principal, org: str) -> InstanceTypePolicy:
        """Every member may read it: the cluster form offers only what it allows."""
        found = await self._org(principal, org)
        assert found.id is not None
        async with self.db.session() as session:
            return policy_info(await session.get(OrgInstancePolicy, found.id))

    async def set_policy(
        self, principal: Principal, org: str, data: InstanceTypePolicyUpdate
    ) -> InstanceTypePolicy:
        found = await self._org(principal, org)
        assert found.id is not None
        self._require_settings(principal, "the instance type policy")
        installed = set(self.kernel.clouds())
        allowed: dict[str, list[str]] = {}
        for provider, names in data.allowed.items():
            if provider not in installed:
                known = ", ".join(sorted(installed)) or "none installed"
                raise Invalid(
                    f"{provider!r} is not an installed cloud provider (installed: {known})",
                    field=f"allowed.{provider}",
                )
            if len(names) > TYPES_MAX:
                raise Invalid(
                    f"at most {TYPES_MAX} instance types per provider", field=f"allowed.{provider}"
                )
            for index, name in enumerate(names):
                if not INSTANCE_TYPE.match(name):
                    raise Invalid(
                        f"{name!r} is not an instance type name",
                        field=f"allowed.{provider}.{index}",
                    )
            allowed[provider] = sorted(set(names))
        if data.mode == "default" and allowed:
            raise Invalid(
                "the default mode allows every instance type: give allowed lists with "
                "mode 'custom'",
                field="allowed",
            )
        async with self.db.session() as session:
            row = await session.get(OrgInstancePolicy, found.id)
            if row is None:
                row = OrgInstancePolicy(org_id=found.id)
            row.mode, row.allowed = data.mode, allowed
            row.updated_by, row.updated_at = principal.username, utcnow()
            session.add(row)
            await session.commit()
            await session.refresh(row)
            return policy_info(row)

    async def allowed_types(self, org: str, provider: str) -> frozenset[str] | None:
        """The instance types of ``provider`` the organization (by name) allows; ``None`` when
        it allows every one."""
        async with self.db.session() as session:
            row = (
                await session.exec(
                    select(OrgInstancePolicy)
                    .join(Org, col(Org.id) == col(OrgInstancePolicy.org_id))
                    .where(col(Org.name) == org)
                )
            ).first()
        if row is None or row.mode != "custom" or provider not in row.allowed:
            return None
        return frozenset(row.allowed[provider])

    @staticmethod
    def check_types(
        allowed: frozenset[str] | None, provider: str, chosen: Iterable[tuple[str, str, bool]]
    ) -> None:
        """Raise ``Invalid`` naming the field of the first type ``allowed`` does not hold.

        ``chosen``: ``(field, instance type, whether the definition named it)``; a type the
        definition left empty is the provider's default (its smallest)."""
        if allowed is None:
            return
        for field, name, named in chosen:
            if name in allowed:
                continue
            offered = ", ".join(sorted(allowed)[:20]) or f"no {provider} instance type"
            which = f"instance type {name!r}" if named else f"the default instance type {name!r}"
            raise Invalid(
                f"{which} is not allowed by your organization's instance type policy "
                f"(allowed on {provider}: {offered})",
                field=field,
                reason="instance-type-not-allowed",
            )

    # --- capacity reservations ------------------------------------------------------------------

    async def _group_names(self, ids: Iterable[int]) -> dict[int, str]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(Group.id, Group.name).where(col(Group.id).in_(list(set(ids))))
            )
            return {gid: name for gid, name in rows if gid is not None}

    @staticmethod
    def _info(row: CapacityReservationRecord, groups: dict[int, str]) -> CapacityReservationInfo:
        return CapacityReservationInfo(
            reservation_id=row.reservation_id,
            group=groups.get(row.group_id, ""),
            description=row.description,
            created_by=row.created_by,
            created_at=row.created_at,
        )

    async def reservations(self, principal: Principal, org: str) -> list[CapacityReservationInfo]:
        """All of them for org:admin and org:settings; the ones of their groups for others
        (what the cluster form offers them)."""
        found = await self._org(principal, org)
        query = select(CapacityReservationRecord).where(
            col(CapacityReservationRecord.org_id) == found.id
        )
        if not principal.has(Role.ORG_SETTINGS):
            if found.id != principal.org_id:
                return []
            query = query.where(col(CapacityReservationRecord.group_id).in_(principal.group_ids))
        async with self.db.session() as session:
            rows = list(
                await session.exec(query.order_by(col(CapacityReservationRecord.reservation_id)))
            )
        groups = await self._group_names(r.group_id for r in rows)
        return [self._info(r, groups) for r in rows]

    async def add_reservation(
        self, principal: Principal, org: str, data: CapacityReservationCreate
    ) -> CapacityReservationInfo:
        found = await self._org(principal, org)
        self._require_settings(principal, "mapping capacity reservations")
        if not RESERVATION_ID.match(data.reservation_id):
            raise Invalid(
                f"{data.reservation_id!r} is not a reservation id (letters, digits, '.', '_', "
                "':' and '-', up to 255)",
                field="reservation_id",
            )
        if len(data.description) > 255:
            raise Invalid("description must be 255 characters or fewer", field="description")
        async with self.db.session() as session:
            group = (
                await session.exec(
                    select(Group)
                    .where(col(Group.org_id) == found.id)
                    .where(col(Group.name) == data.group)
                )
            ).first()
            if group is None or group.id is None:
                raise Invalid(f"no group named {data.group!r} in {found.name}", field="group")
            assert found.id is not None
            row = CapacityReservationRecord(
                org_id=found.id,
                reservation_id=data.reservation_id,
                group_id=group.id,
                description=data.description,
                created_by=principal.username,
            )
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(
                    f"reservation {data.reservation_id!r} is already mapped to a group of "
                    f"{found.name} (a reservation maps to exactly one group: delete it first)",
                    reason="reservation-mapped",
                ) from None
            await session.refresh(row)
            return self._info(row, {group.id: group.name})

    async def delete_reservation(self, principal: Principal, org: str, reservation_id: str) -> None:
        found = await self._org(principal, org)
        async with self.db.session() as session:
            row = (
                await session.exec(
                    select(CapacityReservationRecord)
                    .where(col(CapacityReservationRecord.org_id) == found.id)
                    .where(col(CapacityReservationRecord.reservation_id) == reservation_id)
                )
            ).first()
            if row is None:
                raise NotFound(
                    f"{found.name} has no capacity reservation {reservation_id!r}",
                    reason="resource-not-found",
                )
            self._require_settings(principal, "mapping capacity reservations")
            await session.delete(row)
            await session.commit()

    async def reservation_groups(
        self, org: str, owner: str, partitions: Sequence[CloudPartition]
    ) -> dict[str, str]:
        """The group each partition with a capacity reservation launches for (partition name
        to group name). Raises ``Invalid`` naming the partition's field when its reservation
        is not mapped in the organization ``org``, or mapped to a group ``owner`` is not in."""
        wanted = {
            i: p.capacity_reservation_id
            for i, p in enumerate(partitions)
            if p.capacity_reservation and p.capacity_reservation_id
        }
        if not wanted:
            return {}
        async with self.db.session() as session:
            rows = list(
                await session.exec(
                    select(CapacityReservationRecord, Group.name)
                    .join(Org, col(Org.id) == col(CapacityReservationRecord.org_id))
                    .join(Group, col(Group.id) == col(CapacityReservationRecord.group_id))
                    .where(col(Org.name) == org)
                    .where(col(CapacityReservationRecord.reservation_id).in_(wanted.values()))
                )
            )
            member_of = set(
                await session.exec(
                    select(GroupMember.group_id)
                    .join(User, col(User.id) == col(GroupMember.user_id))
                    .where(col(User.username) == owner)
                )
            )
        mapped = {r.reservation_id: (r.group_id, name) for r, name in rows}
        groups: dict[str, str] = {}
        for index, reservation in wanted.items():
            field = f"cloud.partitions.{index}.capacity_reservation_id"
            if reservation not in mapped:
                raise Invalid(
                    f"capacity reservation {reservation!r} is not mapped to a group of your "
                    "organization (an org admin maps it under Cloud > Reservations)",
                    field=field,
                    reason="reservation-not-mapped",
                )
            group_id, group = mapped[reservation]
            if group_id not in member_of:
                raise Invalid(
                    f"capacity reservation {reservation!r} belongs to another group: "
                    f"{owner} is not a member of it",
                    field=field,
                    reason="reservation-not-yours",
                )
            groups[partitions[index].name] = group
        return groups
