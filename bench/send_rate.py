"""How fast a broadcast goes out, and what it costs in CPU, against a sequential client.

    python bench/send_rate.py [--recipients 100000] [--workers 2] [--baseline-seconds 10]

Everything runs as in production, on loopback: the carrier simulator in its own process
(100 ms + uniform 0..100 ms latency, i.e. 100-200 ms, 150 ms on average; status callbacks
off; up to 1,000 requests in flight), real ``rq worker`` processes (RQ's forking worker
with the broadcast sweeper, ``workers.broadcast_worker.BroadcastWorker``), a private
PostgreSQL database and Redis db 8. The workers run with ``SENDER_MPS=0`` (no throttle),
``QUIET_HOURS=off`` and a frequency cap far above one text.

1. Baseline: a plain sequential loop of the official twilio client
   (``client.messages.create``, its stock HTTP client, only the host swapped for the
   simulator's) for ``--baseline-seconds``; msgs/s and CPU-ms per message of that loop.
2. Service: ``--recipients`` subscribers are seeded, a broadcast to ``all`` is created and
   scheduled and its start job enqueued, as ``sms-service broadcast create`` does. The
   clock runs from the enqueue until the run is closed (planning included). CPU counts
   the worker processes only: each worker and every work horse it forked (from /proc;
   the simulator, PostgreSQL, Redis and this harness are reported apart, for context).

Prints both, the ratios, and whether the targets hold (>= 500 msgs/s and <= 3 CPU-ms per
message); exits 1 if not. Checks that every recipient got exactly one accepted send.
The database, the Redis db and every process started are cleaned up, also on Ctrl-C.
``BROADCAST_*`` tuning variables set in the environment are passed to the workers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis
from rq import Queue, Worker
from sqlalchemy import text
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from sms_service.broadcasts import create_broadcast, schedule_broadcast
from sms_service.carrier.client import rewrite_url
from sms_service.db import make_engine, session_scope
from sms_service.domain.audience import AudienceSpec
from workers import QUEUE_BROADCASTS, QUEUE_DEFAULT
from workers.broadcast import enqueue_start

try:  # bench/ is not a package: run as a script, or imported by path
    from _common import (
        BIN,
        cpu_seconds,
        exit_on_sigterm,
        http_json,
        machine_cpu_seconds,
        private_database,
        private_redis_db,
        seed_subscribers,
        spawn,
        start_simulator,
        tree_cpu_seconds,
    )
except ImportError:  # pragma: no cover
    from bench._common import (
        BIN,
        cpu_seconds,
        exit_on_sigterm,
        http_json,
        machine_cpu_seconds,
        private_database,
        private_redis_db,
        seed_subscribers,
        spawn,
        start_simulator,
        tree_cpu_seconds,
    )

TARGET_RATE = 500.0  # messages per second
TARGET_CPU_MS = 3.0  # worker CPU per message
ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "bench-send-rate-token"
BODY = "Rally at the courthouse, 6pm today. Bring a friend! Reply STOP to end."
WORKER_CLASS = "workers.broadcast_worker.BroadcastWorker"


@dataclass(frozen=True)
class Figures:
    """Messages, wall seconds and CPU seconds of one measured phase."""

    messages: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per message."""
        return 1000 * self.cpu_seconds / self.messages if self.messages else float("inf")


class ToSimulator(TwilioHttpClient):
    """The official client's own HTTP client, untuned, with Twilio's host swapped for the
    simulator's: the baseline does not move when the service's client is tuned."""

    def __init__(self, sim_url: str) -> None:
        super().__init__()
        self.sim_url = sim_url

    def request(self, method: str, url: str, *args, **kwargs) -> Response:
        """Send to the simulator, same path and query."""
        return super().request(method, rewrite_url(url, self.sim_url), *args, **kwargs)


def run_baseline(sim_url: str, seconds: float) -> Figures:
    """The official twilio client, one ``messages.create`` after another, for ``seconds``."""
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=ToSimulator(sim_url))
    client.messages.create(to="+12029999999", from_="21333", body=BODY)  # connect, warm up
    sent = 0
    cpu_started, started = time.process_time(), time.perf_counter()
    stop_at = started + seconds
    while time.perf_counter() < stop_at:
        client.messages.create(to=f"+1202{3000000 + sent}", from_="21333", body=BODY)
        sent += 1
    elapsed = time.perf_counter() - started
    figures = Figures(sent, elapsed, time.process_time() - cpu_started)
    client.http_client.session.close()
    return figures


