"""The web process's gthread worker gives its socket up only when it stops for good."""

from __future__ import annotations

import logging
import selectors

import pytest
from gunicorn.config import Config
from gunicorn.sock import TCPSocket

from sms_service.web.gunicorn_worker import ThreadWorker


@pytest.fixture
def worker():
    cfg = Config()
    cfg.set("reuse_port", True)
    log = logging.getLogger("test.gunicorn")
    listener = TCPSocket(("127.0.0.1", 0), cfg, log)
    made = ThreadWorker(0, 0, [listener], None, 30, cfg, log)
    made.poller = selectors.DefaultSelector()
    made.alive = True
    yield made
    made.poller.close()
    made.tmp.close()
    listener.close()


def test_a_full_worker_pauses_accepting_and_keeps_its_socket(worker):
    worker.set_accept_enabled(True)
    worker.set_accept_enabled(False)  # gthread's worker_connections reached
    [listener] = worker.sockets
    assert listener.sock is not None and listener.sock.fileno() >= 0
    worker.set_accept_enabled(True)  # a connection closed: accepting again
    assert listener.sock in {key.fileobj.sock for key in worker.poller.get_map().values()}


def test_a_stopping_worker_closes_its_socket(worker):
    worker.set_accept_enabled(True)
    worker.alive = False  # SIGTERM: a graceful stop begins
    worker.set_accept_enabled(False)
    [listener] = worker.sockets
    assert listener.sock is None
    assert not worker.poller.get_map()


def test_a_worker_stopping_while_full_closes_its_socket_too(worker):
    worker.set_accept_enabled(True)
    worker.set_accept_enabled(False)  # full: gthread has already stopped accepting
    worker.alive = False
    worker.set_accept_enabled(False)
    assert worker.sockets[0].sock is None


def test_on_a_shared_socket_a_stopping_worker_leaves_it_alone(worker):
    worker.cfg.set("reuse_port", False)
    worker.set_accept_enabled(True)
    worker.alive = False
    worker.set_accept_enabled(False)
    assert worker.sockets[0].sock is not None
