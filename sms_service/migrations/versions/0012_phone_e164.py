"""phone numbers held to E.164 by the schema (PostgreSQL)

Every number the service stores has come through ``domain.phones.to_e164``; from this
revision PostgreSQL refuses any other ``subscribers.phone`` or ``consent_events.phone``
(``+``, a first digit 1-9, at most 15 digits). The exports rely on it: a validated check
lets the COPY path write the column as stored instead of testing every number against the
plain-number pattern (``services.exports.e164_tables``).

Each check is added ``NOT VALID`` (new rows are checked from then on; a brief lock) and
then validated in a transaction of its own, which reads the table without blocking
writers. A table that already holds a number in another form keeps its check unvalidated
(consent events cannot be corrected: the log is append-only) and the upgrade says so; the
exports then keep neutralising that column. SQLite is left as it is: its exports format
every cell in Python anyway.

Revision ID: 0012_phone_e164
Revises: 0011_sending_attempts
Create Date: 2026-12-02 19:10:00
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_phone_e164"
down_revision: str | None = "0011_sending_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

E164 = r"^\+[1-9][0-9]{1,14}$"
TABLES = ("subscribers", "consent_events")
log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_phone_e164 "
            f"CHECK (phone ~ '{E164}') NOT VALID"
        )
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        for table in TABLES:
            # Count first: VALIDATE's own error would name one offending row's number.
            others = bind.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE phone !~ :e164"), {"e164": E164}
            ).scalar_one()
            if others:
                log.warning(
                    "%s: %d rows hold a phone number that is not E.164; the check "
                    "ck_%s_phone_e164 applies to new rows only, and exports keep "
                    "neutralising the column",
                    table, others, table,
                )  # fmt: skip
                continue
            bind.execute(sa.text(f"ALTER TABLE {table} VALIDATE CONSTRAINT ck_{table}_phone_e164"))


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT ck_{table}_phone_e164")
