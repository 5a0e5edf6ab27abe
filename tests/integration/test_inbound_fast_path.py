"""The inbound hot path stays cheap and still correct: few statements per text, a campaign
catalogue cached per process that follows every change made elsewhere, and a database
connection dropped under the app (no pre-ping) costing a retry, never a lost text."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text, update
from sqlmodel import Session, select

from sms_service.db import make_engine, session_scope
from sms_service.models import Campaign, InboundMessage, Subscriber
from sms_service.services.campaigns import create_campaign
from tests.factories import text_in

A, B, C = "+12025550123", "+14155550100", "+13125550142"


def statements(engine, action) -> list[str]:
    """The SQL statements (BEGIN and COMMIT included) the engine sends while ``action`` runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    def begin(conn) -> None:
        seen.append("BEGIN")

    def commit(conn) -> None:
        seen.append("COMMIT")

    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine, "begin", begin)
    event.listen(engine, "commit", commit)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine, "begin", begin)
        event.remove(engine, "commit", commit)
    return seen


@pytest.fixture
def engine(app):
    return app.extensions["sms_engine"]


def add_campaign(engine, keyword: str, title: str) -> None:
    with session_scope(engine) as session:
        create_campaign(session=session, keyword=keyword, title=title)


def test_a_join_from_a_new_number_is_one_read_and_three_inserts(engine, client, settings):
    add_campaign(engine, "HK64", "Release the 64")
    text_in(client, settings, C, "HELP")  # warms the catalogue cache and the pool
    sent = statements(engine, lambda: text_in(client, settings, A, "JOIN"))
    # PostgreSQL reads the catalogue's fingerprint with the locked row; SQLite (in-process,
    # nothing to save) reads the catalogue itself.
    reads = ["SELECT"] if engine.dialect.name == "postgresql" else ["SELECT", "SELECT"]
    assert sent == ["BEGIN", *reads, "INSERT", "INSERT", "INSERT", "COMMIT"]
    with Session(engine) as s:
        [row] = s.exec(text("SELECT status FROM subscribers WHERE phone = :p").bindparams(p=A))
        assert row.status == "subscribed"


def test_a_stop_from_a_subscriber_reads_twice_and_writes_three_times(engine, client, settings):
    text_in(client, settings, A, "JOIN")
    sent = statements(engine, lambda: text_in(client, settings, A, "STOP"))
    # lock (+ catalogue fingerprint on PostgreSQL), signatures with the review hold;
    # message, status, event.
    reads = 2 if engine.dialect.name == "postgresql" else 3  # + the catalogue on SQLite
    assert sent.count("SELECT") == reads
    assert sent.count("INSERT") == 2 and sent.count("UPDATE") == 1
    assert len(sent) == reads + 3 + 2


def test_the_cached_catalogue_follows_campaigns_created_and_closed_elsewhere(
    engine, client, settings
):
    reply = text_in(client, settings, A, "SIGN").get_data(as_text=True)
    assert "Release" not in reply  # no petition yet
    other = make_engine(settings.database_url)  # another process's view: the CLI, a worker
    try:
        add_campaign(other, "HK64", "Release the 64")
        assert "Release the 64" in text_in(client, settings, B, "SIGN").get_data(as_text=True)
        with session_scope(other) as session:
            session.execute(update(Campaign).values(title="Free the 64"))
        assert "Free the 64" in text_in(client, settings, C, "HK64").get_data(as_text=True)
        with session_scope(other) as session:
            session.execute(update(Campaign).values(active=False))
        closed = text_in(client, settings, "+16175550199", "SIGN").get_data(as_text=True)
        assert "64" not in closed
    finally:
        other.dispose()


def test_a_text_after_the_database_dropped_the_connection_is_stored(pg_db):
    from sms_service import create_app
    from tests.factories import make_settings

    settings = make_settings(pg_db)
    app = create_app(settings)
    engine = app.extensions["sms_engine"]
    client = app.test_client()
    try:
        assert text_in(client, settings, A, "JOIN").status_code == 200  # pools a connection
        admin = make_engine(pg_db)
        with admin.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        admin.dispose()
        assert killed >= 1
        response = text_in(client, settings, A, "STOP")
        assert response.status_code == 200 and "unsubscribed" in response.get_data(as_text=True)
        with Session(engine) as s:
            assert len(s.exec(select(InboundMessage)).all()) == 2
            assert s.exec(select(Subscriber)).one().status == "opted_out"
    finally:
        engine.dispose()
