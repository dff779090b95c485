"""Networks of your organization (read by every member; changed by org admins and holders of
the ``network`` permission on their cloud account), and who holds that permission."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from corral_api.params import Limit, Offset
from corral_api.security import Caller, RuntimeDep
from corral_sdk.wire import (
    CloudAccountAccess,
    NetworkCreate,
    NetworkDetails,
    NetworkList,
    NetworkUpdate,
)

__all__ = ["CloudAccountAccessController", "NetworkController"]


class NetworkController(Controller):
    path = "/api/networks"
    tags = ["networks"]

    @get("/", summary="The networks of your organization")
    async def list_networks(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        cloud_account: Annotated[
            str, QueryParameter(name="cloud_account", max_length=63, required=False)
        ] = "",
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> NetworkList:
        rows, total = await runtime.networks.list_networks(
            principal, cloud_account=cloud_account, limit=limit, offset=offset
        )
        return NetworkList(
            items=[await runtime.networks.details(r) for r in rows],
            total=total,
            limit=limit,
            offset=offset,
        )

    @post(
        "/",
        summary="Create a network in a cloud account (org:admin or the account's network "
        "permission); provisioning starts at once",
    )
    async def create_network(
        self, data: JSONBody[NetworkCreate], principal: Caller, runtime: RuntimeDep
    ) -> NetworkDetails:
        return await runtime.networks.details(await runtime.networks.create(principal, data))

    @get("/{name:str}", summary="One network, with the status of each of its resources")
    async def get_network(
        self, name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> NetworkDetails:
        return await runtime.networks.details(await runtime.networks.get(principal, name))

    @patch(
        "/{name:str}",
        summary="Change a network's regions, CIDRs, mode or options: it is provisioned again "
        "(409 while it is provisioning)",
    )
    async def update_network(
        self,
        name: FromPath[str],
        data: JSONBody[NetworkUpdate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> NetworkDetails:
        return await runtime.networks.details(await runtime.networks.update(principal, name, data))

    @delete(
        "/{name:str}",
        status_code=HTTP_202_ACCEPTED,
        summary="Deprovision a network: Deleting, then gone (409 while clusters that are not "
        "off run on it)",
    )
    async def delete_network(
        self, name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> NetworkDetails:
        return await runtime.networks.details(await runtime.networks.delete(principal, name))


class CloudAccountAccessController(Controller):
    path = "/api/cloud-accounts/{name:str}/access"
    tags = ["clouds"]

    @get("/", summary="Who holds the network permission on a cloud account")
    async def get_access(
        self, name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> CloudAccountAccess:
        account = await runtime.cloud_accounts.get(principal.org, name)
        return await runtime.networks.access.get(account)

    @put(
        "/",
        summary="Share a cloud account's network permission with the whole organization "
        "and/or groups (org:admin); replaces the current grants",
    )
    async def set_access(
        self,
        name: FromPath[str],
        data: JSONBody[CloudAccountAccess],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> CloudAccountAccess:
        account = await runtime.cloud_accounts.get(principal.org, name)
        return await runtime.networks.access.set(principal, account, data)
