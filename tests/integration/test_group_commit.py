"""Group commit of inbound texts on PostgreSQL: texts that arrive together share one
transaction, each decided and stored exactly as alone; a group that fails stores each text
alone; two texts from one number never share a group.

Rows a transaction inserts share its ``xmin``: the number of distinct ``xmin`` among the
stored messages is the number of transactions that stored them.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from sms_service.db import make_engine, session_scope
from sms_service.program import program_from
from sms_service.services.campaigns import create_campaign
from sms_service.services.inbound import InboundSms, receive, receive_together
from sms_service.web.group_commit import GroupCommit
from tests.factories import make_settings, new_sid, wait_for

SHORT_CODE = "21333"
# Longer than any test holds a row: the leader's group waits on it instead of failing.
HOLD_MS = 20_000


@pytest.fixture
def engine(pg_db):
    engine = make_engine(pg_db)
    with session_scope(engine) as session:
        create_campaign(session=session, keyword="HK64", title="Release the 64")
    yield engine
    engine.dispose()


@pytest.fixture
def program(pg_db):
    return program_from(make_settings(pg_db))


def sms(number: str, body: str, sid: str | None = None) -> InboundSms:
    return InboundSms(sid or new_sid(), number, SHORT_CODE, body, datetime.now(UTC))


def number(i: int) -> str:
    return f"+1202555{i:04d}"


def transactions(engine) -> int:
    """How many transactions stored the inbound messages."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(DISTINCT xmin::text) FROM inbound_messages")
        ).scalar()


def stored(engine) -> dict[str, tuple]:
    """Every stored message: MessageSid → (sender, intent, reply)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT message_sid, from_number, intent, reply FROM inbound_messages")
        )
        return {r.message_sid: (r.from_number, r.intent, r.reply) for r in rows}


def statuses(engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT phone, status FROM subscribers"))
        return {r.phone: r.status for r in rows}


def consent_events(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT phone, event, message_sid FROM consent_events ORDER BY id")
        )
        return sorted(tuple(r) for r in rows)


def test_texts_from_several_numbers_are_stored_as_alone_in_one_transaction(engine, program):
    """The same replies, rows and consent events as one by one, in one transaction."""
    bodies = ["JOIN", "SIGN", "HELP", "STOP", "hi", "Stop please", "JOIN", "what is this?"]
    together = [sms(number(i), body) for i, body in enumerate(bodies)]
    results = receive_together(engine, together, program)
    alone_texts = [sms(number(100 + i), body) for i, body in enumerate(bodies)]
    alone = [receive(engine, t, program) for t in alone_texts]

    assert [(r.reply, r.intent) for r in results] == [(r.reply, r.intent) for r in alone]
    assert transactions(engine) == 1 + len(bodies)
    rows = stored(engine)
    for t, result in zip(together, results, strict=True):
        assert rows[t.message_sid] == (t.from_number, result.intent.value, result.reply)
    state = statuses(engine)
    for i in range(len(bodies)):
        assert state.get(number(i)) == state.get(number(100 + i))
    events = consent_events(engine)
    kinds = {(p, e) for p, e, _ in events}
    for i in range(len(bodies)):
        grouped = {e for p, e in kinds if p == number(i)}
        single = {e for p, e in kinds if p == number(100 + i)}
        assert grouped == single


def test_a_group_follows_what_its_numbers_committed_before(engine, program):
    """A second group sees the first's commits: JOIN, then STOP, then START per number."""
    for body in ["JOIN", "STOP", "START"]:
        receive_together(engine, [sms(number(i), body) for i in range(5)], program)
    assert statuses(engine) == {number(i): "subscribed" for i in range(5)}
    assert transactions(engine) == 3


def test_a_retry_in_a_group_is_answered_with_its_stored_reply_and_stores_nothing(engine, program):
    """A Twilio retry of a stored text, in a group: its first delivery's reply, nothing
    stored again, and the group's other texts stored in the same transaction."""
    first = sms(number(1), "JOIN")
    reply = receive(engine, first, program).reply
    group = [sms(number(2), "JOIN"), sms(number(1), "STOP", sid=first.message_sid)]
    results = receive_together(engine, group, program)
    assert results[1].duplicate and results[1].reply == reply
    assert not results[0].duplicate and results[0].intent.value == "opt_in"
    assert set(stored(engine)) == {first.message_sid, group[0].message_sid}
    assert statuses(engine) == {number(1): "subscribed", number(2): "subscribed"}
    assert [e for p, e, _ in consent_events(engine) if p == number(1)] == ["opt_in"]
    assert transactions(engine) == 2


