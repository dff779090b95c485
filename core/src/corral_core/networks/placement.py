"""Where a cloud cluster's instances go in its network.

A cluster on a provider with :attr:`~corral_sdk.features.CloudFeature.NETWORKS` names a
provisioned network of its cloud account that holds the controller's region; every
``InstanceRequest`` of the cluster (controller and compute nodes) then carries:

- ``network``: a ``NetworkPlacement`` with the region's network id, its security groups, and
  the subnet of the request's first zone when the provider named one in the region's details
  as ``subnet:<zone>`` (else the region's first subnet);
- ``options["network"]``: the whole region as the provider reported it (``region``, ``cidr``,
  ``network_id``, ``subnet_ids``, ``security_group_ids``, ``details``) plus the network's
  ``name``, ``mode`` and ``options``, for a provider that places instances by rules of its
  own (a public subnet for the controller in one mode, a subnet per zone for a multi-zone
  batch);
- ``options["role"]``: ``controller`` or ``compute``, what the instances will be.

Before a cluster is stored or started the kernel asks the provider's
``check_cluster_network`` whether the network serves the cluster's zones (AWS: on a
``controller-nat`` network every partition is in the controller's zone).

Providers without networks (the local cloud) take clusters without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from sqlmodel import col, select

from corral_core.db import Database
from corral_core.networks.spec import NETWORK_KIND, NETWORK_STATUS, NetworkDefinition, org_owner
from corral_core.plugins import Kernel
from corral_core.resources.models import Resource
from corral_sdk.errors import Invalid
from corral_sdk.features import CloudFeature
from corral_sdk.providers.cloud import NetworkInfo, NetworkPlacement, NetworkRegionInfo
from corral_sdk.wire import CloudClusterDefinition

__all__ = ["NetworkAttachment", "cluster_network"]

FIELD = "cloud.network"


@dataclass(frozen=True)
class NetworkAttachment:
    """A cluster's network in its controller's region."""

    name: str
    options: dict[str, Any]
    """What goes in ``InstanceRequest.options["network"]``."""

    @property
    def mode(self) -> str:
        """The network's mode as defined (empty: the provider's default)."""
        return str(self.options.get("mode") or "")

    def region(self) -> NetworkRegionInfo:
        """The network's region as the provider reported it."""
        return msgspec.convert(self.options, NetworkRegionInfo)

    def placement(self, zones: tuple[str, ...] | list[str] = ()) -> NetworkPlacement:
        """The placement of a request for ``zones`` (the first one picks the subnet)."""
        details: dict[str, str] = self.options.get("details") or {}
        subnets: list[str] = list(self.options.get("subnet_ids") or [])
        subnet = (details.get(f"subnet:{zones[0]}") if zones else None) or (
            subnets[0] if subnets else None
        )
        return NetworkPlacement(
            network_id=str(self.options["network_id"]),
            subnet_id=subnet,
            security_group_ids=tuple(self.options.get("security_group_ids") or ()),
        )


async def cluster_network(
    db: Database,
    kernel: Kernel,
    org: str,
    cloud: CloudClusterDefinition,
    provider: str,
    region: str,
) -> NetworkAttachment | None:
    """The network a cluster of ``org`` on ``provider`` runs on in ``region``; ``None`` for a
    provider without networks. Raises ``Invalid`` naming ``cloud.network`` when it is missing,
    of another account, not provisioned, or without the region."""
    if CloudFeature.NETWORKS not in kernel.cloud(provider).features:
        if cloud.network:
            raise Invalid(f"cloud provider {provider!r} has no networks", field=FIELD)
        return None
    if not cloud.network:
        raise Invalid(
            f"a cluster on {provider} needs a network of cloud account {cloud.cloud_account!r} "
            "(create one with `corral networks create`)",
            field=FIELD,
        )
    async with db.session() as session:
        row = (
            await session.exec(
                select(Resource)
                .where(col(Resource.kind) == NETWORK_KIND)
                .where(col(Resource.owner) == org_owner(org))
                .where(col(Resource.name) == cloud.network)
            )
        ).first()
    if row is None:
        raise Invalid(f"{org} has no network named {cloud.network!r}", field=FIELD)
    definition = msgspec.convert(row.spec, NetworkDefinition)
    if definition.cloud_account != cloud.cloud_account:
        raise Invalid(
            f"network {cloud.network!r} belongs to cloud account {definition.cloud_account!r}, "
            f"not {cloud.cloud_account!r}",
            field=FIELD,
        )
    stored = row.status.get("network")
    if row.observed_state != "provisioned" or row.desired_state != "provisioned" or not stored:
        status = NETWORK_STATUS.get(row.observed_state, row.observed_state)
        if row.desired_state == "deleting":
            status = "Deleting"
        raise Invalid(f"network {cloud.network!r} is {status}, not Provisioned", field=FIELD)
    info = msgspec.convert(stored, NetworkInfo)
    found = next((r for r in info.regions if r.region == region), None)
    if found is None:
        raise Invalid(
            f"network {cloud.network!r} has no region {region} (it has "
            f"{', '.join(r.region for r in info.regions) or 'none'}); add it or pick another "
            "region for the controller",
            field=FIELD,
        )
    options: dict[str, Any] = msgspec.to_builtins(found)
    options.update(name=row.name, mode=definition.mode, options=dict(definition.options))
    return NetworkAttachment(name=row.name, options=options)
