"""marketplace: items, the groups an item is shown to, versions (immutable snapshots),
favourites and subscriptions (a user's marketplace workflow, linked to the item it runs)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 22:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "marketplace_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("slug", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subtype", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("source_kind", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("source_resource_id", sa.Integer(), nullable=True),
        sa.Column("privacy", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("featured", sa.Boolean(), nullable=False),
        sa.Column("publish_as_organization", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_resource_id"], ["resource.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_marketplace_item_name"),
        sa.UniqueConstraint("org_id", "slug", name="uq_marketplace_item_slug"),
    )
    op.create_index(op.f("ix_marketplace_item_org_id"), "marketplace_item", ["org_id"])
    op.create_index(op.f("ix_marketplace_item_slug"), "marketplace_item", ["slug"])
    op.create_table(
        "marketplace_favorite",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["marketplace_item.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "item_id"),
    )
    op.create_table(
        "marketplace_item_group",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["user_group.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["marketplace_item.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_id", "group_id"),
    )
    op.create_table(
        "marketplace_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=600), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["marketplace_item.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "version", name="uq_marketplace_version"),
    )
    op.create_index(op.f("ix_marketplace_version_item_id"), "marketplace_version", ["item_id"])
    op.create_table(
        "marketplace_subscription",
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("slug", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("broken", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["marketplace_item.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["resource_id"], ["resource.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version_id"], ["marketplace_version.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("resource_id"),
    )
    op.create_index(
        op.f("ix_marketplace_subscription_item_id"), "marketplace_subscription", ["item_id"]
    )
    op.create_index(
        op.f("ix_marketplace_subscription_version_id"), "marketplace_subscription", ["version_id"]
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_marketplace_subscription_version_id"), table_name="marketplace_subscription"
    )
    op.drop_index(
        op.f("ix_marketplace_subscription_item_id"), table_name="marketplace_subscription"
    )
    op.drop_table("marketplace_subscription")
    op.drop_index(op.f("ix_marketplace_version_item_id"), table_name="marketplace_version")
    op.drop_table("marketplace_version")
    op.drop_table("marketplace_item_group")
    op.drop_table("marketplace_favorite")
    op.drop_index(op.f("ix_marketplace_item_slug"), table_name="marketplace_item")
    op.drop_index(op.f("ix_marketplace_item_org_id"), table_name="marketplace_item")
    op.drop_table("marketplace_item")
