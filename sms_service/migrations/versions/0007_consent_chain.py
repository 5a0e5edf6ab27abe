"""consent log seals (hash chain); TRUNCATE refused on the consent log

``consent_seals`` holds one chain link per consent event (see
sms_service.domain.consent_hash). Both tables refuse UPDATE and DELETE by trigger, and on
PostgreSQL TRUNCATE too (SQLite has no TRUNCATE; its DELETE without WHERE fires the row
triggers).

Revision ID: 0007_consent_chain
Revises: 0006_console_daily_counts
Create Date: 2026-12-01 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007_consent_chain"
down_revision: str | None = "0006_console_daily_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_seals",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sealed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("position"),
    )
    with op.batch_alter_table("consent_seals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_seals_event_id"), ["event_id"], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        # consent_events_append_only() (0001) raises naming TG_OP, which works per statement.
        op.execute(
            "CREATE TRIGGER consent_seals_append_only BEFORE UPDATE OR DELETE "
            "ON consent_seals FOR EACH ROW EXECUTE FUNCTION consent_events_append_only()"
        )
        for table in ("consent_events", "consent_seals"):
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION consent_events_append_only()"
            )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER consent_seals_no_{action.lower()} BEFORE {action} "
                "ON consent_seals BEGIN "
                f"SELECT RAISE(ABORT, 'consent log is append-only: {action} refused'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("consent_events", "consent_seals"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP TRIGGER IF EXISTS consent_seals_append_only ON consent_seals")
    else:
        op.execute("DROP TRIGGER IF EXISTS consent_seals_no_update")
        op.execute("DROP TRIGGER IF EXISTS consent_seals_no_delete")
    with op.batch_alter_table("consent_seals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_seals_event_id"))
    op.drop_table("consent_seals")
