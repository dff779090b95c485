"""How cloud clusters use OS snapshots and static IPs, and which clusters use one.

A cluster names them in its definition, relative to its owner: ``my-snap`` is the owner's,
``alice/my-snap`` (or ``pw://alice/my-snap``) is Alice's, usable when she shared it with a
group the cluster's owner belongs to. A snapshot goes in a controller's ``image`` or a
partition's ``elastic_image`` (a name that is no snapshot is looked up among the provider's
images); a static IP in the controller's ``static_ip``.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from corral_core.cloud_resources.spec import OS_SNAPSHOT_KIND, STATIC_IP_KIND
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.db import Database
from corral_core.identity.models import Grant, GroupMember, User
from corral_core.identity.names import ResourceRef
from corral_core.resources.models import Resource
from corral_sdk.errors import Invalid
from corral_sdk.wire import CloudClusterDefinition

__all__ = ["clusters_using", "snapshot_images", "static_ip_id"]

STATIC_IP_FIELD = "cloud.controller.static_ip"


def _ref(value: str, owner: str) -> ResourceRef | None:
    try:
        return ResourceRef.parse(value, owner)
    except Invalid:
        return None


def _uses(spec: dict[str, Any], owner: str, kind: str) -> set[ResourceRef]:
    """The snapshots (or the static IP) a cluster definition names."""
    cloud = spec.get("cloud") or {}
    controller = cloud.get("controller") or {}
    if kind == STATIC_IP_KIND:
        values = [str(controller.get("static_ip") or "")]
    else:
        values = [str(controller.get("image", "latest"))] + [
            str(p.get("elastic_image", "latest")) for p in cloud.get("partitions") or []
        ]
    refs = (_ref(v, owner) for v in values if v and v != "latest")
    return {r for r in refs if r is not None}


async def clusters_using(
    db: Database, org: str, kind: str, ref: ResourceRef, *, but: str = ""
) -> list[str]:
    """``pw://`` URIs of the clusters of ``org`` that are not off (or about to start) and
    name the snapshot or static IP ``ref`` (``but`` excepted)."""
    async with db.session() as session:
        rows = await session.exec(
            select(Resource)
            .where(col(Resource.kind) == CLUSTER_KIND)
            .where(col(Resource.org) == org)
        )
        clusters = [r for r in rows if r.observed_state != "off" or r.desired_state != "off"]
    found = []
    for row in clusters:
        uri = ResourceRef(row.owner, row.name).uri
        if uri != but and ref in _uses(row.spec, row.owner, kind):
            found.append(uri)
    return sorted(found)


async def _usable(db: Database, kind: str, ref: ResourceRef, user: str) -> Resource | None:
    """The resource ``ref`` of ``kind`` if ``user`` owns it or it is shared with one of their
    groups."""
    async with db.session() as session:
        row = (
            await session.exec(
                select(Resource)
                .where(col(Resource.kind) == kind)
                .where(col(Resource.owner) == ref.owner)
                .where(col(Resource.name) == ref.name)
            )
        ).first()
        if row is None or ref.owner == user:
            return row
        groups = (
            select(GroupMember.group_id)
            .join(User, col(User.id) == col(GroupMember.user_id))
            .where(col(User.username) == user)
        )
        granted = (
            await session.exec(
                select(Grant.id)
                .where(col(Grant.resource_id) == row.id)
                .where(col(Grant.group_id).in_(groups))
            )
        ).first()
    return row if granted is not None else None


def _check_ready(row: Resource, what: str, account: str, region: str, field: str) -> None:
    shown = f"{what} {ResourceRef(row.owner, row.name).uri}"
    if row.desired_state != "provisioned":
        raise Invalid(f"{shown} is deleted", field=field)
    if row.observed_state != "provisioned":
        state = row.observed_state
        raise Invalid(
            f"{shown} is {state}{f' ({row.reason})' if row.reason else ''}, not provisioned",
            field=field,
        )
    if row.status.get("cloud_account") != account:
        raise Invalid(
            f"{shown} is in cloud account {row.status.get('cloud_account')!r}, not {account!r}",
            field=field,
        )
    if row.status.get("region") != region:
        raise Invalid(
            f"{shown} is in region {row.status.get('region')!r}; the controller runs in {region!r}",
            field=field,
        )


async def snapshot_images(
    db: Database, owner: str, account: str, region: str, wanted: list[tuple[str, str]]
) -> dict[str, str]:
    """The image id of each ``(value, field)`` in ``wanted`` that names an OS snapshot
    ``owner`` may use; raises ``Invalid`` naming the field when that snapshot is not
    provisioned, or of another account or region. Other values are not in the answer."""
    images: dict[str, str] = {}
    for value, field in wanted:
        ref = _ref(value, owner) if owner and value not in ("", "latest") else None
        row = None if ref is None else await _usable(db, OS_SNAPSHOT_KIND, ref, owner)
        if row is None:
            continue
        _check_ready(row, "OS snapshot", account, region, field)
        images[value] = str(row.status["image_id"])
    return images


async def static_ip_id(
    db: Database,
    *,
    org: str,
    owner: str,
    cluster: str,
    cloud: CloudClusterDefinition,
    region: str,
) -> str | None:
    """The provider's id of the static IP a cluster's controller names (``None``: an address
    assigned automatically). Raises ``Invalid`` naming ``cloud.controller.static_ip`` when
    there is no such static IP ``owner`` may use, it is not provisioned, of another account or
    region, or another cluster (``cluster`` is the one asking) that is not off uses it."""
    value = cloud.controller.static_ip
    if not value:
        return None
    ref = ResourceRef.parse(value, owner, STATIC_IP_FIELD)
    row = await _usable(db, STATIC_IP_KIND, ref, owner)
    if row is None:
        raise Invalid(f"there is no static IP {ref.uri} you can use", field=STATIC_IP_FIELD)
    _check_ready(row, "static IP", cloud.cloud_account, region, STATIC_IP_FIELD)
    others = await clusters_using(db, org, STATIC_IP_KIND, ref, but=cluster)
    if others:
        raise Invalid(
            f"static IP {ref.uri} is attached to {', '.join(others)}, which is not off",
            field=STATIC_IP_FIELD,
        )
    return str(row.status["ip_id"])
