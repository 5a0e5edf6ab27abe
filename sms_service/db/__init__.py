"""Database engine and sessions, shared by the web app, the workers and the CLI.

The caller owns the transaction: request handlers and jobs use :func:`session_scope`, and
data helpers never commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine


def make_engine(database_url: str, **kwargs) -> Engine:
    """Create an engine; for SQLite also create the folder and turn on WAL and foreign keys."""
    url = make_url(database_url)
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
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI hook
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def dialect_insert(session: Session):  # noqa: ANN201 - the dialect's insert construct
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
