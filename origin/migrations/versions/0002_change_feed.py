"""change feed

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 20:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    feed_head = op.create_table(
        "feed_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_feed_head_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_head")),
    )
    op.bulk_insert(
        feed_head, [{"id": 1, "seq": 0}]
    )  # the feed starts here: older writes are not in it
    op.create_table(
        "changes",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('payload', 'tag', 'iovs', 'lock', 'globaltag')",
            name=op.f("ck_changes_kind"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_changes")),
    )


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_table("feed_head")
