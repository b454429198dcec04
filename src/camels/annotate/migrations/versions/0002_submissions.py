"""Every accepted submission's idempotency key, so a late retry of an older answer is still a replay.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('submissions',
    sa.Column('idempotency_key', sa.String(length=100), nullable=False),
    sa.Column('annotation_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['annotation_id'], ['annotations.id'], ),
    sa.PrimaryKeyConstraint('idempotency_key')
    )
    op.create_index(op.f('ix_submissions_annotation_id'), 'submissions', ['annotation_id'], unique=False)
    # The keys stored so far: each annotation's last one.
    op.execute("INSERT INTO submissions (idempotency_key, annotation_id, revision, created_at) "
               "SELECT idempotency_key, id, revision, updated_at FROM annotations")


def downgrade() -> None:
    op.drop_index(op.f('ix_submissions_annotation_id'), table_name='submissions')
    op.drop_table('submissions')
