"""sync: where `outpost sync --follow` stands in each source's change feed

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-10 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_positions",
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_sync_positions")),
    )


def downgrade() -> None:
    op.drop_table("sync_positions")
