"""The hot paths' batched transactions (sms_service.db.pipeline) on both databases: order,
rollback, errors that leave the pooled connection usable, and hostile text stored exactly."""

from __future__ import annotations

import ctypes
from datetime import UTC, datetime

import pytest
from psycopg import pq
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.exc import DataError, IntegrityError

from sms_service.db import pipeline, with_retries
from sms_service.db.pipeline import batches
from sms_service.models import InboundMessage, OutboundMessage

AT = datetime(2026, 12, 2, 1, 2, 3, tzinfo=UTC)
MESSAGES = InboundMessage.__table__
INSERT = MESSAGES.insert()
BY_SID = select(MESSAGES.c.body, MESSAGES.c.received_at).where(
    MESSAGES.c.message_sid == bindparam("sid")
)
COUNT = select(func.count()).select_from(MESSAGES)
ALL_SIDS = select(MESSAGES.c.message_sid).order_by(MESSAGES.c.message_sid)

HOSTILE = [
    "it's; DROP TABLE inbound_messages; --",
    "back\\slash \\' \\\\ E'\\x41'",
    "100% %s %(sid)s $1 $$ $tag$ :sid ?",
    'double "quotes" and `ticks`',
    "émoji 🛑 ＳＴＯＰ ‮rtl‬ 中文",
    "new\nline\ttab\r",
]


@pytest.fixture(autouse=True, params=["libpq", "psycopg"])
def flush_path(request, engine, monkeypatch):
    """Every test on PostgreSQL both ways a batch's Sync is sent and flushed: through the
    loaded libpq with the GIL released (the default with psycopg's binary package), and
    through psycopg's own calls (any other psycopg build)."""
    if engine.dialect.name != "postgresql":
        if request.param == "psycopg":
            pytest.skip("PostgreSQL's flush paths")
        return None
    if request.param == "psycopg":
        monkeypatch.setattr(pipeline, "_LIBPQ", None)
        return None
    calls = []
    library = pipeline._LIBPQ
    assert library is not None, "psycopg's binary package is a dependency"

    class Counted:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(library, name)

    monkeypatch.setattr(pipeline, "_LIBPQ", Counted())
    return calls


def test_the_batch_goes_through_the_very_libpq_psycopg_runs_on(engine, flush_path):
    if flush_path is None:
        pytest.skip("the libpq path on PostgreSQL")
    assert pipeline._LIBPQ.PQlibVersion() == pq.version()
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        # The library reads psycopg's own connection (the server's version, as psycopg has it).
        pointer = ctypes.c_void_p(raw.pgconn.pgconn_ptr)
        assert pipeline._LIBPQ.PQserverVersion(pointer) == raw.info.server_version
    flush_path.clear()
    with batches(engine) as db:
        [count] = db.run([(COUNT, {})])
    assert count[0][0] == 0
    assert flush_path[:2] == ["PQsendPipelineSync", "PQflush"]


def message(sid: str, body: str = "JOIN") -> dict:
    return {
        "message_sid": sid, "account_sid": None, "from_number": "+12025550123",
        "to_number": "21333", "body": body, "num_media": 0, "opt_out_type": None,
        "intent": "opt_in", "reply": None, "received_at": AT,
    }  # fmt: skip


