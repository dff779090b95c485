"""What OS snapshots and static IPs are: their resource kinds, states, names and definitions
(the resource's ``spec``). Both are owned by the user who made them and can be shared with
groups at level ``use``."""

from __future__ import annotations

from datetime import timedelta

import msgspec

__all__ = [
    "DELETED_VISIBLE",
    "OS_SNAPSHOT_KIND",
    "OS_SNAPSHOT_NAME_PATTERN",
    "OS_SNAPSHOT_NAME_RULE",
    "OS_SNAPSHOT_STATES",
    "STATIC_IP_KIND",
    "STATIC_IP_STATES",
    "USE",
    "OsSnapshotDefinition",
    "StaticIpDefinition",
]

USE = "use"
"""The one share level: a group's members see the resource and may use it in their clusters."""

OS_SNAPSHOT_KIND = "os-snapshot"
OS_SNAPSHOT_STATES = ("provisioning", "provisioned", "failed", "deleting", "deleted")
"""``provisioning`` until the cloud's image is available, then ``provisioned`` (or ``failed``).
A deleted snapshot (desired state ``deleted``) is ``deleting`` until the provider has deleted
the image, then ``deleted`` for :data:`DELETED_VISIBLE`, then its resource is gone."""
OS_SNAPSHOT_NAME_PATTERN = r"[a-z][a-z0-9-]{2,35}"
OS_SNAPSHOT_NAME_RULE = (
    "3 to 36 characters: lowercase letters, digits and hyphens, starting with a letter"
)
DELETED_VISIBLE = timedelta(hours=1)

STATIC_IP_KIND = "static-ip"
STATIC_IP_STATES = ("provisioning", "provisioned", "failed", "deleting")
"""``provisioning`` until the provider has allocated the address, then ``provisioned`` (or
``failed``). A deleted static IP (desired state ``deleting``) is released, then gone."""


class OsSnapshotDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cluster: str
    """``pw://owner/name`` of the cloud cluster whose controller's root disk it is taken from;
    the reconciler checks again that the snapshot's owner may (``admin`` on the cluster)."""


class StaticIpDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cloud_account: str
    region: str
