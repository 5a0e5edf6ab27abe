"""outbound messages and delivery status events

Tables for sms_service.models.outbound; plain CREATE TABLE on SQLite and PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:00:58.582022
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_status_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sid", "status", name="uq_message_status_events_sid"),
    )
    with op.batch_alter_table("message_status_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_status_events_occurred_at"), ["occurred_at"], unique=False
        )

    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("to_number", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("from_number", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column(
            "messaging_service_sid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
        ),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("encoding", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("attempted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbound_messages_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbound_messages_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbound_messages_sid"), ["sid"], unique=True)
        batch_op.create_index(batch_op.f("ix_outbound_messages_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outbound_messages_to_number"), ["to_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_messages_to_number"))
        batch_op.drop_index(batch_op.f("ix_outbound_messages_status"))
        batch_op.drop_index(batch_op.f("ix_outbound_messages_sid"))
        batch_op.drop_index(batch_op.f("ix_outbound_messages_kind"))
        batch_op.drop_index(batch_op.f("ix_outbound_messages_created_at"))

    op.drop_table("outbound_messages")
    with op.batch_alter_table("message_status_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_status_events_occurred_at"))

    op.drop_table("message_status_events")
