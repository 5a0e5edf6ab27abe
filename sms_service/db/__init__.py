"""Database engine and sessions, shared by the web app, the workers and the CLI.

The caller owns the transaction: request handlers and jobs use :func:`session_scope`, and
data helpers never commit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

log = logging.getLogger(__name__)
T = TypeVar("T")

# PostgreSQL errors that mean "another transaction got there first; run again and you will
# see what it did": serialization failure, deadlock, unique violation.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "23505"})
TRANSACTION_ATTEMPTS = 5


def make_engine(database_url: str, *, threads: int | None = None, **kwargs) -> Engine:
    """Create an engine; for SQLite also create the folder and turn on WAL and foreign keys.

    SQL parameters are left out of exception texts (``hide_parameters``): they are phone
    numbers and message bodies, and exceptions end up in logs and tracebacks.

    ``threads``: how many threads may each hold a connection at once (the web process's
    ``WEB_THREADS``). PostgreSQL's pool then keeps that many (at least SQLAlchemy's default
    5): past its size a checkout opens an overflow connection, closed again when it comes
    back to a full pool, so nearly every request beyond it would open a new connection (a
    new server process).
    """
    from config import normalise_database_url

    url = make_url(normalise_database_url(database_url))
    kwargs.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2"):
        # psycopg 3 is what the project installs; a plain postgresql:// URL means it.
        url = url.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_pre_ping", True)
    if threads is not None:
        kwargs.setdefault("pool_size", max(5, threads))
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def display_url(database_url: str) -> str:
    """The URL for people (banners, ``sms-service info``): the password hidden."""
    from config import normalise_database_url

    try:
        return make_url(normalise_database_url(database_url)).render_as_string(hide_password=True)
    except Exception:  # a malformed URL is shown as given, for the error
        return database_url


def for_each_dialect(build: Callable[[Callable], T]) -> dict[str, T]:
    """``build(insert)`` for each database's ``insert`` (the ON CONFLICT statements of the
    hot paths, built once at import), by dialect name."""
    return {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}


def dialect_insert(session: Session):
    """The ``insert`` of the session's database, which has ``on_conflict_do_nothing``
    (PostgreSQL and SQLite both take it)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back if it raises."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_transient_conflict(exc: DBAPIError) -> bool:
    """True when ``exc`` is a conflict with a concurrent transaction that a fresh attempt
    resolves (PostgreSQL serialization failure, deadlock or unique violation; SQLite busy
    or unique violation), not an error in the statement itself."""
    state = getattr(exc.orig, "sqlstate", None)
    if state is not None:
        return state in RETRYABLE_SQLSTATES
    message = str(exc.orig).lower()
    return "database is locked" in message or "unique constraint failed" in message


class RaceLost(Exception):
    """Raised by a unit of work that found a concurrent transaction got there first (and
    rolled back what it did): :func:`with_retries` runs it again, as for a unique violation."""


def with_retries(work: Callable[[], T], *, attempts: int = TRANSACTION_ATTEMPTS) -> T:
    """Call ``work()`` (one whole transaction), again from the start (bounded) when it loses
    a race with a concurrent transaction; other errors propagate at once.

    ``work`` must be safe to repeat: everything it did is rolled back before it runs again.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except RaceLost:
            if attempt == attempts:
                raise
        except DBAPIError as exc:
            # A dropped connection (the database restarted; engines without pre-ping find
            # out here) is transient too: the pool has discarded it, the next try gets a
            # fresh one, and ``work`` is safe to repeat even if the commit had landed.
            transient = exc.connection_invalidated or is_transient_conflict(exc)
            if attempt == attempts or not transient:
                raise
        log.info("transaction conflict (attempt %d of %d), retrying", attempt, attempts)
        # A short, jittered pause so two losers do not collide again in lockstep.
        time.sleep(random.uniform(0, 0.005 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def run_transaction(
    engine: Engine, work: Callable[[Session], T], *, attempts: int = TRANSACTION_ATTEMPTS
) -> T:
    """Run ``work(session)`` in one :func:`session_scope`, again from the start (bounded)
    when it loses a race with a concurrent transaction (:func:`with_retries`)."""

    def once() -> T:
        with session_scope(engine) as session:
            return work(session)

    return with_retries(once, attempts=attempts)
