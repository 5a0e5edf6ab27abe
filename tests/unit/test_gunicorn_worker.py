"""The web process's gthread worker: on a socket of its own, it gives it up only when it
stops for good; on a shared one, it takes new connections by least load."""

from __future__ import annotations

import logging
import os
import select
import selectors
import socket
import time

import pytest
from gunicorn.config import Config
from gunicorn.sock import TCPSocket

from sms_service.web import gunicorn_worker
from sms_service.web.gunicorn_worker import ThreadWorker
from tests.factories import wait_for


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


# Least load on the shared socket (gunicorn_worker.LoadTable).


@pytest.fixture
def table(monkeypatch):
    made = gunicorn_worker.LoadTable(4)
    monkeypatch.setattr(gunicorn_worker, "TABLE", made)
    return made


def test_the_arbiter_hands_out_slots_and_takes_them_back(table):
    slots = [table.assign() for _ in range(4)]
    assert sorted(slots) == [0, 1, 2, 3]
    assert table.assign() is None  # all taken: that worker is plain gthread
    table.free(2)
    assert table.assign() == 2


def test_a_worker_reads_the_least_load_of_the_others(table):
    me, other, third = table.assign(), table.assign(), table.assign()
    table.join(me, 101)
    assert table.least_elsewhere(me) is None  # the others have not started
    table.join(other, 102)
    table.join(third, 103)
    table.publish(other, 3, 5)
    table.publish(third, 2, 9)
    assert table.least_elsewhere(me) == (2, 9)  # requests in hand first
    table.publish(third, 3, 4)
    assert table.least_elsewhere(me) == (3, 4)  # then open connections
    table.leave(third)
    assert table.least_elsewhere(me) == (3, 5)
    table.free(other)
    assert table.least_elsewhere(me) is None


def test_a_worker_whose_loop_stopped_turning_is_left_out(table, monkeypatch):
    me, other = table.assign(), table.assign()
    table.join(other, 102)
    now = gunicorn_worker._now_ms()
    monkeypatch.setattr(gunicorn_worker, "_now_ms", lambda: now + gunicorn_worker.STALE_MS + 1)
    assert table.least_elsewhere(me) is None


@pytest.fixture
def shared(worker, table):
    """The worker on a shared socket, in the table beside one other live worker."""
    worker.cfg.set("reuse_port", False)
    worker.slot = table.assign()
    table.join(worker.slot, os.getpid())
    other = table.assign()
    table.join(other, os.getppid())
    return worker, other


def registered(worker) -> bool:
    return bool(worker.poller.get_map())


def test_a_worker_with_more_in_hand_than_another_does_not_accept(shared, table):
    worker, other = shared
    worker.in_hand, worker.nr_conns = 2, 2
    table.publish(other, 1, 6)  # more connections, fewer requests in hand
    worker.set_accept_enabled(True)
    assert not worker._accepting and not registered(worker)
    table.publish(other, 2, 2)  # as much: both may take the next one
    worker.set_accept_enabled(True)
    assert worker._accepting and registered(worker)


def test_a_connection_is_left_to_the_least_loaded_worker_until_it_is_overdue(
    shared, table, monkeypatch
):
    worker, other = shared
    taken = []
    monkeypatch.setattr(worker, "enqueue_req", taken.append)  # handed to no thread here
    worker.set_accept_enabled(True)
    worker.nr_conns = 3
    table.publish(other, 0, 1)  # the other has less since this worker last looked
    [listener] = worker.sockets
    address = listener.sock.getsockname()

    def waiting():
        return select.select([listener.sock], [], [], 0)[0]

    with socket.create_connection(address), socket.create_connection(address):
        wait_for(waiting, what="connections")
        clock = [time.monotonic()]
        monkeypatch.setattr(gunicorn_worker.time, "monotonic", lambda: clock[0])
        worker.accept(listener)
        assert not taken and worker.nr_conns == 3  # left in the backlog
        assert not registered(worker)  # and the listener no longer wakes this worker
        clock[0] += gunicorn_worker.OVERDUE_S / 2
        worker.set_accept_enabled(True)  # gthread's loop, a turn later
        assert not registered(worker)
        clock[0] += gunicorn_worker.OVERDUE_S  # the other worker has not taken them
        worker.set_accept_enabled(True)
        assert registered(worker)
        worker.accept(listener)  # gthread calls it while a connection waits
        worker.accept(listener)
        assert len(taken) == 2 and worker.nr_conns == 5
        assert worker._waiting_since is None  # none waits: the next is not overdue
        with socket.create_connection(address):
            wait_for(waiting, what="another connection")
            worker.accept(listener)
            assert len(taken) == 2 and not registered(worker)  # left to the other again
        for conn in taken:
            conn.close()


def test_a_wait_seen_once_does_not_make_a_later_connection_overdue(shared, table):
    worker, other = shared
    worker.nr_conns = 3
    table.publish(other, 0, 1)
    worker._waiting_since = 0.0  # long ago, while held back
    table.publish(other, 0, 5)  # then this worker had the least
    assert worker.may_accept() and worker._waiting_since is None


def test_a_stopping_worker_leaves_the_table(shared, table):
    worker, other = shared
    table.publish(worker.slot, 0, 0)
    assert table.least_elsewhere(other) == (0, 0)
    worker.alive = False
    worker.set_accept_enabled(False)
    assert worker.slot is None
    assert table.least_elsewhere(other) is None  # nobody waits for it


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
