"""Cloud accounts of an organization (org:admin manages them; members use them by name)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from corral_api.security import Caller, RuntimeDep
from corral_core.clusters.accounts import account_info
from corral_sdk.wire import (
    CloudAccountCreate,
    CloudAccountInfo,
    CloudAccountUpdate,
    InstanceTypeList,
)

__all__ = ["CloudAccountController"]


class CloudAccountController(Controller):
    path = "/api/cloud-accounts"
    tags = ["clouds"]

    @get("/", summary="The cloud accounts of your organization")
    async def list_accounts(self, principal: Caller, runtime: RuntimeDep) -> list[CloudAccountInfo]:
        return [account_info(r) for r in await runtime.cloud_accounts.list(principal.org)]

    @post(
        "/",
        summary="Add a cloud account (org:admin); its credentials are checked, encrypted at rest "
        "and never returned",
    )
    async def create_account(
        self, data: JSONBody[CloudAccountCreate], principal: Caller, runtime: RuntimeDep
    ) -> CloudAccountInfo:
        return account_info(await runtime.cloud_accounts.create(principal, data))

    @patch(
        "/{name:str}",
        summary="Update a cloud account's credentials (fields merge over the stored ones), "
        "settings or GovCloud flag (org:admin); starts a new validation. Name and provider "
        "cannot change (422)",
    )
    async def update_account(
        self,
        name: FromPath[str],
        data: JSONBody[CloudAccountUpdate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> CloudAccountInfo:
        return account_info(await runtime.cloud_accounts.update(principal, name, data))

    @post(
        "/{name:str}/validate",
        summary="Check a cloud account's credentials and permissions again (org:admin); the "
        "account shows checking until the result is recorded",
        status_code=202,
    )
    async def validate_account(
        self, name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> CloudAccountInfo:
        return account_info(await runtime.cloud_accounts.revalidate(principal, name))

    @get(
        "/{name:str}/instance-types",
        summary="The instance types of a region of the account (default: its first), with "
        "vCPUs, memory, GPUs and hourly prices; only those your organization's policy allows "
        "unless all=true (each is marked allowed or not)",
    )
    async def list_instance_types(
        self,
        name: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
        region: Annotated[str, QueryParameter(name="region", max_length=128)] = "",
        all: Annotated[bool, QueryParameter(name="all")] = False,
    ) -> InstanceTypeList:
        return await runtime.cloud_accounts.instance_types(
            principal, name, region, include_disallowed=all
        )

    @get("/{name:str}", summary="One cloud account")
    async def get_account(
        self, name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> CloudAccountInfo:
        return account_info(await runtime.cloud_accounts.get(principal.org, name))

    @delete(
        "/{name:str}",
        summary="Delete a cloud account (org:admin); refused while clusters built with it exist",
    )
    async def delete_account(
        self, name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> None:
        await runtime.cloud_accounts.delete(principal, name)
