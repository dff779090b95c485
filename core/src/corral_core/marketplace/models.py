"""Marketplace tables: items, the groups an item is shown to, versions (each an immutable
snapshot of the published resource's definition), favourites and subscriptions.

A subscription ("Use") is a workflow resource of the subscriber (kind ``workflow``, source
``marketplace``) linked here to the item and version it runs. Deleting the item or a pinned
version keeps the subscriber's workflow and marks it broken with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = [
    "MarketplaceFavorite",
    "MarketplaceItem",
    "MarketplaceItemGroup",
    "MarketplaceSubscription",
    "MarketplaceVersion",
]


class MarketplaceItem(SQLModel, table=True):
    """A published item of an organization; ``name`` and ``slug`` are unique in it."""

    __tablename__ = "marketplace_item"
    __table_args__ = (
        UniqueConstraint("org_id", "name", name="uq_marketplace_item_name"),
        UniqueConstraint("org_id", "slug", name="uq_marketplace_item_slug"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True, ondelete="CASCADE")
    owner: str = Field(max_length=255)
    """The username of who published it."""
    name: str = Field(max_length=255)
    slug: str = Field(max_length=63, index=True)
    type: str = Field(max_length=16)
    """``workflow``, ``compute`` or ``storage`` (from the source's resource kind)."""
    subtype: str = Field(max_length=63)
    """Shown before the type: ``local`` in ``local workflow``, ``aws`` in ``aws compute``."""
    source_kind: str = Field(max_length=63)
    """The resource kind of what was published (``workflow``, ``cluster``)."""
    source_resource_id: int | None = Field(
        default=None, foreign_key="resource.id", ondelete="SET NULL"
    )
    """What new versions are taken from by default (gone if its owner deleted it)."""
    privacy: str = Field(max_length=32)
    summary: str = Field(default="", max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    """Markdown shown on the item's page."""
    verified: bool = False
    featured: bool = False
    publish_as_organization: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class MarketplaceItemGroup(SQLModel, table=True):
    """A group of the item's organization an item with ``groups`` privacy is shown to."""

    __tablename__ = "marketplace_item_group"

    item_id: int = Field(foreign_key="marketplace_item.id", primary_key=True, ondelete="CASCADE")
    group_id: int = Field(foreign_key="user_group.id", primary_key=True, ondelete="CASCADE")


class MarketplaceVersion(SQLModel, table=True):
    """One published version: what the resource was when it was published, never changed."""

    __tablename__ = "marketplace_version"
    __table_args__ = (UniqueConstraint("item_id", "version", name="uq_marketplace_version"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="marketplace_item.id", index=True, ondelete="CASCADE")
    version: str = Field(max_length=64)
    definition: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The snapshot: ``{"yaml": ...}`` for a workflow, a cluster's configuration for compute."""
    source: str = Field(default="", max_length=600)
    """The resource it was taken from, ``pw://owner/name``."""
    created_by: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow)


class MarketplaceFavorite(SQLModel, table=True):
    __tablename__ = "marketplace_favorite"

    user_id: int = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    item_id: int = Field(foreign_key="marketplace_item.id", primary_key=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class MarketplaceSubscription(SQLModel, table=True):
    """The marketplace workflow a user uses: their workflow resource ``resource_id`` runs
    ``version`` (``latest``: whatever is newest when it runs) of ``item_id``."""

    __tablename__ = "marketplace_subscription"

    resource_id: int = Field(foreign_key="resource.id", primary_key=True, ondelete="CASCADE")
    item_id: int | None = Field(
        default=None, foreign_key="marketplace_item.id", index=True, ondelete="SET NULL"
    )
    slug: str = Field(max_length=63)
    """The item's slug (kept for messages once the item is gone)."""
    version: str = Field(max_length=64)
    """``latest`` or the pinned version."""
    version_id: int | None = Field(
        default=None, foreign_key="marketplace_version.id", index=True, ondelete="SET NULL"
    )
    """The pinned version (``None`` for ``latest``)."""
    broken: str = Field(default="", max_length=1000)
    """Why it can no longer run (the item or its pinned version was deleted); empty if it can."""
    created_at: datetime = Field(default_factory=utcnow)
