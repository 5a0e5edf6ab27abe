"""PostgreSQL holds stored phone numbers to E.164 (migration 0012), and the COPY export
writes a checked phone column as stored, but only where the check is validated."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from sms_service.db import make_engine
from sms_service.db.migrate import private_database, upgrade
from sms_service.models import ConsentEvent, Subscriber
from sms_service.services.exports import (
    E164_CHECKS,
    ExportFilter,
    consent_export,
    copy_query,
    e164_tables,
    write_export,
)
from tests.factories import PG_ADMIN_URL

GOOD = "+12025550123"
NOT_E164 = ["=1+1", "2025550123", "+0123456789", "+1202555012a", "", "+1 202 555 0123"]


def event(phone: str) -> ConsentEvent:
    when = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    return ConsentEvent(occurred_at=when, phone=phone, event="opt_in", source="sms", program="P")


@pytest.mark.parametrize("phone", NOT_E164)
def test_postgresql_refuses_a_stored_phone_that_is_not_e164(pg_db, phone):
    engine = make_engine(pg_db)
    try:
        for row in (Subscriber(phone=phone, status="subscribed"), event(phone)):
            with Session(engine) as s, pytest.raises(IntegrityError, match="phone_e164"):
                s.add(row)
                s.commit()
        with Session(engine) as s:
            s.add_all([Subscriber(phone=GOOD, status="subscribed"), event(GOOD)])
            s.commit()
        with engine.connect() as conn:
            assert e164_tables(conn) == frozenset(E164_CHECKS)
    finally:
        engine.dispose()


def test_a_checked_phone_column_is_copied_as_stored_and_an_unchecked_one_is_not():
    export = consent_export(ExportFilter())
    dialect = postgresql.dialect()
    checked = str(copy_query(export, e164=frozenset({"consent_events"})).compile(dialect=dialect))
    unchecked = str(copy_query(export).compile(dialect=dialect))
    assert "consent_events.phone AS phone_number" in checked
    assert "consent_events.phone AS phone_number" not in unchecked
    assert unchecked.count("~") == checked.count("~") + 1  # the plain-number pattern


@pytest.fixture
def database_at_0011() -> Iterator[str]:
    """A new PostgreSQL database migrated to the revision before the checks."""
    with private_database(PG_ADMIN_URL, "sms_e164", "0011_sending_attempts") as url:
        yield url


def test_an_upgrade_over_a_number_in_another_form_keeps_that_tables_check_unvalidated(
    database_at_0011,
):
    engine = make_engine(database_at_0011)
    try:
        with Session(engine) as s:  # the log is append-only: this row can never be fixed
            s.add_all([event("=1+1"), event(GOOD), Subscriber(phone=GOOD, status="subscribed")])
            s.commit()
        upgrade(database_at_0011)
        with engine.connect() as conn:
            assert e164_tables(conn) == {"subscribers"}
        # New rows are checked all the same.
        with Session(engine) as s, pytest.raises(IntegrityError, match="phone_e164"):
            s.add(event("=2+2"))
            s.commit()
        # The export still neutralises that column, and both paths agree.
        copied, streamed = io.BytesIO(), io.BytesIO()
        assert write_export(engine, copied, consent_export(ExportFilter())) == 2
        write_export(engine, streamed, consent_export(ExportFilter()), use_copy=False)
        assert copied.getvalue() == streamed.getvalue()
        assert b"\r\n2026-01-01T09:30:00+00:00,'=1+1,opt_in," in copied.getvalue()
    finally:
        engine.dispose()
