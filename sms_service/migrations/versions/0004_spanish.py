"""a subscriber's language, and the Spanish body of a broadcast and its runs

``subscribers.language`` is NULL (English) until a Spanish keyword sets "es". The new
columns are nullable, so existing rows need no backfill; plain ADD COLUMN on SQLite and
PostgreSQL.

Revision ID: 0004_spanish
Revises: 0003
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004_spanish"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "subscribers",
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    )
    op.add_column("broadcasts", sa.Column("body_es", sa.Text(), nullable=True))
    op.add_column("broadcast_runs", sa.Column("body_es", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("broadcast_runs") as batch:
        batch.drop_column("body_es")
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_column("body_es")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("language")