def test_a_group_that_fails_commits_nothing(engine, program):
    """A text that cannot be stored (a NUL in its body: PostgreSQL refuses it) fails the
    whole group: nothing of the others is stored either."""
    group = [sms(number(1), "JOIN"), sms(number(2), "JO\x00IN")]
    with pytest.raises(Exception):  # noqa: B017 - whichever error the driver raises
        receive_together(engine, group, program)
    assert stored(engine) == {}
    assert statuses(engine) == {}


def test_two_texts_from_one_number_are_refused_in_one_group(engine, program):
    with pytest.raises(ValueError, match="one text per number"):
        receive_together(engine, [sms(number(1), "JOIN"), sms(number(1), "STOP")], program)
    assert stored(engine) == {}


def _held(engine, phone: str):
    """A transaction holding ``phone``'s subscriber row, so a text from it waits there."""
    conn = engine.connect()
    conn.execute(text("SELECT id FROM subscribers WHERE phone = :p FOR UPDATE"), {"p": phone})
    return conn


def _backends_waiting_on_a_lock(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )).scalar()  # fmt: skip


def _in_threads(calls) -> list:
    """A thread for each call (not started) and the list their results (or exceptions)
    land in, in order."""
    out: list = [None] * len(calls)

    def run(i, call):
        try:
            out[i] = call()
        except BaseException as exc:  # handed to the test
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    return threads, out


def test_texts_that_arrive_while_a_transaction_runs_share_the_next(engine, program):
    """The first text waits on a held row; the twelve that arrive meanwhile queue, and are
    then stored in one transaction, each answered with its own reply."""
    receive(engine, sms(number(0), "JOIN"), program)
    grouped = GroupCommit(lock_timeout_ms=HOLD_MS)
    blocker = _held(engine, number(0))
    first = sms(number(0), "STOP")
    later = [sms(number(i), "JOIN" if i % 2 else "HELP") for i in range(1, 13)]
    threads, out = _in_threads(
        [lambda t=t: grouped.receive(engine, t, program) for t in [first, *later]]
    )
    threads[0].start()
    wait_for(lambda: _backends_waiting_on_a_lock(engine) == 1, interval=0.01)
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: len(grouped._queue) == len(later), interval=0.01)
    assert stored(engine).keys().isdisjoint(t.message_sid for t in later)  # none answered yet
    blocker.rollback()
    blocker.close()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(isinstance(r, Exception) for r in out), out
    assert out[0].intent.value == "opt_out"
    for t, result in zip(later, out[1:], strict=True):
        assert result.intent.value == ("opt_in" if t.body == "JOIN" else "help")
    assert transactions(engine) == 1 + 1 + 1  # the first JOIN, the STOP, the twelve together
    assert not grouped._running and not grouped._queue


def test_a_second_text_from_a_number_waits_for_the_next_group(engine, program):
    """JOIN and STOP from one number, queued together: two transactions, in arrival order,
    so the number ends opted out; the other numbers go with the first of them."""
    receive(engine, sms(number(0), "JOIN"), program)
    grouped = GroupCommit(lock_timeout_ms=HOLD_MS)
    blocker = _held(engine, number(0))
    texts = [sms(number(0), "HELP"), sms(number(7), "JOIN"), sms(number(7), "STOP"),
             sms(number(8), "JOIN")]  # fmt: skip
    threads, out = _in_threads([lambda t=t: grouped.receive(engine, t, program) for t in texts])
    threads[0].start()
    wait_for(lambda: _backends_waiting_on_a_lock(engine) == 1, interval=0.01)
    for i, thread in enumerate(threads[1:], start=1):
        thread.start()
        wait_for(lambda i=i: len(grouped._queue) == i, interval=0.01)
    blocker.rollback()
    blocker.close()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(isinstance(r, Exception) for r in out), out
    assert [r.intent.value for r in out] == ["help", "opt_in", "opt_out", "opt_in"]
    assert statuses(engine)[number(7)] == "opted_out"
    assert statuses(engine)[number(8)] == "subscribed"
    # The first JOIN; HELP alone; JOIN + JOIN from the two numbers; then the STOP.
    assert transactions(engine) == 4


