"""conditions schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:20:50.774161
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "global_tags",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("state IN ('open', 'locked')", name=op.f("ck_global_tags_state")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_global_tags")),
    )
    op.create_table(
        "payloads",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("object_type", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_payloads")),
    )
    op.create_table(
        "tags",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("time_type", sa.String(length=16), nullable=False),
        sa.Column("payload_type", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("state IN ('open', 'locked')", name=op.f("ck_tags_state")),
        sa.CheckConstraint(
            "time_type IN ('run', 'run_lumi', 'timestamp')", name=op.f("ck_tags_time_type")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tags")),
    )
    op.create_table(
        "global_tag_map",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("global_tag", sa.String(length=128), nullable=False),
        sa.Column("record", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("tag_name", sa.String(length=128), nullable=True),
        sa.Column("insertion_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["global_tag"],
            ["global_tags.name"],
            name=op.f("fk_global_tag_map_global_tag_global_tags"),
        ),
        sa.ForeignKeyConstraint(
            ["tag_name"], ["tags.name"], name=op.f("fk_global_tag_map_tag_name_tags")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_global_tag_map")),
    )
    with op.batch_alter_table("global_tag_map", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_global_tag_map_global_tag_record_label_insertion_time"),
            ["global_tag", "record", "label", "insertion_time"],
            unique=True,
        )

    op.create_table(
        "iovs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tag_name", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.BigInteger(), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.Column("insertion_time", sa.BigInteger(), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("since >= 0", name=op.f("ck_iovs_since")),
        sa.ForeignKeyConstraint(
            ["payload_hash"], ["payloads.hash"], name=op.f("fk_iovs_payload_hash_payloads")
        ),
        sa.ForeignKeyConstraint(["tag_name"], ["tags.name"], name=op.f("fk_iovs_tag_name_tags")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iovs")),
    )
    with op.batch_alter_table("iovs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_iovs_insertion_time"), ["insertion_time"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_iovs_tag_name_channel_since_insertion_time"),
            ["tag_name", "channel", "since", "insertion_time"],
            unique=True,
        )
        batch_op.create_index(
            batch_op.f("ix_iovs_tag_name_insertion_time"),
            ["tag_name", "insertion_time"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("iovs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iovs_tag_name_insertion_time"))
        batch_op.drop_index(batch_op.f("ix_iovs_tag_name_channel_since_insertion_time"))
        batch_op.drop_index(batch_op.f("ix_iovs_insertion_time"))

    op.drop_table("iovs")
    with op.batch_alter_table("global_tag_map", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_global_tag_map_global_tag_record_label_insertion_time"))

    op.drop_table("global_tag_map")
    op.drop_table("tags")
    op.drop_table("payloads")
    op.drop_table("global_tags")
