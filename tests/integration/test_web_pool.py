"""The web app's PostgreSQL pool holds a connection for every request thread (WEB_THREADS):
past its size, each request would open (and close) a connection of its own."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event

from sms_service.web.app import create_app
from tests.factories import make_settings


def connections_opened(engine, threads: int, rounds: int) -> int:
    """Connections the pool opened while ``threads`` requests held one each at once,
    ``rounds`` times over."""
    opened = []
    event.listen(engine, "connect", lambda *_: opened.append(1))
    together = threading.Barrier(threads)

    def request() -> None:
        with engine.connect():
            together.wait(timeout=10)  # every thread holds its connection at once

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(rounds):
            list(pool.map(lambda _: request(), range(threads)))
    return len(opened)


def test_every_request_thread_keeps_its_connection(pg_db):
    engine = create_app(make_settings(pg_db, web_threads=8)).extensions["sms_engine"]
    try:
        assert engine.pool.size() == 8
        # Eight connections, opened once: none opened again round after round.
        assert connections_opened(engine, threads=8, rounds=5) == 8
    finally:
        engine.dispose()


def test_the_pool_keeps_sqlalchemys_default_for_fewer_threads(pg_db):
    engine = create_app(make_settings(pg_db, web_threads=2)).extensions["sms_engine"]
    try:
        assert engine.pool.size() == 5
    finally:
        engine.dispose()


def test_sqlite_keeps_its_own_pool(sqlite_url):
    engine = create_app(make_settings(sqlite_url, web_threads=8)).extensions["sms_engine"]
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()