def worker_environment(args: argparse.Namespace, database_url: str, sim_url: str) -> dict:
    """The workers' environment: this one's, with the service settings of the benchmark."""
    env = {k: v for k, v in os.environ.items() if k not in ("PUBLIC_BASE_URL",)}
    env.update(
        APP_ENV="development",
        DATABASE_URL=database_url,
        REDIS_URL=args.redis_url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_BASE_URL=sim_url,
        TWILIO_FROM="21333",
        SENDER_MPS="0",
        QUIET_HOURS="off",
        PROGRAM_MAX_MESSAGES_PER_30_DAYS="1000000",
    )
    env.pop("TWILIO_MESSAGING_SERVICE_SID", None)
    for name, value in (
        ("BROADCAST_LANES", args.lanes),
        ("BROADCAST_CONCURRENCY", args.concurrency),
        ("BROADCAST_CHUNK", args.chunk),
        ("BROADCAST_PIPELINES", args.pipelines),
    ):
        if value is not None:
            env[name] = str(value)
    return env


def start_workers(
    stack: contextlib.ExitStack,
    count: int,
    env: dict,
    redis: Redis,
    log_dir: Path,
    worker_class: str = WORKER_CLASS,
) -> list[subprocess.Popen]:
    """``count`` ``rq worker`` processes (the first runs the scheduler), once registered."""
    workers = []
    for index in range(count):
        command = [
            str(BIN / "rq"), "worker",
            "--url", env["REDIS_URL"],
            "--worker-class", worker_class,
            "--name", f"bench-{os.getpid()}-{index}",
            "--logging_level", "WARNING",
            *(["--with-scheduler"] if index == 0 else []),
            QUEUE_BROADCASTS, QUEUE_DEFAULT,
        ]  # fmt: skip
        log = open(log_dir / f"worker-{index}.log", "wb")  # closed by the stack
        stack.callback(log.close)
        workers.append(spawn(stack, command, env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=redis)) < count:
        for process in workers:
            if process.poll() is not None:
                raise SystemExit(f"a worker exited with {process.returncode}; see {log_dir}")
        if time.monotonic() > deadline:
            raise SystemExit(f"workers did not register within 60 s; see {log_dir}")
        time.sleep(0.2)
    return workers


def deliveries_by_status(engine, run_id: int) -> dict[str, int]:
    """Deliveries of the run per status."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, count(*) FROM broadcast_deliveries "
                "WHERE run_id = :run GROUP BY status"
            ),
            {"run": run_id},
        ).all()
    return dict(rows)


def wait_for_run(engine, run_id: int, timeout: float, workers: list) -> None:
    """Poll until the run is closed, printing progress every few seconds."""
    started = time.monotonic()
    last_print = started
    while True:
        with engine.connect() as conn:
            status, finished = conn.execute(
                text("SELECT status, finished_at FROM broadcast_runs WHERE id = :run"),
                {"run": run_id},
            ).one()
        if finished is not None:
            return
        now = time.monotonic()
        if now - started > timeout:
            raise SystemExit(f"run {run_id} not finished after {timeout:g} s ({status})")
        for process in workers:
            if process.poll() is not None:
                raise SystemExit(f"a worker exited with {process.returncode}")
        if now - last_print >= 5:
            counts = deliveries_by_status(engine, run_id)
            print(f"  {now - started:5.0f} s  run {status}: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))  # fmt: skip
            last_print = now
        time.sleep(0.25)


def wait_idle(redis: Redis, timeout: float = 60) -> None:
    """Until no worker runs a job and the queues are empty (every horse reaped)."""
    queues = [Queue(name, connection=redis) for name in (QUEUE_BROADCASTS, QUEUE_DEFAULT)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [w for w in Worker.all(connection=redis) if w.get_current_job_id()]
        if not busy and not any(q.count for q in queues):
            return
        time.sleep(0.2)
    print("  (workers still busy after the run closed; CPU read anyway)")


def steady_rate(stats: dict) -> float:
    """Mean accepted sends per second over the simulator's whole busy seconds."""
    counts = [s["accepted"] for s in stats["per_second"]][1:-1]
    return sum(counts) / len(counts) if counts else float("nan")


def run_service(
    args: argparse.Namespace, stack: contextlib.ExitStack, redis: Redis, sim_url: str
) -> dict:
    """Seed, start the workers, send the broadcast; the figures and counts."""
    database_url = stack.enter_context(private_database("bench_send"))
    print(f"seeding {args.recipients:,} subscribers ...")
    seed_subscribers(database_url, args.recipients)
    engine = make_engine(database_url)
    stack.callback(engine.dispose)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-send-rate-"))
    env = worker_environment(args, database_url, sim_url)
    workers = start_workers(stack, args.workers, env, redis, log_dir, args.worker_class)
    knobs = {k: v for k, v in env.items() if k.startswith("BROADCAST_")}
    print(f"{args.workers} rq workers ({args.worker_class}), tuning {knobs or 'defaults'}; "
          f"logs in {log_dir}")  # fmt: skip

    urllib.request.urlopen(urllib.request.Request(sim_url + "/sim/messages", method="DELETE"))
    cpu_before = sum(tree_cpu_seconds(p.pid) for p in workers)
    machine_before = machine_cpu_seconds()
    with session_scope(engine) as session:
        broadcast = create_broadcast(
            session=session,
            body=BODY,
            audience=AudienceSpec("all"),
            timezone="America/New_York",
            send_at=datetime.now(UTC),
            created_by="bench",
        )
        run = schedule_broadcast(session=session, broadcast_id=broadcast.id)
    started = time.perf_counter()
    enqueue_start(Queue(QUEUE_BROADCASTS, connection=redis), run)
    wait_for_run(engine, run.id, args.timeout, workers)
    elapsed = time.perf_counter() - started
    wait_idle(redis)
    cpu = sum(tree_cpu_seconds(p.pid) for p in workers) - cpu_before
    machine = machine_cpu_seconds() - machine_before
    counts = deliveries_by_status(engine, run.id)
    with engine.connect() as conn:
        distinct_sids = conn.execute(
            text(
                "SELECT count(DISTINCT sid) FROM broadcast_deliveries "
                "WHERE run_id = :run AND sid IS NOT NULL"
            ),
            {"run": run.id},
        ).scalar_one()
    return dict(
        figures=Figures(counts.get("sent", 0), elapsed, cpu),
        counts=counts,
        distinct_sids=distinct_sids,
        machine_cpu=machine,
    )


