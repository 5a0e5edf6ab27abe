"""the console at national size: deliveries by sid; statistics on the forecast's groups

``ix_broadcast_deliveries_sid`` (sent deliveries only, so planning a run does not write
it) lets a finished run's page look up the carrier's latest reports by sid instead of
reading all of the run's deliveries. ``st_subscribers_reach`` (PostgreSQL) tells the
planner how few (number prefix, zone) groups there are, so the composer's forecast
groups the audience in a small hash table instead of sorting it on disk.

Revision ID: 0010_console_speed
Revises: 0009_petition_page
Create Date: 2026-12-02 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_console_speed"
down_revision: str | None = "0009_petition_page"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_broadcast_deliveries_sid",
        "broadcast_deliveries",
        ["sid"],
        postgresql_where=sa.text("sid IS NOT NULL"),
        sqlite_where=sa.text("sid IS NOT NULL"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE STATISTICS st_subscribers_reach (ndistinct) "
            "ON (substr(phone, 1, 5)), timezone FROM subscribers"
        )
        op.execute("ANALYZE subscribers")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_subscribers_reach")
    op.drop_index("ix_broadcast_deliveries_sid", table_name="broadcast_deliveries")
