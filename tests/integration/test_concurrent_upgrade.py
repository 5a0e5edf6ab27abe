"""Two processes migrating one new PostgreSQL database at once (the web and the worker of
Procfile.dev start together) take turns; both succeed and the schema is there once."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import create_engine, inspect, text

from sms_service.db.migrate import upgrade
from tests.factories import PG_ADMIN_URL


def test_concurrent_upgrades_of_an_empty_database_both_succeed():
    name = f"sms_upgrade_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []
    start = threading.Barrier(3)

    def migrate() -> None:
        start.wait()
        try:
            upgrade(url)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    try:
        threads += [threading.Thread(target=migrate, daemon=True) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        # Without the lock they deadlock or fail on "relation already exists".
        assert not any(thread.is_alive() for thread in threads), "an upgrade is stuck"
        assert errors == []
        engine = create_engine(url)
        try:
            assert "consent_events" in inspect(engine).get_table_names()
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        finally:
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
