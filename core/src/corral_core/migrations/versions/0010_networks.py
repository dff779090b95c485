"""networks: the network permission on cloud accounts (org-wide or per group), account deletion
that waits for the account's networks

Networks themselves are resources (the resource table) and their provisioning steps are rows
of cluster_step.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cloud_account', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('deleting_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    op.create_table(
        'cloud_account_grant',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=True),
        sa.Column('permission', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['cloud_account.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['group_id'], ['user_group.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint(
            'account_id', 'group_id', 'permission', name='uq_cloud_account_grant'
        ),
    )
    with op.batch_alter_table('cloud_account_grant', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_cloud_account_grant_account_id'), ['account_id'], unique=False
        )
        batch_op.create_index(
            batch_op.f('ix_cloud_account_grant_group_id'), ['group_id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('cloud_account_grant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cloud_account_grant_group_id'))
        batch_op.drop_index(batch_op.f('ix_cloud_account_grant_account_id'))
    op.drop_table('cloud_account_grant')
    with op.batch_alter_table('cloud_account', schema=None) as batch_op:
        batch_op.drop_column('deleting_at')
