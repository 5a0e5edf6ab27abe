"""What a worker process needs, built from the environment once: settings, engine, client.

Workers import no Flask. The engine is cached per process id, because RQ's default
worker forks a work horse per job and a pooled connection must not cross a fork. The
Twilio client is cached per thread: twilio 9.13 keeps the last response on the client.
"""

from __future__ import annotations

import os
import threading
from functools import cache

from sqlalchemy.engine import Engine
from twilio.rest import Client

from config import Settings
from sms_service.carrier.client import close_twilio_client, make_twilio_client
from sms_service.db import make_engine

_engines: dict[int, Engine] = {}
_engines_lock = threading.Lock()
_local = threading.local()


@cache
def settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()


def engine() -> Engine:
    """This process's database engine (a forked child builds its own)."""
    pid = os.getpid()
    with _engines_lock:
        if pid not in _engines:
            _engines[pid] = make_engine(settings().database_url)
        return _engines[pid]


def twilio_client() -> Client:
    """This thread's Twilio client, pointed at TWILIO_API_BASE_URL when set."""
    client = getattr(_local, "client", None)
    if client is None:
        client = make_twilio_client(settings())
        _local.client = client
    return client


def reset() -> None:
    """Forget everything cached (tests change the environment between runs)."""
    settings.cache_clear()
    with _engines_lock:
        mine = _engines.pop(os.getpid(), None)
        _engines.clear()
    if mine is not None:
        mine.dispose()
    client = getattr(_local, "client", None)
    if client is not None:
        close_twilio_client(client)
        _local.client = None
