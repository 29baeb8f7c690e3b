"""audit: who made each change, and a change's history by subject

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 22:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("changes") as batch:  # SQLite rebuilds the table
        batch.add_column(sa.Column("who", sa.String(length=128), nullable=True))
    op.create_index(op.f("ix_changes_subject_seq"), "changes", ["subject", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_changes_subject_seq"), table_name="changes")
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("who")
