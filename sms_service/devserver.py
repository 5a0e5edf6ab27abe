"""``sms-service dev``: the whole service in one command on the embedded defaults.

Runs the web app, an RQ worker with its scheduler, and the carrier simulator together.
SQLite is the database unless DATABASE_URL says otherwise. When no Redis answers at
REDIS_URL, an in-process fakeredis server stands in: RQ's forking worker and forked
scheduler cannot share it, so a SimpleWorker and a scheduler loop run in threads of this
process instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import redis
from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

log = logging.getLogger(__name__)


class ThreadWorker(SimpleWorker):
    """A SimpleWorker that runs in a thread: no signal handlers, timer-based timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:  # signals only work in the main thread
        pass


def redis_answers(url: str) -> bool:
    """True when a Redis server answers PING at ``url`` within half a second."""
    try:
        conn = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(conn.ping())
        finally:
            conn.close()
    except (redis.RedisError, OSError):
        return False


def connect_queue_backend(url: str) -> tuple[redis.Redis, bool]:
    """A Redis connection for RQ: the real one at ``url``, or an in-process fakeredis.

    Returns the connection and whether it is the in-process stand-in.
    """
    if redis_answers(url):
        return redis.Redis.from_url(url), False
    import fakeredis

    log.warning("no Redis at %s: using an in-process queue (dev only)", url)
    return fakeredis.FakeRedis(server=fakeredis.FakeServer()), True


@dataclass
class BackgroundWork:
    """The worker and scheduler threads; ``stop()`` ends both."""

    worker: ThreadWorker
    threads: list[threading.Thread]
    stop_event: threading.Event

    def stop(self) -> None:
        """Ask both loops to finish and wait for them briefly."""
        self.stop_event.set()
        self.worker.request_stop(None, None)
        for thread in self.threads:
            thread.join(timeout=5)


def start_background_work(
    connection: redis.Redis, queue_names: tuple[str, ...], *, sweep=None, sweep_every: float = 5.0
) -> BackgroundWork:
    """Start an RQ worker and a scheduler loop in threads sharing ``connection``.

    ``sweep`` (optional) is called every ``sweep_every`` seconds: the dev mode uses it to
    enqueue broadcast runs that came due while no one could enqueue them (the CLI in another
    process cannot reach an in-process queue).
    """
    stop = threading.Event()
    queues = [Queue(name, connection=connection) for name in queue_names]
    worker = ThreadWorker(queues, connection=connection)

    def run_worker() -> None:
        worker.work(with_scheduler=False, logging_level="WARNING")

    def run_scheduler() -> None:
        scheduler = RQScheduler(queue_names, connection=connection)
        scheduler._connection = connection  # share the in-process server; never reconnect
        last_sweep = 0.0
        while not stop.is_set():
            scheduler.acquire_locks()
            if scheduler.acquired_locks:
                scheduler.enqueue_scheduled_jobs()
            if sweep is not None and time.monotonic() - last_sweep >= sweep_every:
                last_sweep = time.monotonic()
                try:
                    sweep()
                except Exception:  # a failed sweep is retried at the next tick
                    log.exception("broadcast sweep failed")
            stop.wait(1.0)
        scheduler.release_locks()

    threads = [
        threading.Thread(target=run_worker, name="rq-worker", daemon=True),
        threading.Thread(target=run_scheduler, name="rq-scheduler", daemon=True),
    ]
    for thread in threads:
        thread.start()
    return BackgroundWork(worker=worker, threads=threads, stop_event=stop)


def dev_environment(host: str, port: int, sim_url: str) -> dict[str, str]:
    """Environment for dev mode: the simulator as Twilio, this server as the public URL."""
    env = {
        "TWILIO_API_BASE_URL": sim_url,
        "PUBLIC_BASE_URL": f"http://{host}:{port}",
    }
    return {k: v for k, v in env.items() if not os.environ.get(k)}


DEMO_CAMPAIGN = dict(
    keyword="HK64",
    title="Release the 64 charged under the National Security Law",
    text=(
        "Dear Secretary Cheng: I call on you to drop all charges against and release those "
        "prosecuted solely for peacefully exercising their rights."
    ),
)


def seed_demo_campaign(engine) -> str | None:  # noqa: ANN001 - SQLAlchemy engine
    """On an empty database, add the petition this product grew from, so SIGN works."""
    from .campaigns import create_campaign, list_campaigns
    from .db import session_scope

    with session_scope(engine) as session:
        if list_campaigns(session=session):
            return None
        campaign = create_campaign(session=session, **DEMO_CAMPAIGN)
        return campaign.keyword


def run_dev(*, host: str, port: int, sim_port: int, latency_ms: float) -> None:
    """Start simulator, worker, scheduler and web app; serve until interrupted."""
    from werkzeug.serving import run_simple

    from config import Settings
    from workers import QUEUES

    from . import create_app
    from .carrier_sim import SimConfig, run_in_thread
    from .migrate import upgrade

    for key, value in dev_environment(host, port, f"http://127.0.0.1:{sim_port}").items():
        os.environ[key] = value  # workers read settings from the environment
    settings = Settings()
    upgrade(settings.database_url)
    app = create_app(settings)
    seeded = seed_demo_campaign(app.extensions["sms_engine"])

    sim = run_in_thread(
        SimConfig.from_settings(
            settings,
            host="127.0.0.1",
            port=sim_port,
            latency_ms=latency_ms,
            webhook_url=f"http://{host}:{port}/sms/inbound",
        )
    )
    connection, in_process = connect_queue_backend(settings.redis_url)
    background = start_background_work(connection, QUEUES, sweep=_sweeper(connection))
    base = f"http://{host}:{port}"
    queue = "in-process (no Redis answered)" if in_process else settings.redis_url
    print(
        f"\n  sms_service dev\n"
        f"  web app          {base}   (phone simulator: {base}/phone)\n"
        f"  inbound webhook  {base}/sms/inbound\n"
        f"  carrier sim      {sim.url}   (messages: {sim.url}/sim/messages)\n"
        f"  database         {settings.database_url}\n"
        f"  queue            {queue}\n"
        + (f"  demo campaign    text SIGN or {seeded} from the phone simulator\n" if seeded else "")
        + "\n  Ctrl-C stops everything.\n",
        flush=True,
    )
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        background.stop()
        sim.stop()
        app.extensions["sms_engine"].dispose()


def _sweeper(connection):  # noqa: ANN001, ANN202 - redis connection; returns a callable or None
    """The broadcast sweep (enqueue due runs) bound to ``connection``, if broadcasts exist."""
    try:
        from workers import broadcast
    except ImportError:
        return None
    sweep = getattr(broadcast, "sweep_due_runs", None)
    if sweep is None:
        return None
    return lambda: sweep(connection=connection)
