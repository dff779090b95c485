"""What a network is: its definition (the resource's ``spec``), states and naming.

A network belongs to its organization, not to the user who created it: its resource's owner is
:func:`org_owner` (``@<org>``, which no username can be, so no user's own resources and no
user of another organization ever match it).
"""

from __future__ import annotations

from typing import Any

import msgspec

from corral_sdk.errors import Invalid
from corral_sdk.providers._common import StepState
from corral_sdk.providers.cloud import NetworkRegionSpec, NetworkSpec
from corral_sdk.wire import NetworkRegionDefinition, NetworkStatus

__all__ = [
    "NETWORK_KIND",
    "NETWORK_NAME_PATTERN",
    "NETWORK_NAME_RULE",
    "NETWORK_STATES",
    "NETWORK_STATUS",
    "NetworkDefinition",
    "org_owner",
    "step_status",
]

NETWORK_KIND = "network"
NETWORK_STATES = ("pending", "provisioning", "provisioned", "failed", "deleting")
"""``pending`` until a worker takes it up, ``provisioning`` while the provider works (on create
and on every edit), then ``provisioned`` or ``failed``. ``deleting`` is also the desired state
of a network being deleted: once the provider has removed everything, the resource is gone."""
NETWORK_STATUS: dict[str, NetworkStatus] = {
    "pending": "Pending",
    "provisioning": "Provisioning",
    "provisioned": "Provisioned",
    "failed": "Failed",
    "deleting": "Deleting",
}
NETWORK_NAME_PATTERN = r"[a-z0-9]+"
NETWORK_NAME_RULE = "lowercase letters and digits only, at most 63 characters"
DELETING_STEP = "deleting"
"""The state of a provisioned step whose resource is being deprovisioned (not a ``StepState``:
providers report deletion with ``running`` and ``completed``)."""

_STEP_STATUS: dict[str, NetworkStatus] = {
    StepState.PENDING: "Pending",
    StepState.RUNNING: "Provisioning",
    StepState.COMPLETED: "Provisioned",
    StepState.SKIPPED: "Provisioned",
    StepState.FAILED: "Failed",
    DELETING_STEP: "Deleting",
}


def step_status(state: str) -> NetworkStatus:
    """The status shown for a step recorded in ``state``."""
    return _STEP_STATUS.get(state, "Pending")


def org_owner(org: str) -> str:
    """The owner of an organization's networks in the resource table."""
    return f"@{org}"


class NetworkDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A network's definition; its CIDRs are checked by the SDK's ``NetworkSpec`` (valid, one
    region at most once, none overlapping another) whenever one is decoded."""

    cloud_account: str
    regions: list[NetworkRegionDefinition]
    mode: str = ""
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.cloud_account:
            raise Invalid("a network needs its cloud account", field="cloud_account")
        for index, region in enumerate(self.regions):
            if not region.region:
                raise Invalid("a region needs its name", field=f"regions.{index}.region")
        self.network_spec("check")

    def network_spec(self, name: str, tags: dict[str, str] | None = None) -> NetworkSpec:
        """What the provider is asked to provision."""
        return NetworkSpec(
            name=name,
            regions=tuple(
                NetworkRegionSpec(
                    region=r.region, cidr=r.cidr, zone=r.zone or None, options=dict(r.options)
                )
                for r in self.regions
            ),
            mode=self.mode,
            options=dict(self.options),
            tags=dict(tags or {}),
        )
