"""The web process's gthread worker: on a socket of its own, it gives it up only when it
stops for good; on a shared one, it takes new connections by least connections."""

from __future__ import annotations

import logging
import os
import selectors
import socket
import subprocess
import sys

import pytest
from gunicorn.config import Config
from gunicorn.sock import TCPSocket

from sms_service.web import gunicorn_worker
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


# Least connections on the shared socket (gunicorn_worker.ConnectionTable).


@pytest.fixture
def table(monkeypatch):
    made = gunicorn_worker.ConnectionTable(4)
    monkeypatch.setattr(gunicorn_worker, "TABLE", made)
    return made


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_table_gives_each_worker_its_slot_and_reads_the_others(table):
    me, other = table.claim(os.getpid()), table.claim(os.getppid())
    assert me != other
    assert table.fewest_elsewhere(me) == 0
    table.publish(other, 7)
    table.publish(me, 2)
    assert table.fewest_elsewhere(me) == 7
    assert table.fewest_elsewhere(other) == 2
    table.release(os.getppid())
    assert table.fewest_elsewhere(me) is None  # nobody else: this worker accepts


def test_a_worker_whose_loop_stopped_turning_is_left_out(table, monkeypatch):
    me, other = table.claim(os.getpid()), table.claim(os.getppid())
    table.publish(other, 0)
    now = gunicorn_worker._now_ms()
    monkeypatch.setattr(gunicorn_worker, "_now_ms", lambda: now + gunicorn_worker.STALE_MS + 1)
    assert table.fewest_elsewhere(me) is None


def test_a_slot_whose_process_has_gone_is_taken_again(table):
    for _ in range(table.slots):
        table.claim(a_dead_pid())
    assert table.claim(os.getpid()) is not None
    full = gunicorn_worker.ConnectionTable(1)
    full.claim(os.getppid())
    assert full.claim(os.getpid()) is None  # every slot held: plain gthread


@pytest.fixture
def shared(worker, table):
    """The worker on a shared socket, in the table beside one other live worker."""
    worker.cfg.set("reuse_port", False)
    worker.slot = table.claim(os.getpid())
    other = table.claim(os.getppid())
    return worker, other


def registered(worker) -> bool:
    return bool(worker.poller.get_map())


def test_a_worker_holding_more_than_another_does_not_accept(shared, table):
    worker, other = shared
    worker.nr_conns = 5
    table.publish(other, 4)
    worker.set_accept_enabled(True)
    assert not worker._accepting and not registered(worker)
    table.publish(other, 5)  # as many: both may take the next one
    worker.set_accept_enabled(True)
    assert worker._accepting and registered(worker)


def test_a_connection_waiting_is_left_to_the_worker_with_fewer(shared, table):
    worker, other = shared
    taken = []
    worker.enqueue_req = taken.append  # the connection, handed to no thread here
    worker.set_accept_enabled(True)
    worker.nr_conns = 3
    table.publish(other, 1)  # the other has fewer since this worker last looked
    [listener] = worker.sockets
    with socket.create_connection(listener.sock.getsockname()):
        worker.accept(listener)
        assert not taken and worker.nr_conns == 3  # left in the backlog
        assert not registered(worker)  # and the listener no longer wakes this worker
        table.publish(other, 3)
        worker.accept(listener)  # the loop enables it again first; here directly
        assert len(taken) == 1 and worker.nr_conns == 4
        taken[0].close()


def test_a_stopping_worker_leaves_the_table(shared, table):
    worker, other = shared
    table.publish(worker.slot, 0)
    assert table.fewest_elsewhere(other) == 0
    worker.alive = False
    worker.set_accept_enabled(False)
    assert worker.slot is None
    assert table.fewest_elsewhere(other) is None  # nobody waits for it


def test_a_held_back_worker_looks_again_soon(shared, table, monkeypatch):
    worker, other = shared
    seen = []
    monkeypatch.setattr(
        gunicorn_worker._GunicornThreadWorker,
        "wait_for_and_dispatch_events",
        lambda self, timeout: seen.append(timeout),
    )
    worker.wait_for_and_dispatch_events(1.0)
    worker.set_accept_enabled(True)
    worker.wait_for_and_dispatch_events(1.0)
    assert seen == [gunicorn_worker.HELD_BACK_POLL_S, gunicorn_worker.IDLE_POLL_S]
