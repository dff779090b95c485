"""Organizations and their users and groups."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from corral_api.params import Limit, Offset
from corral_api.security import Caller, RuntimeDep
from corral_core.identity.models import Group, Org, User
from corral_core.identity.service import UserSummary
from corral_core.workflows.variables import OrgVariable
from corral_sdk.wire import (
    GroupCreate,
    GroupInfo,
    GroupRoles,
    GroupUpdate,
    OrgCreate,
    OrgInfo,
    OrgVariableInfo,
    OrgVariableSet,
    UserCreate,
    UserInfo,
    UserList,
    UserUpdate,
)

__all__ = ["GroupController", "OrgController", "UserController"]

OrgQuery = Annotated[
    str | None, QueryParameter(name="org", description="another org (platform admins and partners)")
]


def org_info(org: Org, managers: dict[int, str]) -> OrgInfo:
    return OrgInfo(
        name=org.name,
        display_name=org.display_name,
        seats=org.seats,
        managed_by=managers.get(org.managed_by) if org.managed_by else None,
        created_at=org.created_at,
    )


def variable_info(variable: OrgVariable) -> OrgVariableInfo:
    return OrgVariableInfo(
        key=variable.key,
        value=variable.value,
        updated_by=variable.updated_by,
        updated_at=variable.updated_at,
    )


def user_info(user: User | UserSummary, org: str) -> UserInfo:
    return UserInfo(
        username=user.username,
        name=user.name,
        email=user.email,
        org=org,
        status="disabled" if user.disabled else "active",
        no_seat=user.no_seat,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def group_info(group: Group, members: int) -> GroupInfo:
    return GroupInfo(
        name=group.name,
        description=group.description,
        roles=list(group.roles),
        members=members,
        allocation_total=group.allocation_total,
        created_at=group.created_at,
    )


class OrgController(Controller):
    path = "/api/orgs"
    tags = ["orgs"]

    @get("/", summary="Organizations you can access")
    async def list_orgs(self, principal: Caller, runtime: RuntimeDep) -> list[OrgInfo]:
        orgs = await runtime.identity.list_orgs(principal)
        names = {o.id: o.name for o in orgs if o.id is not None}
        return [org_info(o, names) for o in orgs]

    @post("/", summary="Create an organization (platform:admin)")
    async def create_org(
        self,
        data: JSONBody[OrgCreate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> OrgInfo:
        admin = data.admin
        org = await runtime.identity.create_org(
            principal,
            data.name,
            data.display_name,
            data.seats,
            admin_username=admin.username if admin else None,
            admin_password=admin.password if admin else None,
            admin_email=admin.email if admin else "",
        )
        return org_info(org, {})

    @delete(
        "/{name:str}",
        summary="Delete an organization (platform:admin); confirm repeats its name",
        status_code=204,
    )
    async def delete_org(
        self,
        name: FromPath[str],
        confirm: Annotated[str, QueryParameter(name="confirm")],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.identity.delete_org(principal, name, confirm)

    @get(
        "/{name:str}/variables",
        summary="An organization's workflow variables, org.<key> in workflows "
        "(org:admin or org:settings)",
    )
    async def list_variables(
        self, name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> list[OrgVariableInfo]:
        variables = await runtime.org_variables.list_variables(principal, name)
        return [variable_info(v) for v in variables]

    @put(
        "/{name:str}/variables/{key:str}",
        summary="Set a workflow variable (org:admin or org:settings); the next run sees it",
    )
    async def set_variable(
        self,
        name: FromPath[str],
        key: FromPath[str],
        data: JSONBody[OrgVariableSet],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> OrgVariableInfo:
        variable = await runtime.org_variables.set_variable(principal, name, key, data.value)
        return variable_info(variable)

    @delete(
        "/{name:str}/variables/{key:str}",
        summary="Delete a workflow variable (org:admin or org:settings)",
        status_code=204,
    )
    async def delete_variable(
        self, name: FromPath[str], key: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> None:
        await runtime.org_variables.delete_variable(principal, name, key)


class UserController(Controller):
    path = "/api/users"
    tags = ["users"]

    @get("/", summary="Users of your organization (org:users)")
    async def list_users(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        org: OrgQuery = None,
        search: Annotated[str | None, QueryParameter(name="search", max_length=255)] = None,
        active: Annotated[bool | None, QueryParameter(name="active")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
        sort_by: Annotated[
            Literal["username", "email", "created_at", "last_login_at"],
            QueryParameter(name="sort_by"),
        ] = "username",
        sort_dir: Annotated[Literal["asc", "desc"], QueryParameter(name="sort_dir")] = "asc",
    ) -> UserList:
        page = await runtime.identity.list_users(
            principal,
            org=org,
            search=search,
            active=active,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            descending=sort_dir == "desc",
        )
        org_name = org or principal.org
        return UserList(
            items=[user_info(u, org_name) for u in page.users],
            total=page.total,
            limit=limit,
            offset=offset,
        )

    @post("/", summary="Create a user (org:users); no email is sent")
    async def create_user(
        self,
        data: JSONBody[UserCreate],
        principal: Caller,
        runtime: RuntimeDep,
        org: OrgQuery = None,
    ) -> UserInfo:
        user = await runtime.identity.create_user(
            principal,
            username=data.username,
            name=data.name,
            email=data.email,
            password=data.password,
            org=org,
            groups=data.groups,
        )
        return user_info(user, org or principal.org)

    @get("/{username:str}", summary="One user")
    async def get_user(
        self,
        username: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> UserInfo:
        user = await runtime.identity.get_user(principal, username)
        return user_info(user, (await runtime.identity.org_by_id(user.org_id)).name)

    @patch("/{username:str}", summary="Change a user (name, email, password, disabled)")
    async def update_user(
        self,
        username: FromPath[str],
        data: JSONBody[UserUpdate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> UserInfo:
        user = await runtime.identity.update_user(
            principal,
            username,
            name=data.name,
            email=data.email,
            password=data.password,
            disabled=data.disabled,
            no_seat=data.no_seat,
        )
        if data.disabled:
            await runtime.authn.revoke_sessions(user.id or 0)
        return user_info(user, (await runtime.identity.org_by_id(user.org_id)).name)

    @delete("/{username:str}", summary="Delete a user (org:users)", status_code=204)
    async def delete_user(
        self,
        username: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.identity.delete_user(principal, username)


class GroupController(Controller):
    path = "/api/groups"
    tags = ["groups"]

    @get("/", summary="Groups of your organization")
    async def list_groups(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        org: OrgQuery = None,
    ) -> list[GroupInfo]:
        return [group_info(g, n) for g, n in await runtime.identity.list_groups(principal, org)]

    @post("/", summary="Create a group (org:groups)")
    async def create_group(
        self,
        data: JSONBody[GroupCreate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> GroupInfo:
        return group_info(
            await runtime.identity.create_group(principal, data.name, data.description), 0
        )

    @get("/{name:str}", summary="One group")
    async def get_group(
        self,
        name: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> GroupInfo:
        group = await runtime.identity.get_group(principal, name)
        return group_info(group, len(await runtime.identity.members(principal, name)))

    @patch("/{name:str}", summary="Change a group's description or allocation")
    async def update_group(
        self,
        name: FromPath[str],
        data: JSONBody[GroupUpdate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> GroupInfo:
        group = await runtime.identity.update_group(
            principal, name, description=data.description, allocation_total=data.allocation_total
        )
        return group_info(group, len(await runtime.identity.members(principal, name)))

    @put("/{name:str}/roles", summary="Set a group's roles (org:admin)")
    async def set_roles(
        self,
        name: FromPath[str],
        data: JSONBody[GroupRoles],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> GroupInfo:
        group = await runtime.identity.set_roles(principal, name, data.roles)
        return group_info(group, len(await runtime.identity.members(principal, name)))

    @delete("/{name:str}", summary="Delete a group (org:groups)", status_code=204)
    async def delete_group(
        self,
        name: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.identity.delete_group(principal, name)

    @get("/{name:str}/members", summary="A group's members")
    async def list_members(
        self,
        name: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> list[UserInfo]:
        group = await runtime.identity.get_group(principal, name)
        org = (await runtime.identity.org_by_id(group.org_id)).name
        return [user_info(u, org) for u in await runtime.identity.members(principal, name)]

    @put("/{name:str}/members/{username:str}", summary="Add a member (org:groups)", status_code=204)
    async def add_member(
        self,
        name: FromPath[str],
        username: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.identity.add_member(principal, name, username)

    @delete(
        "/{name:str}/members/{username:str}",
        summary="Remove a member (org:groups)",
        status_code=204,
    )
    async def remove_member(
        self,
        name: FromPath[str],
        username: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.identity.remove_member(principal, name, username)
