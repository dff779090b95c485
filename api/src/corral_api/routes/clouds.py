"""Cloud accounts of an organization (org:admin manages them; members use them by name)."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody

from corral_api.security import Caller, RuntimeDep
from corral_core.clusters.accounts import account_info
from corral_sdk.wire import CloudAccountCreate, CloudAccountInfo

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