def test_a_group_that_fails_stores_each_text_alone(engine, program):
    """A text that cannot be stored queued with others: the group fails, each text is
    received alone; that one alone fails, the others are stored once each, and a Twilio
    retry among them is answered with its stored reply."""
    receive(engine, sms(number(0), "JOIN"), program)
    original = sms(number(5), "JOIN")
    first_reply = receive(engine, original, program).reply
    grouped = GroupCommit(lock_timeout_ms=HOLD_MS)
    blocker = _held(engine, number(0))
    retry = sms(number(5), "JOIN", sid=original.message_sid)
    texts = [sms(number(0), "HELP"), sms(number(6), "JOIN"), retry, sms(number(8), "JO\x00IN"),
             sms(number(7), "SIGN")]  # fmt: skip
    threads, out = _in_threads([lambda t=t: grouped.receive(engine, t, program) for t in texts])
    threads[0].start()
    wait_for(lambda: _backends_waiting_on_a_lock(engine) == 1, interval=0.01)
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: len(grouped._queue) == 4, interval=0.01)
    blocker.rollback()
    blocker.close()
    for thread in threads:
        thread.join(timeout=20)
    assert isinstance(out[3], Exception)
    assert not any(isinstance(r, Exception) for r in [*out[:3], out[4]]), out
    assert out[2].duplicate and out[2].reply == first_reply
    assert not out[1].duplicate and not out[4].duplicate
    rows = stored(engine)
    assert len(rows) == 5  # two JOINs before, HELP, and the two new texts once each
    assert {texts[1].message_sid, texts[4].message_sid} <= rows.keys()
    assert transactions(engine) == 5  # nothing of the failed group; each alone after
    assert not grouped._running and not grouped._queue and not grouped._alone


def test_a_broken_database_fails_every_text_of_the_group_and_hangs_none(program):
    """Every thread gets the error; nothing waits forever; the next text leads again."""
    broken = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none")
    grouped = GroupCommit()
    threads, out = _in_threads(
        [lambda i=i: grouped.receive(broken, sms(number(i), "JOIN"), program) for i in range(6)]
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(not t.is_alive() for t in threads)
    assert all(isinstance(r, Exception) for r in out), out
    assert not grouped._running and not grouped._queue
    broken.dispose()


def test_the_web_app_groups_texts_on_postgresql_unless_turned_off(pg_db, sqlite_url):
    from sms_service.web.app import create_app

    apps = [
        create_app(make_settings(pg_db)),
        create_app(make_settings(pg_db, inbound_group_commit=False)),
        create_app(make_settings(sqlite_url)),
    ]
    try:
        assert ["sms_group_commit" in app.extensions for app in apps] == [True, False, False]
    finally:
        for app in apps:
            app.extensions["sms_engine"].dispose()


def test_a_row_held_elsewhere_holds_up_only_its_own_numbers_text(engine, program):
    """A group waiting on a row another transaction holds (an import, a staff action) gives
    up after the lock timeout: that number's text then waits alone, in its own thread, and
    the texts from other numbers are stored meanwhile."""
    receive(engine, sms(number(0), "JOIN"), program)
    grouped = GroupCommit()  # the default lock timeout
    blocker = _held(engine, number(0))
    held = sms(number(0), "STOP")
    others = [sms(number(i), "JOIN") for i in range(1, 6)]
    threads, out = _in_threads(
        [lambda t=t: grouped.receive(engine, t, program) for t in [held, *others]]
    )
    try:
        threads[0].start()
        wait_for(lambda: _backends_waiting_on_a_lock(engine) == 1, interval=0.01)
        for thread in threads[1:]:
            thread.start()
        deadline = time.monotonic() + 5  # far less than the blocker is held
        for thread in threads[1:]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads[1:])
        assert [r.intent.value for r in out[1:]] == ["opt_in"] * len(others)
        assert threads[0].is_alive() and out[0] is None  # still waiting for the row
        assert statuses(engine)[number(0)] == "subscribed"
    finally:
        blocker.rollback()
        blocker.close()
    threads[0].join(timeout=20)
    assert out[0].intent.value == "opt_out"
    assert statuses(engine)[number(0)] == "opted_out"
    assert not grouped._running and not grouped._queue


