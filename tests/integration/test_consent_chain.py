"""The consent log's hash chain: sealing, and verify catching each kind of tampering."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from sms_service.db import make_engine, session_scope
from sms_service.domain.consent_hash import GENESIS, canonical, link
from sms_service.models import ConsentEvent, utcnow
from sms_service.services import consent_chain
from sms_service.services.consent_chain import Head, seal_all, verify

PHONE = "+12025550123"


def add_events(engine, *kinds: str, **fields) -> list[int]:
    with session_scope(engine) as s:
        rows = [
            ConsentEvent(phone=PHONE, event=k, source="sms", program="Rights Alerts",
                         message_body=k.upper(), **fields)
            for k in kinds
        ]  # fmt: skip
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def tamper(engine, sql: str, **params) -> None:
    """Run ``sql`` with the append-only triggers out of the way, as an owner could."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for name in ("events_no_update", "events_no_delete", "seals_no_update",
                         "seals_no_delete"):  # fmt: skip
                conn.execute(text(f"DROP TRIGGER IF EXISTS consent_{name}"))
        conn.execute(text(sql), params)


def test_sealed_log_verifies_and_links_are_recomputable(engine):
    ids = add_events(engine, "opt_in", "help", "opt_out")
    assert seal_all(engine) == 3
    verdict = verify(engine)
    assert verdict.ok and verdict.count == 3 and verdict.head.last_event_id == ids[-1]
    assert seal_all(engine) == 0  # nothing sealed twice
    # The first link is reproducible from the documented recipe alone.
    with Session(engine) as s:
        first = s.get(ConsentEvent, ids[0])
        seal = consent_chain.seals_for(s, [ids[0]])[ids[0]]
    fields = {c: getattr(first, c) for c in consent_chain.EVENT_COLUMNS}
    assert seal.prev_hash == GENESIS
    assert seal.hash == link(GENESIS, 1, canonical(fields))
    assert '"event":"opt_in"' in canonical(fields) and "null" not in canonical(fields)


def test_an_edit_made_with_the_trigger_disabled_is_caught(engine):
    ids = add_events(engine, "opt_in", "opt_out", "help")
    seal_all(engine)
    tamper(engine, "UPDATE consent_events SET event = 'opt_in' WHERE id = :id", id=ids[1])
    verdict = verify(engine)
    assert not verdict.ok and verdict.event_id == ids[1]
    assert f"event {ids[1]} was changed" in str(verdict)


def test_a_deletion_is_caught_with_or_without_its_seal(engine):
    ids = add_events(engine, "opt_in", "opt_out", "help", "opt_in")
    seal_all(engine)
    tamper(engine, "DELETE FROM consent_events WHERE id = :id", id=ids[1])
    verdict = verify(engine)
    assert not verdict.ok and verdict.event_id == ids[1] and "removed" in verdict.problem
    # Removing the seal too leaves a gap before the next event.
    tamper(engine, "DELETE FROM consent_seals WHERE event_id = :id", id=ids[1])
    verdict = verify(engine)
    assert not verdict.ok and verdict.event_id == ids[2] and "removed" in verdict.problem


def test_truncate_and_plain_deletes_are_refused(engine):
    add_events(engine, "opt_in", "opt_out")
    seal_all(engine)
    statements = ["DELETE FROM consent_events", "DELETE FROM consent_seals",
                  "UPDATE consent_seals SET hash = 'x'"]  # fmt: skip
    if engine.dialect.name == "postgresql":
        statements += ["TRUNCATE consent_events CASCADE", "TRUNCATE consent_seals"]
    for sql in statements:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    assert verify(engine).ok and verify(engine).count == 2


def test_rows_cut_from_the_end_are_caught_by_a_checkpoint(engine):
    ids = add_events(engine, "opt_in", "help", "opt_out")
    seal_all(engine)
    with Session(engine) as s:
        checkpoint = Head.from_json(consent_chain.head(s).to_json())
    assert checkpoint.count == 3 and checkpoint.last_event_id == ids[-1]
    assert verify(engine, checkpoint=checkpoint).ok
    add_events(engine, "help")  # growth after the checkpoint is fine
    seal_all(engine)
    assert verify(engine, checkpoint=checkpoint).ok
    tamper(engine, "DELETE FROM consent_events WHERE id >= :id", id=ids[2])
    tamper(engine, "DELETE FROM consent_seals WHERE event_id >= :id", id=ids[2])
    assert verify(engine).ok  # the chain alone cannot see a clean cut...
    verdict = verify(engine, checkpoint=checkpoint)  # ...the checkpoint can
    assert not verdict.ok and verdict.event_id == ids[2] and "cut from the end" in verdict.problem


