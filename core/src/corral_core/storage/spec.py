"""What a storage resource is: its kind, states, name rule, share levels and definition (the
resource's ``spec``).

A storage is owned by the user who created it (its namespace: ``pw://<owner>/<name>``). Its
storage type (a plugin's :class:`~corral_sdk.records.StorageTypeRecord`) fixes its category
(bucket, disk, nfs, lustre) and the cloud whose accounts hold it. A persistent storage is
started and stopped by its users: each start opens a numbered session
(:class:`~corral_core.storage.models.StorageSession`) that holds what the provider made; a stop
deletes it, data included.
"""

from __future__ import annotations

from typing import Any

import msgspec

from corral_sdk.features import StorageCategory

__all__ = [
    "DESCRIPTION_MAX",
    "MOUNT",
    "STORAGE_KIND",
    "STORAGE_NAME_MAX",
    "STORAGE_NAME_PATTERN",
    "STORAGE_NAME_RULE",
    "STORAGE_SHARE_LEVELS",
    "STORAGE_STATES",
    "VIEW_EDIT",
    "StorageDefinition",
]

STORAGE_KIND = "storage"
STORAGE_STATES = ("stopped", "starting", "active", "stopping", "failed")
"""``stopped`` (nothing at the cloud) -> ``starting`` (the provider provisions) -> ``active``
-> ``stopping`` (the provider deletes it) -> ``stopped``. ``failed`` when provisioning failed
for a reason retrying cannot fix; stopping it cleans up whatever was made."""
STORAGE_NAME_PATTERN = r"[a-z0-9]{2,255}"
STORAGE_NAME_MAX = 255
STORAGE_NAME_RULE = "2 to 255 characters, lowercase letters and digits only"
DESCRIPTION_MAX = 100

MOUNT = "mount"
"""Share level: members mount it on their clusters, use its credentials and see whether it
runs, but neither see nor change its definition, nor start or stop it."""
VIEW_EDIT = "view_edit"
"""Share level: members also see and change its definition (not its cloud account or group)
and start and stop it. It includes ``mount``."""
STORAGE_SHARE_LEVELS = (MOUNT, VIEW_EDIT)


class StorageDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A storage's definition. ``storage_options`` is decoded by the type's ``config`` struct
    whenever it is checked or used; it is kept here as given."""

    type: str
    category: StorageCategory
    """From the type's record when the storage was created (the type cannot change)."""
    cloud_account: str = ""
    """The organization's cloud account holding it; empty for a type outside any cloud."""
    group: str = ""
    """The group its costs are allocated to."""
    ephemeral: bool = False
    """Created and destroyed with the cluster it is attached to (Lustre only)."""
    storage_options: dict[str, Any] = msgspec.field(default_factory=dict)