def main(argv: list[str] | None = None) -> int:
    """Baseline, then the service; print the figures; 0 when the targets hold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="rq worker processes")
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=100.0, help="uniform 0..jitter added")
    parser.add_argument("--max-concurrency", type=int, default=1000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--worker-class", default=WORKER_CLASS, help="rq worker --worker-class")
    parser.add_argument("--lanes", type=int, help="BROADCAST_LANES for the workers")
    parser.add_argument("--concurrency", type=int, help="BROADCAST_CONCURRENCY")
    parser.add_argument("--chunk", type=int, help="BROADCAST_CHUNK")
    parser.add_argument("--pipelines", type=int, help="BROADCAST_PIPELINES")
    parser.add_argument("--timeout", type=float, help="seconds to wait for the run")
    args = parser.parse_args(argv)
    args.timeout = args.timeout or max(120.0, args.recipients / 50)
    exit_on_sigterm()

    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(private_redis_db(args.redis_url))
        sim, sim_url = start_simulator(
            stack,
            latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms,
            max_concurrency=args.max_concurrency,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
        )
        latency = f"{args.latency_ms:g}-{args.latency_ms + args.jitter_ms:g} ms"
        print(f"carrier simulator at {sim_url}: latency {latency}, callbacks off")
        print(f"baseline: sequential client.messages.create for {args.baseline_seconds:g} s ...")
        baseline = run_baseline(sim_url, args.baseline_seconds)
        sim_cpu_before = cpu_seconds(sim.pid)
        result = run_service(args, stack, redis, sim_url)
        sim_cpu = cpu_seconds(sim.pid) - sim_cpu_before
        stats = http_json(sim_url + "/sim/stats")

    service: Figures = result["figures"]
    counts = result["counts"]
    accepted = stats["accepted"]
    exact = counts.get("sent", 0) == args.recipients == accepted == result["distinct_sids"]
    rate_ok = service.rate >= TARGET_RATE
    cpu_ok = service.cpu_ms <= TARGET_CPU_MS
    others = result["machine_cpu"] - service.cpu_seconds - sim_cpu
    cores = os.cpu_count() or 1
    print(f"\nbroadcast to {args.recipients:,} recipients, {args.workers} rq workers, "
          f"simulator {latency}, on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"  deliveries        {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}; "
          f"simulator accepted {accepted}, rejected {stats['rejected_total']}, "
          f"peak in flight {stats['peak_in_flight']}")  # fmt: skip
    print(f"  exactly once      {'yes' if exact else 'NO'} "
          f"({result['distinct_sids']} distinct sids)")  # fmt: skip
    print(f"  {'':18s}{'msgs/s':>10s}{'CPU-ms/msg':>12s}{'messages':>10s}{'seconds':>9s}")
    for name, fig in (("service", service), ("baseline", baseline)):
        print(f"  {name:18s}{fig.rate:10.1f}{fig.cpu_ms:12.2f}{fig.messages:10d}"
              f"{fig.seconds:9.1f}")  # fmt: skip
    print(f"  ratio to baseline {service.rate / baseline.rate:9.1f}x"
          f"{service.cpu_ms / baseline.cpu_ms:11.2f}x")  # fmt: skip
    print(f"  simulator steady  {steady_rate(stats):10.1f}/s (mean of its whole busy seconds)")
    print(f"  CPU during the run: workers {service.cpu_seconds:.1f} s, simulator {sim_cpu:.1f} s, "
          f"everything else on the machine {others:.1f} s, of {cores * service.seconds:.0f} s "
          f"available on {cores} cores")  # fmt: skip
    print(f"  target >= {TARGET_RATE:g} msgs/s: {'HOLDS' if rate_ok else 'FAILS'}; "
          f"<= {TARGET_CPU_MS:g} CPU-ms/msg: {'HOLDS' if cpu_ok else 'FAILS'}")  # fmt: skip
    return 0 if rate_ok and cpu_ok and exact else 1


if __name__ == "__main__":
    sys.exit(main())
