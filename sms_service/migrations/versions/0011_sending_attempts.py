"""deliveries being sent, by run and claim time

``ix_broadcast_deliveries_sending`` holds only the rows in ``sending`` (a batch in flight,
or an attempt whose answer was lost, until the recoverer settles it). A run's page asks it
for the oldest open attempt, the point up to which carrier reports and opt-outs can be
folded while the run sends (sms_service.broadcasts.figures.folded); planning writes
nothing to it (new rows are ``pending``).

Revision ID: 0011_sending_attempts
Revises: 0010_console_speed
Create Date: 2026-12-02 01:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_sending_attempts"
down_revision: str | None = "0010_console_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_broadcast_deliveries_sending",
        "broadcast_deliveries",
        ["run_id", "attempt_started_at"],
        postgresql_where=sa.text("status = 'sending'"),
        sqlite_where=sa.text("status = 'sending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_broadcast_deliveries_sending", table_name="broadcast_deliveries")
