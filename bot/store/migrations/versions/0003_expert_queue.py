"""Expert queue

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 20:58:59.573005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.store.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "announcements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("message_ref", sa.String(length=64), nullable=False),
        sa.Column("created_at", bot.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["users.id"],
            name=op.f("fk_announcements_recipient_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_announcements_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_announcements")),
    )
    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_announcements_ticket_id"), ["ticket_id"], unique=False)

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("contacts_shared", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("announced_at", bot.store.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("escalated_at", bot.store.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("reminded_at", bot.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("nudged_at", bot.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("last_talent_at", bot.store.models.UTCDateTime(), nullable=True)
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_open_tickets", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("share_name", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("share_name")
        batch_op.drop_column("max_open_tickets")

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("last_talent_at")
        batch_op.drop_column("nudged_at")
        batch_op.drop_column("reminded_at")
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("announced_at")
        batch_op.drop_column("contacts_shared")

    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_announcements_ticket_id"))

    op.drop_table("announcements")
