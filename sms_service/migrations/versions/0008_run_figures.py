"""a finished broadcast run's kept figures; the consent log's opt-outs by time

``broadcast_run_figures`` keeps a settled run's counts (sms_service.broadcasts.figures), so
its console page reads one row instead of grouping a million deliveries.
``ix_consent_events_event_occurred_at`` serves the queries that read one kind of consent
event over a time window (a run's opt-outs, the dashboard's open days): a range of that
event alone instead of every event of the window.

Revision ID: 0008_run_figures
Revises: 0007_consent_chain
Create Date: 2026-12-01 23:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008_run_figures"
down_revision: str | None = "0007_consent_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcast_run_figures",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("kept_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name"),
    )
    op.create_index(
        "ix_consent_events_event_occurred_at", "consent_events", ["event", "occurred_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_consent_events_event_occurred_at", table_name="consent_events")
    op.drop_table("broadcast_run_figures")
