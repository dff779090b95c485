"""Organizations, users and groups, with the role rules of the spec.

Every method takes the calling :class:`Principal` and enforces who may do what. Objects of
another organization are reported as not found, never as forbidden.
"""

from __future__ import annotations

import functools
import secrets
import string
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, Concatenate, Literal, NamedTuple, ParamSpec, TypeVar, cast

from sqlalchemy import BindParameter, Select, bindparam, delete, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from corral_core.db import Database, utcnow
from corral_core.identity.models import (
    Credential,
    Group,
    GroupMember,
    Org,
    SshKey,
    User,
    UserKeyPair,
)
from corral_core.identity.names import GROUP_NAME, ORG_NAME, USERNAME
from corral_core.identity.passwords import check_policy, hash_password
from corral_core.identity.roles import Principal, Role
from corral_core.resources.models import Resource
from corral_sdk.errors import Conflict, Invalid, NotFound, PermissionDenied

__all__ = ["ORG_ROLES", "IdentityService", "UserPage", "UserSummary"]

ORG_ROLES = (Role.ORG_ADMIN, Role.ORG_SETTINGS, Role.ORG_USERS, Role.ORG_GROUPS)
PRIVILEGED = {Role.ORG_ADMIN.value, Role.PLATFORM_ADMIN.value}
SortKey = Literal["username", "email", "created_at", "last_login_at"]


def _require(principal: Principal, *roles: Role) -> None:
    if not principal.has(*roles):
        needed = " or ".join(r.value for r in (Role.ORG_ADMIN, *roles))
        raise PermissionDenied(f"this needs the role {needed}", reason="role-required")


