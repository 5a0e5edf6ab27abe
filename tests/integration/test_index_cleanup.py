"""Migration 0013 drops two indexes that repeated the start of another: the schema lacks
them after an upgrade on both databases, the queries they served still find an index, and
a downgrade builds them again (on a database of its own: the run's shared one stays at
head)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from sms_service.db import make_engine
from sms_service.db.migrate import alembic_config, private_database, upgrade
from tests.factories import PG_ADMIN_URL

DROPPED = {"consent_events": "ix_consent_events_event", "signatures": "ix_signatures_campaign_id"}
# The index that still serves each dropped one's queries, by its leading column.
COVERING = {
    "consent_events": ("event", "occurred_at"),
    "signatures": ("campaign_id", "subscriber_id"),
}


def indexes(url: str) -> dict[str, dict[str, tuple[str, ...]]]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        by_table = {}
        for table in DROPPED:
            named = {i["name"]: tuple(i["column_names"]) for i in found.get_indexes(table)}
            for constraint in found.get_unique_constraints(table):
                named.setdefault(constraint["name"], tuple(constraint["column_names"]))
            by_table[table] = named
        return by_table
    finally:
        engine.dispose()


def test_the_schema_at_head_has_only_the_longer_indexes(database_url):
    for table, named in indexes(database_url).items():
        assert DROPPED[table] not in named
        assert COVERING[table] in named.values(), named


def test_postgresql_still_reads_by_event_and_by_campaign_through_an_index(pg_db):
    engine = make_engine(pg_db)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            by_event = conn.execute(text(
                "EXPLAIN SELECT id FROM consent_events WHERE event = 'opt_out'"
            )).scalars().all()  # fmt: skip
            by_campaign = conn.execute(text(
                "EXPLAIN SELECT id FROM signatures WHERE campaign_id = 7"
            )).scalars().all()  # fmt: skip
    finally:
        engine.dispose()
    # Any index that starts with the column will do (signatures has three).
    assert "ix_consent_events_event_occurred_at" in by_event[0], by_event
    assert "Index Cond: ((event)::text = 'opt_out'::text)" in " ".join(by_event), by_event
    assert "Index Cond: (campaign_id = 7)" in " ".join(by_campaign), by_campaign


def test_a_downgrade_builds_them_again_and_an_upgrade_drops_them_once_more():
    with private_database(PG_ADMIN_URL, "sms_idx") as url:
        command.downgrade(alembic_config(url), "0012_phone_e164")
        for table, named in indexes(url).items():
            assert DROPPED[table] in named
        upgrade(url)
        for table, named in indexes(url).items():
            assert DROPPED[table] not in named
