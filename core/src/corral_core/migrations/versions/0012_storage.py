"""storage: sessions of buckets, disks and file systems, their logs, users' favourites

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 22:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storage_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("uid", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("csp_uri", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["resource_id"], ["resource.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("resource_id", "number", name="uq_storage_session"),
        sa.UniqueConstraint("uid"),
    )
    op.create_index(op.f("ix_storage_session_resource_id"), "storage_session", ["resource_id"])
    op.create_index(op.f("ix_storage_session_csp_uri"), "storage_session", ["csp_uri"])
    op.create_table(
        "storage_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("tab", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["storage_session.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "tab", "offset", name="uq_storage_log"),
    )
    op.create_table(
        "storage_favorite",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["resource_id"], ["resource.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "resource_id", name="uq_storage_favorite"),
    )


def downgrade() -> None:
    op.drop_table("storage_favorite")
    op.drop_table("storage_log")
    op.drop_index(op.f("ix_storage_session_csp_uri"), table_name="storage_session")
    op.drop_index(op.f("ix_storage_session_resource_id"), table_name="storage_session")
    op.drop_table("storage_session")
