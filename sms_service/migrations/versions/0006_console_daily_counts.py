"""the console dashboard's per-day counts for finished days (a cache of the consent log)

Revision ID: 0006_console_daily_counts
Revises: 0005_console
Create Date: 2026-12-01 22:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_console_daily_counts"
down_revision: str | None = "0005_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_daily_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("series", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "series"),
    )


def downgrade() -> None:
    op.drop_table("console_daily_counts")
