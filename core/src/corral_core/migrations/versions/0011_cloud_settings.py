"""cloud settings: account validation results, org instance type policy, capacity reservations

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cloud_account") as batch:
        batch.add_column(
            sa.Column("missing_permissions", sa.JSON(), nullable=False, server_default="[]")
        )
        batch.add_column(
            sa.Column(
                "guide_url",
                sqlmodel.sql.sqltypes.AutoString(length=1024),
                nullable=False,
                server_default="",
            )
        )
        batch.add_column(sa.Column("validation", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("validated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    op.create_table(
        "org_instance_policy",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("allowed", sa.JSON(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id"),
    )
    op.create_table(
        "capacity_reservation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("reservation_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["user_group.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "reservation_id", name="uq_capacity_reservation"),
    )
    op.create_index(op.f("ix_capacity_reservation_group_id"), "capacity_reservation", ["group_id"])
    op.create_index(op.f("ix_capacity_reservation_org_id"), "capacity_reservation", ["org_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_capacity_reservation_org_id"), table_name="capacity_reservation")
    op.drop_index(op.f("ix_capacity_reservation_group_id"), table_name="capacity_reservation")
    op.drop_table("capacity_reservation")
    op.drop_table("org_instance_policy")
    with op.batch_alter_table("cloud_account") as batch:
        batch.drop_column("validated_at")
        batch.drop_column("validation")
        batch.drop_column("guide_url")
        batch.drop_column("missing_permissions")
