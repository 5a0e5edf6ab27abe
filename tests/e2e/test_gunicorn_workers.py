"""gunicorn.conf.py's workers for real. With ``WEB_REUSE_PORT=on``: a socket per worker, and a
stopping worker's socket closed at once, so no new connection waits on a worker on its way
out. On the shared socket (the default): new connections by least load, and no connection
held back by a worker that is stuck.

gunicorn runs with the repository's gunicorn.conf.py (as the Procfile runs it) and a tiny
app (``tests/gunicorn_app.py``) that names the worker answering.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sms_service.web import gunicorn_worker
from tests.factories import free_port, wait_for, wait_until_it_answers

ROOT = Path(__file__).resolve().parents[2]
SLOW_SECONDS = 4

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; SO_REUSEPORT")


def start_gunicorn(port: int, *, reuse_port: str) -> subprocess.Popen:
    """The repository's gunicorn.conf.py, 2 workers of 2 threads, serving the test app."""
    env = {
        **os.environ, "WEB_CONCURRENCY": "2", "WEB_THREADS": "2", "WEB_ACCESS_LOG": "off",
        "WEB_REUSE_PORT": reuse_port, "SLOW_SECONDS": str(SLOW_SECONDS),
    }  # fmt: skip
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    return subprocess.Popen(
        [gunicorn, "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "tests.gunicorn_app:app"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def gunicorn_port():
    port = free_port()
    proc = start_gunicorn(port, reuse_port="on")
    try:
        wait_for(lambda: len(listeners(port)) == 2, timeout=40, what="two listening sockets")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on 127.0.0.1:``port`` (``/proc/net/tcp``, state 0A)."""
    local = f"0100007F:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if fields[1] == local and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        found = re.fullmatch(r"socket:\[(\d+)\]", target)
        if found:
            inodes.add(found.group(1))
    return inodes


def listeners(port: int) -> dict[int, set[str]]:
    """The processes holding a socket listening on ``port``: pid → those sockets' inodes."""
    wanted = listening_inodes(port)
    held = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            mine = socket_inodes(int(pid)) & wanted
        except OSError:
            continue
        if mine:
            held[int(pid)] = mine
    return held


def get_pid(connection: http.client.HTTPConnection, path: str = "/pid") -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 200
    return int(response.read())


def fresh_pid(port: int) -> int:
    """The worker answering a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        return get_pid(connection)
    finally:
        connection.close()


def test_each_worker_listens_on_a_socket_of_its_own(gunicorn_port):
    held = listeners(gunicorn_port)
    assert len(held) == 2
    [first, second] = held.values()
    assert first.isdisjoint(second)
    # The kernel spreads new connections over both.
    wait_for(lambda: {fresh_pid(gunicorn_port) for _ in range(20)} == set(held), timeout=20,
             interval=0, what="both workers answering")  # fmt: skip


def test_a_stopping_worker_takes_no_new_connection(gunicorn_port):
    port = gunicorn_port
    [victim, survivor] = sorted(listeners(port))
    # A keep-alive connection held by the victim, then a request in flight on it.
    held = None
    for _ in range(200):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SLOW_SECONDS + 10)
        if get_pid(connection) == victim:
            held = connection
            break
        connection.close()
    assert held is not None, "no connection reached the worker to stop"
    with contextlib.closing(held), ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(get_pid, held, "/slow")
        time.sleep(0.5)  # the slow request has reached the worker
        os.kill(victim, signal.SIGTERM)
        # It gives up its socket at once, long before its request is done...
        wait_for(lambda: victim not in listeners(port), timeout=2, interval=0.02,
                 what="the stopping worker closing its socket")  # fmt: skip
        assert not in_flight.done()
        # ...so every new connection meanwhile is answered by another worker, promptly.
        started = time.monotonic()
        answered = [fresh_pid(port) for _ in range(40)]
        assert victim not in answered
        assert time.monotonic() - started < SLOW_SECONDS / 2
        # The request it had is still answered (a graceful stop).
        assert in_flight.result(timeout=SLOW_SECONDS + 10) == victim
    assert survivor in listeners(port)


# On the shared socket (the default): least load.


@pytest.fixture
def shared_port():
    port = free_port()
    proc = start_gunicorn(port, reuse_port="off")
    try:
        wait_for(lambda: len(workers_of(proc.pid)) == 2, timeout=40, what="two workers")
        wait_until_it_answers(f"http://127.0.0.1:{port}/pid", process=proc)
        yield port, proc.pid
    finally:
        for pid in workers_of(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=30)


def workers_of(arbiter: int) -> list[int]:
    with open(f"/proc/{arbiter}/task/{arbiter}/children") as children:
        return [int(pid) for pid in children.read().split()]


def test_connections_opened_one_by_one_alternate_between_the_workers(shared_port):
    """With nothing in hand, each new connection goes to the worker holding fewer: twelve
    kept open, six each (plain gthread gives them to whichever worker wakes first)."""
    port, arbiter = shared_port
    held = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(12)]
    try:
        answering = []
        for connection in held:
            answering.append(get_pid(connection))
            time.sleep(0.05)  # the worker has finished the request and says so

        assert Counter(answering) == dict.fromkeys(workers_of(arbiter), 6)
    finally:
        for connection in held:
            connection.close()


def test_a_stuck_worker_holding_fewer_holds_no_connection_back(shared_port):
    """A worker whose loop stops turning (here SIGSTOP; a request holding the GIL, no core
    free) while it holds the fewest connections: the other takes each new connection once
    it has waited OVERDUE_S, long before the stuck one counts as gone (STALE_MS)."""
    port, arbiter = shared_port
    held = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(8)]
    try:
        by_worker = {}
        for connection in held:
            by_worker.setdefault(get_pid(connection), []).append(connection)
        [stuck, other] = sorted(by_worker, key=lambda pid: len(by_worker[pid]))
        for connection in by_worker[stuck]:
            connection.close()  # the stuck one now holds fewer
        time.sleep(0.3)  # its loop has seen them close
        os.kill(stuck, signal.SIGSTOP)
        waits = []
        for _ in range(5):
            started = time.monotonic()
            assert fresh_pid(port) == other
            waits.append(time.monotonic() - started)
        assert max(waits) < gunicorn_worker.STALE_MS / 1000 / 2, waits
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stuck, signal.SIGCONT)
        for connection in held:
            connection.close()