def test_a_chain_rewritten_whole_is_caught_only_by_the_checkpoint(engine):
    ids = add_events(engine, "opt_out", "help")
    seal_all(engine)
    with Session(engine) as s:
        checkpoint = consent_chain.head(s)
    tamper(engine, "DELETE FROM consent_seals")
    tamper(engine, "UPDATE consent_events SET event = 'opt_in' WHERE id = :id", id=ids[0])
    seal_all(engine)  # the forger re-seals
    assert verify(engine).ok
    verdict = verify(engine, checkpoint=checkpoint)
    assert not verdict.ok and "rewritten" in verdict.problem


def test_an_event_inserted_out_of_order_is_caught(engine):
    ids = add_events(engine, "opt_in", "help", "opt_out")
    seal_all(engine)
    # Slip a backdated opt-in in before the STOP, with an id below the head's.
    with session_scope(engine) as s:
        s.add(ConsentEvent(id=ids[0] - 1 if ids[0] > 1 else 0, phone=PHONE, event="opt_in",
                           source="sms", program="Rights Alerts",
                           occurred_at=utcnow() - timedelta(days=3)))  # fmt: skip
    assert seal_all(engine) == 0  # the sealer will not take it...
    verdict = verify(engine)
    assert not verdict.ok and "inserted out of order" in verdict.problem  # ...verify names it


def test_recent_unsealed_events_are_reported_not_failed(engine):
    add_events(engine, "opt_in")
    seal_all(engine)
    add_events(engine, "opt_out")
    verdict = verify(engine)
    assert verdict.ok and verdict.unsealed == 1 and "1 recent events not sealed" in str(verdict)


def test_a_late_commit_is_sealed_after_higher_ids(pg_db):
    engine = make_engine(pg_db)
    try:
        add_events(engine, "opt_in")
        slow = Session(engine, expire_on_commit=False)
        late = ConsentEvent(phone=PHONE, event="opt_out", source="sms", program="Rights Alerts")
        slow.add(late)
        slow.flush()  # takes its id now, commits later
        later = add_events(engine, "help")
        assert later[0] > late.id
        assert seal_all(engine) == 2  # opt_in and help; the open transaction is invisible
        slow.commit()
        slow.close()
        assert seal_all(engine) == 1
        verdict = verify(engine)
        assert verdict.ok and verdict.count == 3 and verdict.head.last_event_id == late.id
    finally:
        engine.dispose()


def test_the_worker_seals_on_its_schedule(sqlite_url, monkeypatch):
    import threading

    import fakeredis

    from tests.factories import wait_for
    from workers import context
    from workers.broadcast_worker import start_worker

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CONSENT_SEAL_SECONDS", "0.2")
    context.reset()
    engine = make_engine(sqlite_url)
    stop = threading.Event()
    thread = threading.Thread(
        target=start_worker,
        kwargs=dict(connection=fakeredis.FakeRedis(), fork=False, stop_event=stop),
    )
    thread.start()
    try:
        add_events(engine, "opt_in", "opt_out")
        wait_for(lambda: verify(engine).count == 2, timeout=10, what="2 sealed")
        add_events(engine, "help")
        wait_for(lambda: verify(engine).count == 3, timeout=10, what="3 sealed")
    finally:
        stop.set()
        thread.join(10)
        engine.dispose()
        context.reset()
    assert not thread.is_alive() and verify(engine).ok


def test_the_documented_app_role_may_insert_and_seal_but_not_rewrite(pg_db):
    import uuid

    role = f"sms_app_{uuid.uuid4().hex[:8]}"
    engine = make_engine(pg_db)
    try:
        with engine.begin() as conn:  # the README's grants, as the owner
            conn.execute(text(f"CREATE ROLE {role}"))
            conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "
                              f"public TO {role}"))  # fmt: skip
            conn.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON consent_events, "
                              f"consent_seals FROM {role}"))  # fmt: skip
            conn.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"))
        with Session(engine) as s:
            s.execute(text(f"SET LOCAL ROLE {role}"))  # ends with the transaction
            s.add(ConsentEvent(phone=PHONE, event="opt_in", source="sms", program="P"))
            s.flush()
            consent_chain.seal_pending(session=s)
            s.commit()
        for sql in (
            "UPDATE consent_events SET event = 'x'",
            "DELETE FROM consent_seals",
            "TRUNCATE consent_events",
            "ALTER TABLE consent_events DISABLE TRIGGER ALL",
        ):
            with pytest.raises(DBAPIError, match="permission denied|must be owner"):
                with engine.begin() as conn:
                    conn.execute(text(f"SET LOCAL ROLE {role}"))
                    conn.execute(text(sql))
        assert verify(engine).ok and verify(engine).count == 1
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        engine.dispose()


def test_two_sealers_at_once_extend_one_chain(engine):
    import threading

    add_events(engine, *["opt_in"] * 300)
    errors = []

    def sealer() -> None:
        try:
            for _ in range(5):
                seal_all(engine, limit=20)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sealer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seal_all(engine)
    verdict = verify(engine)
    assert errors == [] and verdict.ok and verdict.count == 300
