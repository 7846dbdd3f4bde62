"""Inbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 22:25:24.088337
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.store.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("lease_until", bot.store.models.UTCDateTime(), nullable=False),
        sa.Column("received_at", bot.store.models.UTCDateTime(), nullable=False),
        sa.Column("handled_at", bot.store.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_inbox")),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbox_handled_at_lease_until"), ["handled_at", "lease_until"]
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_to", sa.Integer(), nullable=True))
    # Everything received before this revision was answered before it.
    op.execute(
        "UPDATE messages SET delivered_at = created_at "
        "WHERE direction = 'in' AND delivered_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("reply_to")

    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_handled_at_lease_until"))

    op.drop_table("inbox")
