"""An organization's cloud settings: allowed instance types and capacity reservations
(org:admin or org:settings change them; members read what applies to them)."""

from __future__ import annotations

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody

from corral_api.security import Caller, RuntimeDep
from corral_sdk.wire import (
    CapacityReservationCreate,
    CapacityReservationInfo,
    InstanceTypePolicy,
    InstanceTypePolicyUpdate,
)

__all__ = ["CloudSettingsController"]


class CloudSettingsController(Controller):
    path = "/api/orgs/{name:str}"
    tags = ["clouds"]

    @get(
        "/instance-types",
        summary="The organization's allowed instance types (every member may read them)",
    )
    async def get_instance_policy(
        self, name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> InstanceTypePolicy:
        return await runtime.cloud_settings.policy(principal, name)

    @put(
        "/instance-types",
        summary="Set the allowed instance types (org:admin or org:settings): default allows "
        "every type; custom restricts each provider named in allowed to its list (an empty "
        "list allows none of its types; providers not named are not restricted)",
    )
    async def set_instance_policy(
        self,
        name: FromPath[str],
        data: JSONBody[InstanceTypePolicyUpdate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> InstanceTypePolicy:
        return await runtime.cloud_settings.set_policy(principal, name, data)

    @get(
        "/capacity-reservations",
        summary="Capacity reservations mapped to groups: all of them for org:admin and "
        "org:settings, those of your groups for members",
    )
    async def list_reservations(
        self, name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> list[CapacityReservationInfo]:
        return await runtime.cloud_settings.reservations(principal, name)

    @post(
        "/capacity-reservations",
        summary="Map a capacity reservation to exactly one group (org:admin or org:settings); "
        "mapping one twice is a conflict",
    )
    async def add_reservation(
        self,
        name: FromPath[str],
        data: JSONBody[CapacityReservationCreate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> CapacityReservationInfo:
        return await runtime.cloud_settings.add_reservation(principal, name, data)

    @delete(
        "/capacity-reservations/{reservation_id:str}",
        summary="Remove a capacity reservation's mapping (org:admin or org:settings)",
        status_code=204,
    )
    async def delete_reservation(
        self,
        name: FromPath[str],
        reservation_id: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.cloud_settings.delete_reservation(principal, name, reservation_id)
