"""Run the alembic migrations shipped inside the package."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

MIGRATIONS = Path(__file__).parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An alembic Config pointing at the packaged migrations and ``database_url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


# Any constant shared by every process of the service: the key of the advisory lock that
# makes concurrent upgrades (the web and worker of Procfile.dev starting together) take turns.
_UPGRADE_LOCK = 0x5353_0001


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` up to ``revision``.

    On PostgreSQL two processes may upgrade at once: they take turns on an advisory lock,
    and the second finds the schema already there. (SQLite serialises writers itself.)
    """
    from sms_service.db import make_engine

    cfg = alembic_config(database_url)
    engine = make_engine(database_url)
    try:
        if engine.dialect.name != "postgresql":
            command.upgrade(cfg, revision)
            return
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _UPGRADE_LOCK})
            conn.commit()  # the lock is the session's; alembic runs its own transaction
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _UPGRADE_LOCK})
                conn.commit()
    finally:
        engine.dispose()


def check_upgrade_target(database_url: str, revision: str) -> None:
    """Refuse an upgrade that would do nothing or go backwards, with a reason
    (:class:`~sms_service.errors.BadRequest`): an unknown revision, a relative one, or
    one older than the database's (alembic would print success and change nothing)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from sms_service.db import make_engine
    from sms_service.errors import BadRequest

    if revision in ("head", "heads"):
        return
    script = ScriptDirectory.from_config(alembic_config(database_url))
    known = [r.revision for r in script.walk_revisions()]
    if revision.startswith(("-", "+")) or revision not in known:
        raise BadRequest(
            f"migration: no revision {revision!r}; use head or one of {', '.join(sorted(known))}"
        )
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            try:
                current = MigrationContext.configure(conn).get_current_revision()
            except (OperationalError, ProgrammingError):
                current = None
    finally:
        engine.dispose()
    if current is None or current == revision:
        return
    try:
        ancestors = {r.revision for r in script.iterate_revisions(current, "base")}
    except CommandError:
        return
    if revision in ancestors:
        raise BadRequest(
            f"migration: the database is at {current}; upgrade cannot go back to {revision}"
        )


def create_database(database_url: str) -> bool:
    """Create the PostgreSQL database ``database_url`` names, connecting to the server's
    ``postgres`` database; False when it exists already. (SQLite files are made on first
    use, so this does nothing for them.)"""
    from sqlalchemy.engine import make_url

    from config import normalise_database_url
    from sms_service.db import make_engine

    url = make_url(normalise_database_url(database_url))
    if url.get_backend_name() != "postgresql":
        return False
    name = url.database
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")  # fmt: skip
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if exists:
                return False
            quoted = conn.dialect.identifier_preparer.quote_identifier(name)
            conn.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        admin.dispose()


@contextlib.contextmanager
def private_database(admin_url: str, prefix: str, revision: str = "head") -> Iterator[str]:
    """A new PostgreSQL database beside ``admin_url``'s, migrated to ``revision``; its URL.
    Dropped on the way out, its connections ended first. For test runs and benchmarks."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url, revision)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