def generate_password() -> str:
    """A random password meeting the policy (for the first admin)."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(20))
    return f"{core}aZ7!"


async def _refuse_if_any_resource(session: AsyncSession, condition: Any, message: str) -> None:
    """Deleting an owner of resources would orphan them: refuse until they are gone."""
    if (await session.exec(select(Resource.id).where(condition).limit(1))).first() is not None:
        raise Conflict(message, reason="owns-resources")


S = TypeVar("S", bound="IdentityService")
P = ParamSpec("P")
R = TypeVar("R")


def _changes_identity(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """After a change to who may do what, cached principals everywhere are forgotten."""

    async def changed(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        result = await method(self, *args, **kwargs)
        if self._on_change is not None:
            await self._on_change()
        return result

    changed.__name__, changed.__doc__ = method.__name__, method.__doc__
    return cast("Callable[Concatenate[S, P], Coroutine[Any, Any, R]]", changed)


class UserSummary(NamedTuple):
    """A user as listed."""

    username: str
    name: str
    email: str
    disabled: bool
    no_seat: bool
    created_at: datetime
    last_login_at: datetime | None


@functools.lru_cache(maxsize=64)
def _user_listing(
    sort_by: str, descending: bool, search: bool, active: bool
) -> tuple[Select[Any], Select[Any]]:
    """The page and count statements of a user listing, built once per shape.

    Plain rows, not ORM objects, and the total as a scalar subquery evaluated once: one round trip
    for the hot path of the admin pages. Values are bound at execution.
    """
    conditions: list[Any] = [col(User.org_id) == bindparam("org_id")]
    if search:
        pattern: BindParameter[str] = bindparam("pattern")
        conditions.append(
            or_(func.lower(User.username).like(pattern), func.lower(User.email).like(pattern))
        )
    if active:
        conditions.append(col(User.disabled) == bindparam("disabled"))
    column = col(getattr(User, sort_by))
    count = select(func.count()).select_from(User).where(*conditions)
    columns: list[Any] = [col(getattr(User, name)) for name in UserSummary._fields]
    columns.append(count.scalar_subquery())
    paged = (
        select(*columns)
        .where(*conditions)
        .order_by(column.desc() if descending else column, col(User.id))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return paged, count


class UserPage(NamedTuple):
    users: list[UserSummary]
    total: int


class IdentityService:
    def __init__(
        self, db: Database, on_change: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._db = db
        self._on_change = on_change

    # --- bootstrap ------------------------------------------------------------------------------

    async def bootstrap(
        self, org_name: str, admin_username: str, admin_password: str | None
    ) -> str | None:
        """On a database with no users: the default org and its platform admin.

        Returns the generated password when none was configured (to be printed once).
        """
        async with self._db.session() as session:
            if (await session.exec(select(User.id).limit(1))).first() is not None:
                return None
        ORG_NAME.check(org_name, "bootstrap.org")
        USERNAME.check(admin_username, "bootstrap.admin_username")
        generated = None
        if not admin_password:
            admin_password = generated = generate_password()
        check_policy(admin_password, "bootstrap.admin_password")
        async with self._db.session() as session:
            org = (await session.exec(select(Org).where(col(Org.name) == org_name))).first()
            if org is None:
                org = Org(name=org_name, display_name=org_name)
                session.add(org)
                await session.flush()
            assert org.id is not None
            user = User(org_id=org.id, username=admin_username, name="Administrator")
            user.password_hash = hash_password(admin_password)
            group = Group(
                org_id=org.id,
                name="platform-admins",
                description="Platform administrators",
                roles=[Role.PLATFORM_ADMIN.value, Role.ORG_ADMIN.value],
            )
            session.add(user)
            session.add(group)
            await session.flush()
            assert user.id is not None and group.id is not None
            session.add(GroupMember(group_id=group.id, user_id=user.id))
            try:
                await session.commit()
            except IntegrityError:  # another process bootstrapped at the same moment
                return None
        return generated

    # --- orgs -----------------------------------------------------------------------------------

    async def org_for(self, principal: Principal, name: str | None) -> Org:
        """The org ``name`` as the caller may see it (their own unless they run the platform)."""
        async with self._db.session() as session:
            if name is None or name == principal.org:
                org = await session.get(Org, principal.org_id)
            elif principal.platform_admin:
                org = (await session.exec(select(Org).where(col(Org.name) == name))).first()
            else:
                managed = (
                    await session.exec(
                        select(Org)
                        .where(col(Org.name) == name)
                        .where(col(Org.managed_by) == principal.org_id)
                    )
                ).first()
                org = managed
        if org is None:
            raise NotFound(f"no organization named {name!r}")
        return org

    async def _org_id(self, principal: Principal, name: str | None) -> int:
        """Like :meth:`org_for`, without a query for the caller's own org (the common case)."""
        if name is None or name == principal.org:
            return principal.org_id
        org = await self.org_for(principal, name)
        assert org.id is not None
        return org.id

    async def org_of(self, username: str) -> str | None:
        """The name of ``username``'s org, or ``None`` when there is no such user."""
        async with self._db.session() as session:
            found = await session.exec(
                select(Org.name)
                .join(User, col(User.org_id) == col(Org.id))
                .where(col(User.username) == username)
            )
            return found.first()

    async def org_by_id(self, org_id: int) -> Org:
        async with self._db.session() as session:
            org = await session.get(Org, org_id)
        if org is None:
            raise NotFound(f"no organization {org_id}")
        return org

    async def list_orgs(self, principal: Principal) -> list[Org]:
        async with self._db.session() as session:
            query = select(Org).order_by(col(Org.name))
            if not principal.platform_admin:
                query = query.where(
                    or_(col(Org.id) == principal.org_id, col(Org.managed_by) == principal.org_id)
                )
            return list(await session.exec(query))

    @_changes_identity
    async def create_org(
        self,
        principal: Principal,
        name: str,
        display_name: str = "",
        seats: int = 0,
        *,
        admin_username: str | None = None,
        admin_password: str | None = None,
        admin_email: str = "",
    ) -> Org:
        """A new organization; with ``admin_username``, its first user in a group ``org-admins``
        holding ``org:admin``."""
        if not principal.platform_admin:
            raise PermissionDenied(
                "creating organizations needs the role platform:admin", reason="role-required"
            )
        ORG_NAME.check(name, "name")
        if seats < 0:
            raise Invalid("seats must be 0 (unlimited) or more", field="seats")
        if admin_username is not None:
            USERNAME.check(admin_username, "admin.username")
            if admin_password is not None:
                check_policy(admin_password, "admin.password")
        org = Org(name=name, display_name=display_name or name, seats=seats)
        async with self._db.session() as session:
            session.add(org)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(
                    f"an organization named {name!r} exists", details={"field": "name"}
                ) from None
            assert org.id is not None
            if admin_username is not None:
                admin = User(
                    org_id=org.id,
                    username=admin_username,
                    email=admin_email,
                    password_hash=hash_password(admin_password) if admin_password else None,
                )
                group = Group(
                    org_id=org.id,
                    name="org-admins",
                    description="Organization administrators",
                    roles=[Role.ORG_ADMIN.value],
                )
                session.add_all([admin, group])
                try:
                    await session.flush()
                except IntegrityError:
                    raise Conflict(
                        f"the username {admin_username!r} is taken",
                        details={"field": "admin.username"},
                    ) from None
                assert admin.id is not None and group.id is not None
                session.add(GroupMember(group_id=group.id, user_id=admin.id))
            await session.commit()
            await session.refresh(org)
        return org

    @_changes_identity
    async def delete_org(self, principal: Principal, name: str, confirm: str) -> None:
        org = await self.org_for(principal, name)
        if not principal.platform_admin:
            raise PermissionDenied(
                "deleting organizations needs the role platform:admin", reason="role-required"
            )
        if confirm != org.name:
            raise Invalid("confirm must repeat the organization's name exactly", field="confirm")
        if org.id == principal.org_id:
            raise Conflict("you cannot delete your own organization")
        async with self._db.session() as session:
            await _refuse_if_any_resource(
                session,
                col(Resource.org) == org.name,
                f"organization {name!r} still has resources: delete them first",
            )
            user_ids = select(User.id).where(col(User.org_id) == org.id)
            group_ids = select(Group.id).where(col(Group.org_id) == org.id)
            await session.exec(delete(GroupMember).where(col(GroupMember.group_id).in_(group_ids)))
            await session.exec(delete(GroupMember).where(col(GroupMember.user_id).in_(user_ids)))
            for table in (Credential, SshKey, UserKeyPair):
                await session.exec(delete(table).where(col(table.user_id).in_(user_ids)))
            await session.exec(delete(Group).where(col(Group.org_id) == org.id))
            await session.exec(delete(User).where(col(User.org_id) == org.id))
            await session.exec(delete(Org).where(col(Org.id) == org.id))
            await session.commit()

    # --- users ----------------------------------------------------------------------------------

    async def _seat_check(self, org: Org) -> None:
        if not org.seats:
            return
        async with self._db.session() as session:
            used = (
                await session.exec(
                    select(func.count())
                    .select_from(User)
                    .where(col(User.org_id) == org.id)
                    .where(col(User.disabled).is_(False))
                    .where(col(User.no_seat).is_(False))
                )
            ).one()
        if used >= org.seats:
            raise Conflict(
                f"organization {org.name!r} has no seat left ({org.seats} in use)",
                reason="no-seats-left",
            )

    async def list_users(
        self,
        principal: Principal,
        *,
        org: str | None = None,
        search: str | None = None,
        active: bool | None = None,
        limit: int = 50,
        offset: int = 0,
        sort_by: SortKey = "username",
        descending: bool = False,
    ) -> UserPage:
        _require(principal, Role.ORG_USERS)
        params: dict[str, Any] = {
            "org_id": await self._org_id(principal, org),
            "limit": limit,
            "offset": offset,
        }
        if search:
            params["pattern"] = f"%{search.lower()}%"
        if active is not None:
            params["disabled"] = not active
        paged, count = _user_listing(sort_by, descending, bool(search), active is not None)
        rows = await self._db.read(paged.params(params))
        if rows:
            return UserPage([UserSummary._make(row[:-1]) for row in rows], rows[0][-1])
        total = (await self._db.read(count.params(params)))[0][0] if offset else 0
        return UserPage([], total)

    async def get_user(self, principal: Principal, username: str) -> User:
        """A user the caller may see: themselves, or anyone in their org with ``org:users``."""
        async with self._db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == username))).first()
        if user is None or not (
            user.id == principal.user_id
            or principal.platform_admin
            or (user.org_id == principal.org_id and principal.has(Role.ORG_USERS))
        ):
            raise NotFound(f"no user named {username!r}")
        return user

    @_changes_identity
    async def create_user(
        self,
        principal: Principal,
        *,
        username: str,
        name: str = "",
        email: str = "",
        password: str | None = None,
        org: str | None = None,
        groups: Sequence[str] = (),
    ) -> User:
        _require(principal, Role.ORG_USERS)
        target = await self.org_for(principal, org)
        USERNAME.check(username, "username")
        if password is not None:
            check_policy(password)
        await self._seat_check(target)
        assert target.id is not None
        user = User(
            org_id=target.id,
            username=username,
            name=name,
            email=email,
            password_hash=hash_password(password) if password else None,
        )
        async with self._db.session() as session:
            session.add(user)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(
                    f"the username {username!r} is taken", details={"field": "username"}
                ) from None
            for group_name in groups:
                group = (
                    await session.exec(
                        select(Group)
                        .where(col(Group.org_id) == target.id)
                        .where(col(Group.name) == group_name)
                    )
                ).first()
                if group is None:
                    raise Invalid(f"groups: no group named {group_name!r}", field="groups")
                self._check_group_access(principal, group)
                assert group.id is not None and user.id is not None
                session.add(GroupMember(group_id=group.id, user_id=user.id))
            await session.commit()
            await session.refresh(user)
        return user

    @_changes_identity
    async def update_user(
        self,
        principal: Principal,
        username: str,
        *,
        name: str | None = None,
        email: str | None = None,
        password: str | None = None,
        disabled: bool | None = None,
        no_seat: bool | None = None,
    ) -> User:
        user = await self.get_user(principal, username)
        is_self = user.id == principal.user_id
        # Users change their own name, email and password; anything else needs org:users.
        if not is_self or disabled is not None or no_seat is not None:
            _require(principal, Role.ORG_USERS)
        if no_seat is not None and not principal.platform_admin:
            raise PermissionDenied(
                "no_seat is set by platform administrators", reason="role-required"
            )
        if is_self and disabled:
            raise Conflict("you cannot disable your own account")
        if disabled is False and user.disabled:
            async with self._db.session() as session:
                org = await session.get(Org, user.org_id)
            assert org is not None
            await self._seat_check(org)
        async with self._db.session() as session:
            row = await session.get(User, user.id)
            assert row is not None
            if name is not None:
                row.name = name
            if email is not None:
                row.email = email
            if password is not None:
                row.password_hash = hash_password(check_policy(password))
                row.password_changed_at = utcnow()
            if disabled is not None:
                row.disabled = disabled
            if no_seat is not None:
                row.no_seat = no_seat
            session.add(row)
            await session.commit()
            await session.refresh(row)
        return row

    @_changes_identity
    async def delete_user(self, principal: Principal, username: str) -> None:
        user = await self.get_user(principal, username)
        _require(principal, Role.ORG_USERS)
        if user.id == principal.user_id:
            raise Conflict("you cannot delete your own account")
        async with self._db.session() as session:
            await _refuse_if_any_resource(
                session,
                col(Resource.owner) == user.username,
                f"{username} still owns resources: delete or hand them over first",
            )
            row = await session.get(User, user.id)
            await session.delete(row)
            await session.commit()

    # --- groups ---------------------------------------------------------------------------------

    def _check_group_access(self, principal: Principal, group: Group) -> None:
        if set(group.roles) & PRIVILEGED and not principal.has():
            raise PermissionDenied(
                f"group {group.name!r} holds {', '.join(sorted(set(group.roles) & PRIVILEGED))}: "
                "only org:admin may change it",
                reason="privileged-group",
            )

    async def list_groups(
        self, principal: Principal, org: str | None = None
    ) -> list[tuple[Group, int]]:
        org_id = await self._org_id(principal, org)
        async with self._db.session() as session:
            rows = await session.exec(
                select(Group, func.count(col(GroupMember.user_id)))
                .outerjoin(GroupMember, col(GroupMember.group_id) == col(Group.id))
                .where(col(Group.org_id) == org_id)
                .group_by(col(Group.id))
                .order_by(col(Group.name))
            )
            return [(group, count) for group, count in rows]

    async def get_group(self, principal: Principal, name: str, org: str | None = None) -> Group:
        org_id = await self._org_id(principal, org)
        async with self._db.session() as session:
            group = (
                await session.exec(
                    select(Group).where(col(Group.org_id) == org_id).where(col(Group.name) == name)
                )
            ).first()
        if group is None:
            raise NotFound(f"no group named {name!r}")
        return group

    async def create_group(
        self, principal: Principal, name: str, description: str = "", org: str | None = None
    ) -> Group:
        _require(principal, Role.ORG_GROUPS)
        target = await self.org_for(principal, org)
        GROUP_NAME.check(name, "name")
        assert target.id is not None
        group = Group(org_id=target.id, name=name, description=description)
        async with self._db.session() as session:
            session.add(group)
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(
                    f"a group named {name!r} exists", details={"field": "name"}
                ) from None
            await session.refresh(group)
        return group

    @_changes_identity
    async def update_group(
        self,
        principal: Principal,
        name: str,
        *,
        description: str | None = None,
        allocation_total: float | None = None,
    ) -> Group:
        group = await self.get_group(principal, name)
        _require(principal, Role.ORG_GROUPS)
        self._check_group_access(principal, group)
        if allocation_total is not None and allocation_total < 0:
            raise Invalid("allocation_total must not be negative", field="allocation_total")
        async with self._db.session() as session:
            row = await session.get(Group, group.id)
            assert row is not None
            if description is not None:
                row.description = description
            if allocation_total is not None:
                row.allocation_total = allocation_total
            session.add(row)
            await session.commit()
            await session.refresh(row)
        return row

    @_changes_identity
    async def set_roles(self, principal: Principal, name: str, roles: Sequence[str]) -> Group:
        """Only org:admin assigns roles; only platform:admin grants platform:admin."""
        group = await self.get_group(principal, name)
        if not principal.has():
            raise PermissionDenied(
                "assigning roles needs the role org:admin", reason="role-required"
            )
        unknown = sorted(set(roles) - {r.value for r in Role})
        if unknown:
            raise Invalid(f"roles: unknown roles {unknown}", field="roles")
        touches_platform = Role.PLATFORM_ADMIN.value in set(roles) ^ set(group.roles)
        if touches_platform and not principal.platform_admin:
            raise PermissionDenied(
                "platform:admin is granted by platform administrators", reason="role-required"
            )
        async with self._db.session() as session:
            row = await session.get(Group, group.id)
            assert row is not None
            row.roles = sorted(set(roles))
            session.add(row)
            await session.commit()
            await session.refresh(row)
        return row

    @_changes_identity
    async def delete_group(self, principal: Principal, name: str) -> None:
        group = await self.get_group(principal, name)
        _require(principal, Role.ORG_GROUPS)
        self._check_group_access(principal, group)
        async with self._db.session() as session:
            await session.exec(delete(GroupMember).where(col(GroupMember.group_id) == group.id))
            row = await session.get(Group, group.id)
            await session.delete(row)
            await session.commit()

    async def members(self, principal: Principal, name: str) -> list[User]:
        group = await self.get_group(principal, name)
        async with self._db.session() as session:
            rows = await session.exec(
                select(User)
                .join(GroupMember, col(GroupMember.user_id) == col(User.id))
                .where(col(GroupMember.group_id) == group.id)
                .order_by(col(User.username))
            )
            return list(rows)

    async def _membership(
        self, principal: Principal, name: str, username: str
    ) -> tuple[Group, User | None]:
        """The group (which the caller may manage) and the org's user named ``username``."""
        group = await self.get_group(principal, name)
        _require(principal, Role.ORG_GROUPS)
        self._check_group_access(principal, group)
        async with self._db.session() as session:
            user = (
                await session.exec(
                    select(User)
                    .where(col(User.username) == username)
                    .where(col(User.org_id) == group.org_id)
                )
            ).first()
        return group, user

    @_changes_identity
    async def add_member(self, principal: Principal, name: str, username: str) -> None:
        group, user = await self._membership(principal, name, username)
        if user is None:
            raise NotFound(f"no user named {username!r} in this organization")
        assert group.id is not None and user.id is not None
        async with self._db.session() as session:
            if await session.get(GroupMember, (group.id, user.id)) is None:
                session.add(GroupMember(group_id=group.id, user_id=user.id))
                await session.commit()

    @_changes_identity
    async def remove_member(self, principal: Principal, name: str, username: str) -> None:
        group, user = await self._membership(principal, name, username)
        async with self._db.session() as session:
            member = (
                await session.get(GroupMember, (group.id, user.id)) if user is not None else None
            )
            if member is None:
                raise NotFound(f"{username} is not a member of {name}")
            await session.delete(member)
            await session.commit()
