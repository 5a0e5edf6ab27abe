"""What the broadcast benchmarks share: a private database, a Redis db, child processes.

Every resource is registered on an :class:`contextlib.ExitStack` the moment it exists, so
Ctrl-C, SIGTERM or an exception still drops the database, empties the Redis db and stops
the processes the benchmark started (and only those: each child runs in its own process
group, which is signalled by its id).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import redis
from sqlalchemy import text

from sms_service.db import migrate

PG_ADMIN_URL = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BIN = Path(sys.executable).parent


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks and exit stacks still run."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def private_database(prefix: str = "bench") -> contextlib.AbstractContextManager[str]:
    """A new PostgreSQL database migrated to head; its URL. Dropped on the way out."""
    return migrate.private_database(PG_ADMIN_URL, prefix)


@contextlib.contextmanager
def private_redis_db(url: str) -> Iterator[redis.Redis]:
    """A Redis db the benchmark may empty: refused if it holds keys, flushed afterwards."""
    connection = redis.Redis.from_url(url)
    if connection.dbsize():
        raise SystemExit(
            f"{url} holds {connection.dbsize()} keys; give an empty db with --redis-url"
        )
    try:
        yield connection
    finally:
        connection.flushdb()
        connection.close()


def seed_subscribers(database_url: str, count: int, *, opted_out: int = 0) -> None:
    """``count`` subscribed numbers (+1 202 200-0000 upwards: valid, Washington DC, in no
    stricter state's quiet hours) and ``opted_out`` more, in one INSERT … SELECT each."""
    from sms_service.db import make_engine

    engine = make_engine(database_url)
    insert = text(
        "INSERT INTO subscribers (phone, status, opted_in_at, created_at, updated_at) "
        "SELECT '+1' || (2022000000 + g)::text, :status, now(), now(), now() "
        "FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g"
    )
    with engine.begin() as conn:
        conn.execute(insert, {"status": "subscribed", "first": 0, "last": count - 1})
        if opted_out:
            conn.execute(
                insert, {"status": "opted_out", "first": count, "last": count + opted_out - 1}
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE subscribers"))
    engine.dispose()


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, timeout: float = 5.0) -> dict:
    """GET ``url`` and decode the JSON answer."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def spawn(stack: contextlib.ExitStack, command: list[str], **kwargs) -> subprocess.Popen:
    """Start ``command`` in its own process group; the stack stops the group on exit."""
    process = subprocess.Popen(command, start_new_session=True, **kwargs)
    stack.callback(stop_group, process)
    return process


def stop_group(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the child's process group (the child and anything it forked), then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers the leader left behind
    process.wait()


def start_simulator(
    stack: contextlib.ExitStack,
    *,
    latency_ms: float,
    jitter_ms: float,
    max_concurrency: int,
    account_sid: str,
    auth_token: str,
) -> tuple[subprocess.Popen, str]:
    """The carrier simulator in its own process (callbacks off), once it answers; its URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "sms_service.cli", "carrier-sim",
        "--port", str(port),
        "--latency-ms", str(latency_ms),
        "--jitter-ms", str(jitter_ms),
        "--max-concurrency", str(max_concurrency),
        "--callbacks", "none",
        "--account-sid", account_sid,
        "--auth-token", auth_token,
        "--max-messages", "2000000",
        "--log-level", "WARNING",
    ]  # fmt: skip
    process = spawn(stack, command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http_json(url + "/sim/health")
            return process, url
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the simulator exited with {process.returncode}") from None
            time.sleep(0.1)
    raise SystemExit("the simulator did not start within 30 s")


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """CPU time (user + system) of ``pid``, plus its reaped children's when ``children``.

    An RQ worker waits for each work horse it forks, so the horses' time lands in the
    worker's ``cutime``/``cstime`` once they exit.
    """
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    ticks = utime + stime + (cutime + cstime if children else 0)
    return ticks / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid``, its reaped children, and its live children (a work horse
    still running)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as kids:
                for child in kids.read().split():
                    with contextlib.suppress(OSError):
                        total += tree_cpu_seconds(int(child))
    return total


def machine_ticks() -> list[int]:
    """The machine's time (all cores) by kind, in clock ticks: user, nice, system, idle,
    iowait, irq, softirq, steal (/proc/stat's first line; guest time is inside user)."""
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:9]]


def machine_cpu_seconds() -> float:
    """CPU time the whole machine's processes and kernel used (all cores), from /proc/stat.

    Steal (time a virtual CPU was ready to run while the host ran something else) is left
    out: it is time this machine did not get, not work it did (see :func:`steal_share`).
    """
    user, nice, system, _idle, _iowait, irq, softirq, _steal = machine_ticks()
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def steal_share(before: list[int], after: list[int]) -> float:
    """The share of the machine's time between two readings that the host took (steal): on
    a shared virtual machine, a run with much steal got fewer cores than it asked for."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return spent[7] / max(sum(spent), 1)
