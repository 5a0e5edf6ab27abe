"""two indexes that only repeated the start of another

``ix_consent_events_event`` (event) is the first column of
``ix_consent_events_event_occurred_at`` (event, occurred_at), and ``ix_signatures_campaign_id``
(campaign_id) the first column of the unique (campaign_id, subscriber_id) index: every query
either served can use the longer index, at the cost of one slightly larger index page read.
Each row inserted (every consent event and signature, a few per inbound text) no longer
writes them.

On PostgreSQL each is dropped (and, on downgrade, built) ``CONCURRENTLY``, outside a
transaction: a busy consent log is not locked against writes while it happens.

Revision ID: 0013_redundant_indexes
Revises: 0012_phone_e164
Create Date: 2026-12-03 09:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_redundant_indexes"
down_revision: str | None = "0012_phone_e164"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (table, column)
INDEXES = {
    "ix_consent_events_event": ("consent_events", "event"),
    "ix_signatures_campaign_id": ("signatures", "campaign_id"),
}


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        for name, (table, _) in INDEXES.items():
            op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        for name, (table, column) in INDEXES.items():
            op.create_index(name, table, [column])
        return
    with op.get_context().autocommit_block():
        for name, (table, column) in INDEXES.items():
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({column})")