def stored(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(COUNT).scalar_one()


def test_statements_in_a_batch_run_in_order_and_see_each_other(engine):
    with batches(engine) as db:
        inserted, found, count = db.run(
            [(INSERT, message("SM1")), (BY_SID, {"sid": "SM1"}), (COUNT, {})]
        )
        assert inserted == [] and found[0].body == "JOIN" and count[0][0] == 1
        assert found[0].received_at == AT
        db.commit()
    assert stored(engine) == 1


def test_nothing_stays_unless_committed(engine):
    with batches(engine) as db:
        db.run([(INSERT, message("SM1"))])
        db.rollback()
        assert db.run([(COUNT, {})])[0][0][0] == 0
    with batches(engine) as db:
        db.run([(INSERT, message("SM2"))])  # closed without commit
    assert stored(engine) == 0


def test_hostile_text_is_stored_exactly(engine):
    rows = [message(f"SM{i}", body) for i, body in enumerate(HOSTILE)]
    with batches(engine) as db:
        db.run([(INSERT, rows)])
        db.commit()
    with batches(engine) as db:
        found = db.run([(BY_SID, {"sid": f"SM{i}"}) for i in range(len(HOSTILE))])
    assert [r[0].body for r in found] == HOSTILE
    assert stored(engine) == len(HOSTILE)


def test_an_error_part_way_raises_as_sqlalchemy_does_and_the_connection_goes_on(engine):
    engine.pool.dispose()  # one pooled connection from here on, reused by every batch
    with batches(engine) as db:
        db.run([(INSERT, message("SM1"))])
        db.commit()
    for _ in range(2):
        with batches(engine) as db, pytest.raises(IntegrityError):
            # A statement new to the connection after the failing one: never prepared.
            db.run([(INSERT, message("SM1")), (BY_SID, {"sid": "SM1"}), (COUNT, {})])
    with batches(engine) as db:
        found, count = db.run([(BY_SID, {"sid": "SM1"}), (COUNT, {})])
        assert found[0].body == "JOIN" and count[0][0] == 1
        db.run([(INSERT, message("SM2"))])
        db.commit()
    assert stored(engine) == 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_value_postgresql_cannot_take_raises_before_anything_is_sent(engine):
    """A NUL in a text cannot be sent at all: the error is psycopg's DataError as SQLAlchemy
    raises it, not a pipeline left busy, and the batch and the connection go on."""
    engine.pool.dispose()
    with batches(engine) as db:
        db.run([(INSERT, message("SM1"))])
        with pytest.raises(DataError):
            db.run([(INSERT, message("SM2")), (INSERT, message("SM3", "JO\x00IN"))])
        db.run([(INSERT, message("SM4"))])
        db.commit()
    with batches(engine) as db:
        assert [r.message_sid for r in db.run([(ALL_SIDS, {})])[0]] == ["SM1", "SM4"]


def test_the_connection_goes_back_to_the_pool_as_it_came(engine):
    with batches(engine) as db:
        db.run([(INSERT, message("SM1"))])
    with engine.connect() as conn:  # the same pooled connection, used the ordinary way
        conn.execute(INSERT, message("SM2"))
        conn.rollback()
        assert conn.execute(COUNT).scalar_one() == 0
        if engine.dialect.name == "postgresql":
            assert conn.connection.dbapi_connection.autocommit is False
            assert conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar() >= 1


def test_statements_dropped_under_the_connection_cost_a_retry_not_an_error(engine):
    """psycopg itself sends DEALLOCATE ALL after a ROLLBACK once it has prepared statements
    of its own (any ORM request on the same pooled connection can do that)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    engine.pool.dispose()
    with batches(engine) as db:
        db.run([(INSERT, message("SM1")), (COUNT, {})])
        db.commit()
    with engine.connect() as conn:  # the same pooled connection
        for _ in range(6):  # psycopg prepares a query it has run five times
            conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar()
        conn.rollback()
        assert conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar() == 0

    def once() -> int:
        with batches(engine) as db:
            [_, count] = db.run([(INSERT, message("SM2")), (COUNT, {})])
            db.commit()
            return count[0][0]

    assert with_retries(once) == 2
    assert stored(engine) == 2


def test_a_statement_with_python_side_defaults_is_compiled_once(engine):
    """Columns left to a Python default (``status``, ``created_at`` of an outbound message)
    are computed at each execution, and the statement is compiled on its first run only."""
    if engine.dialect.name != "postgresql":
        pytest.skip("only the PostgreSQL batches compile statements themselves")
    outbound = OutboundMessage.__table__
    insert = outbound.insert().returning(outbound.c.id)
    values = {"to_number": "+12025550123", "body": "hi", "kind": "reply", "segments": 1}
    for _ in range(2):
        with batches(engine) as db:
            db.run([(insert, values)])
            db.commit()
    assert (id(insert), frozenset(values)) in pipeline._prepared
    with engine.connect() as conn:
        rows = conn.execute(select(outbound.c.status, outbound.c.created_at)).all()
    assert [r.status for r in rows] == ["pending", "pending"]
    assert all(r.created_at is not None for r in rows)
