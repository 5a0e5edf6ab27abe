"""run_transaction on PostgreSQL and SQLite: a transaction that loses a race runs again
from the start, a bounded number of times; an error in the statement itself is not retried."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from sms_service.db import TRANSACTION_ATTEMPTS, run_transaction
from sms_service.models import Subscriber


def phones(engine) -> list[str]:
    with Session(engine) as s:
        return list(s.execute(select(Subscriber.phone).order_by(Subscriber.id)).scalars())


def test_a_unique_conflict_is_rolled_back_and_run_again(engine):
    with Session(engine) as s:
        s.add(Subscriber(phone="+12025550100"))
        s.commit()
    calls = []

    def work(session: Session) -> int:
        calls.append(1)
        session.add(Subscriber(phone="+12025550101"))
        session.flush()
        if len(calls) == 1:  # as if a concurrent transaction had created this row first
            session.add(Subscriber(phone="+12025550100"))
            session.flush()
        return len(calls)

    assert run_transaction(engine, work) == 2
    # The first attempt's row was rolled back: the second attempt's is the only one.
    assert phones(engine) == ["+12025550100", "+12025550101"]


def test_retries_are_bounded(engine):
    with Session(engine) as s:
        s.add(Subscriber(phone="+12025550100"))
        s.commit()
    calls = []

    def work(session: Session) -> None:
        calls.append(1)
        session.add(Subscriber(phone="+12025550100"))
        session.flush()

    with pytest.raises(IntegrityError):
        run_transaction(engine, work)
    assert len(calls) == TRANSACTION_ATTEMPTS


def test_an_error_in_the_statement_is_not_retried(engine):
    calls = []

    def work(session: Session) -> None:
        calls.append(1)
        session.execute(text("INSERT INTO subscribers (phone) VALUES (NULL)"))

    with pytest.raises(IntegrityError):
        run_transaction(engine, work)
    assert len(calls) == 1
