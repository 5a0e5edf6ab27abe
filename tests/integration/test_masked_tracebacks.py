"""Phone numbers are masked in tracebacks too: a failed request's logged traceback, an
exception's SQL parameters, an uncaught exception in a command (PostgreSQL and SQLite)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from sms_service import create_app
from sms_service.db import make_engine
from sms_service.models import Subscriber
from tests.factories import make_settings

PHONE = "+12025550123"
MASKED = "+1********23"


def insert_twice(engine) -> None:
    """A real unique violation on subscribers.phone: ``Key (phone)=(+1…) already exists``."""
    with Session(engine) as s:
        s.add(Subscriber(phone=PHONE))
        s.commit()
    with Session(engine) as s:
        s.add(Subscriber(phone=PHONE))
        s.commit()


def test_sql_parameters_are_hidden_from_exceptions(database_url):
    engine = make_engine(database_url)
    try:
        with pytest.raises(IntegrityError) as caught:
            insert_twice(engine)
    finally:
        engine.dispose()
    text = str(caught.value)
    assert "SQL parameters hidden" in text
    assert "'+12025550123'" not in text  # the parameter list would quote it


def test_a_failed_request_logs_its_traceback_masked(database_url, caplog):
    app = create_app(make_settings(database_url))
    engine = app.extensions["sms_engine"]

    @app.get("/boom")
    def boom() -> str:
        insert_twice(engine)
        return "unreachable"

    try:
        with caplog.at_level(logging.ERROR):
            assert app.test_client().get("/boom").status_code == 500
    finally:
        engine.dispose()
    [record] = [r for r in caplog.records if r.exc_info]
    logged = caplog.text
    assert "IntegrityError" in logged and "Traceback" in logged
    assert "SQL parameters hidden" in logged
    if "postgresql" in database_url:  # PostgreSQL's DETAIL names the duplicate value
        assert f"Key (phone)=({MASKED}) already exists" in logged
    assert PHONE not in logged
    assert PHONE not in (record.exc_text or "")


def test_an_uncaught_exception_prints_a_masked_traceback():
    script = (
        "from sms_service import log_masking\n"
        "log_masking.install()\n"
        "raise RuntimeError('Key (phone)=(+12025550123) already exists')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "Key (phone)=(+1********23)" in result.stderr
    assert PHONE not in result.stderr


def test_an_uncaught_exception_in_a_thread_is_masked():
    script = (
        "import threading\n"
        "from sms_service import log_masking\n"
        "log_masking.install()\n"
        "def work():\n"
        "    raise ValueError('texting +12025550123 failed')\n"
        "t = threading.Thread(target=work, name='sender'); t.start(); t.join()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "Exception in thread sender" in result.stderr and "+1********23" in result.stderr
    assert PHONE not in result.stderr