def test_a_numbers_next_text_waits_while_its_earlier_one_is_received_alone(engine, program):
    """STOP then START from one number: the STOP's group gives up on a held row and the STOP
    is received alone, waiting for the row; the START stays queued (not in a group that
    could overtake it) while a text from another number is stored; then both in order."""
    x = number(1)
    receive(engine, sms(x, "JOIN"), program)
    grouped = GroupCommit()  # the default lock timeout
    blocker = _held(engine, x)
    stop, start, other = sms(x, "STOP"), sms(x, "START"), sms(number(2), "JOIN")
    threads, out = _in_threads(
        [lambda t=t: grouped.receive(engine, t, program) for t in [stop, start, other]]
    )
    try:
        threads[0].start()
        wait_for(lambda: _backends_waiting_on_a_lock(engine) == 1, interval=0.01)
        time.sleep(0.2)  # the group's lock timeout passes: STOP now waits alone
        wait_for(lambda: _backends_waiting_on_a_lock(engine) == 1, interval=0.01)
        threads[1].start()
        wait_for(lambda: len(grouped._queue) == 1, interval=0.01)
        threads[2].start()
        threads[2].join(timeout=5)
        assert out[2] is not None and out[2].intent.value == "opt_in"  # not held up
        time.sleep(0.2)  # time for START to overtake, if it could
        assert [w.sms.message_sid for w in grouped._queue] == [start.message_sid]
        assert _backends_waiting_on_a_lock(engine) == 1
    finally:
        blocker.rollback()
        blocker.close()
    for thread in threads[:2]:
        thread.join(timeout=20)
    assert [out[0].intent.value, out[1].intent.value] == ["opt_out", "opt_in"]
    assert statuses(engine)[x] == "subscribed"
    with engine.connect() as conn:
        order = conn.execute(
            text("SELECT message_sid FROM inbound_messages WHERE from_number = :p ORDER BY id"),
            {"p": x},
        ).scalars().all()  # fmt: skip
    assert order[1:] == [stop.message_sid, start.message_sid]
    assert not grouped._running and not grouped._queue and not grouped._alone


class _Interrupt(BaseException):
    """What no ``except Exception`` catches (as a KeyboardInterrupt in a thread would be)."""


def test_a_group_interrupted_leaves_nothing_held(engine, program):
    """An interruption out of a group (not an Exception) reaches its leader's thread, and
    leaves no number held and no lead lost: the next texts, from the same number and
    another, are stored."""

    class Interrupted(GroupCommit):
        armed = True

        def _store(self, group):
            if self.armed:
                self.armed = False
                raise _Interrupt
            super()._store(group)

    grouped = Interrupted()
    with pytest.raises(_Interrupt):
        grouped.receive(engine, sms(number(1), "JOIN"), program)
    assert not grouped._running and not grouped._queue and not grouped._alone
    assert grouped.receive(engine, sms(number(1), "JOIN"), program).intent.value == "opt_in"
    assert grouped.receive(engine, sms(number(2), "JOIN"), program).intent.value == "opt_in"


def test_a_leader_interrupted_while_its_number_is_received_alone_passes_the_lead_on(
    engine, program
):
    """The leader's own text waits for an earlier one from its number (received alone); an
    interruption in the group it runs meanwhile still hands the lead on."""
    x = number(1)
    receive(engine, sms(x, "JOIN"), program)
    grouped = GroupCommit()
    blocker = _held(engine, x)
    first, second, other = sms(x, "HELP"), sms(x, "STOP"), sms(number(2), "JOIN")
    threads, out = _in_threads(
        [lambda t=t: grouped.receive(engine, t, program) for t in [first, second]]
    )
    try:
        threads[0].start()
        wait_for(lambda: _backends_waiting_on_a_lock(engine) == 1, interval=0.01)
        time.sleep(0.2)  # the group's lock timeout passes: HELP now waits alone
        threads[1].start()  # STOP leads, and may take nothing yet
        wait_for(lambda: len(grouped._queue) == 1, interval=0.01)

        def interrupted(group):
            raise _Interrupt

        grouped._store = interrupted  # the next group STOP runs is interrupted
        late, late_out = _in_threads([lambda: grouped.receive(engine, other, program)])
        late[0].start()
        threads[1].join(timeout=5)
        late[0].join(timeout=5)
        assert isinstance(out[1], _Interrupt)  # STOP's thread: the error, its text unstored
        assert late_out[0].intent.value == "opt_in"  # received alone after the interruption
    finally:
        blocker.rollback()
        blocker.close()
    threads[0].join(timeout=20)
    assert out[0].intent.value == "help"
    assert second.message_sid not in stored(engine)
    assert not grouped._running and not grouped._queue and not grouped._alone
