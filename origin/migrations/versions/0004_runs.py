"""run records: what each run was taken with, and the feed's `run` changes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-20 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD_KINDS = "kind IN ('payload', 'tag', 'iovs', 'lock', 'globaltag')"
NEW_KINDS = "kind IN ('payload', 'tag', 'iovs', 'lock', 'globaltag', 'run')"


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("globaltag", sa.String(length=128), nullable=False),
        sa.Column("lumi", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("snapshot", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.Text(), nullable=False),
        sa.Column("attestation", sa.Text(), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("changes") as batch:  # SQLite rebuilds the table
        batch.drop_constraint(op.f("ck_changes_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_changes_kind"), NEW_KINDS)


def downgrade() -> None:
    # The feed's run entries go with the records they announced (positions keep their gaps).
    op.execute("DELETE FROM changes WHERE kind = 'run'")
    with op.batch_alter_table("changes") as batch:
        batch.drop_constraint(op.f("ck_changes_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_changes_kind"), OLD_KINDS)
    op.drop_table("runs")
