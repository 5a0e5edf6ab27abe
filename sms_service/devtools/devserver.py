"""``sms-service dev``: the whole service in one command on the embedded defaults.

Runs the web app, an RQ worker with its scheduler, and the carrier simulator together.
SQLite is the database unless DATABASE_URL says otherwise. When no Redis answers at
REDIS_URL, an in-process fakeredis server stands in, and the worker runs in a thread.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import redis

from sms_service.redis_ping import redis_answers

log = logging.getLogger(__name__)


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
    """The in-process RQ worker thread (with its scheduler and sweeper); ``stop()`` ends it."""

    thread: threading.Thread
    stop_event: threading.Event

    def stop(self) -> None:
        """Ask the worker to finish and wait for it briefly."""
        self.stop_event.set()
        self.thread.join(timeout=10)


# With the in-process queue, a broadcast created by `sms-service broadcast create` (another
# process, which cannot reach that queue) starts at the worker's next sweep: every few
# seconds in dev, unless BROADCAST_SWEEP_SECONDS says otherwise.
DEV_SWEEP_SECONDS = 3.0


def dev_sweep_interval(in_process: bool, settings) -> float | None:
    """The dev worker's sweep interval: :data:`DEV_SWEEP_SECONDS` with the in-process
    queue when ``settings`` were not given BROADCAST_SWEEP_SECONDS; otherwise None (the
    setting's)."""
    if in_process and "broadcast_sweep_seconds" not in settings.model_fields_set:
        return DEV_SWEEP_SECONDS
    return None


def start_background_work(
    connection: redis.Redis, sweep_interval: float | None = None
) -> BackgroundWork:
    """Run the broadcast worker in a thread of this process, sharing ``connection``.

    RQ's forking worker and forked scheduler cannot share an in-process fakeredis server,
    so dev mode runs jobs in-process with the scheduler in a thread; the worker's sweeper
    also enqueues broadcast runs created from the CLI in another process.
    """
    from workers.broadcast_worker import start_worker

    stop = threading.Event()
    thread = threading.Thread(
        target=start_worker,
        kwargs=dict(
            connection=connection,
            fork=False,
            with_scheduler=True,
            stop_event=stop,
            sweep_interval=sweep_interval,
        ),
        name="rq-worker",
        daemon=True,
    )
    thread.start()
    return BackgroundWork(thread=thread, stop_event=stop)


def set_default_environment(**values: str) -> None:
    """Set the variables the environment does not already give (workers read it too)."""
    for key, value in values.items():
        if not os.environ.get(key):
            os.environ[key] = value


DEMO_CAMPAIGN = dict(
    keyword="HK64",
    title="Release the 64 charged under the National Security Law",
    text=(
        "Dear Secretary Cheng: I call on you to drop all charges against and release those "
        "prosecuted solely for peacefully exercising their rights."
    ),
)


def seed_demo_campaign(engine) -> str | None:
    """On an empty database, add the petition this product grew from, so SIGN works."""
    from sms_service.db import session_scope
    from sms_service.services.campaigns import create_campaign, list_campaigns

    with session_scope(engine) as session:
        if list_campaigns(session=session):
            return None
        campaign = create_campaign(session=session, **DEMO_CAMPAIGN)
        return campaign.keyword


DEMO_ADMIN_EMAIL = "admin@example.org"


def seed_demo_admin(engine) -> tuple[str, str] | None:
    """On a database with no console account, add an admin with a fresh random password;
    return (email, password) to print, or None when accounts exist."""
    import secrets

    from sms_service.db import session_scope
    from sms_service.services import staff

    with session_scope(engine) as session:
        if staff.count_users(session=session):
            return None
        password = secrets.token_urlsafe(12)
        staff.create_user(session=session, email=DEMO_ADMIN_EMAIL, role="admin", password=password)
    return DEMO_ADMIN_EMAIL, password


def run_dev(*, host: str, port: int, sim_port: int, latency_ms: float) -> None:
    """Start simulator, worker, scheduler and web app; serve until interrupted."""
    from werkzeug.serving import run_simple

    from config import Settings
    from sms_service.db import display_url
    from sms_service.db.migrate import upgrade
    from sms_service.devtools.carrier_sim import SimConfig, run_in_thread
    from sms_service.devtools.webapp import create_dev_app

    # This server is the public URL; the simulator posts inbound texts to it, signed for it.
    set_default_environment(PUBLIC_BASE_URL=f"http://{host}:{port}")
    sim = run_in_thread(
        SimConfig.from_settings(Settings(), host="127.0.0.1", port=sim_port, latency_ms=latency_ms)
    )
    set_default_environment(TWILIO_API_BASE_URL=sim.url)  # the simulator plays Twilio
    settings = Settings()
    upgrade(settings.database_url)
    app = create_dev_app(settings)
    seeded = seed_demo_campaign(app.extensions["sms_engine"])
    admin = seed_demo_admin(app.extensions["sms_engine"])
    connection, in_process = connect_queue_backend(settings.redis_url)
    # The console and the petition page enqueue where the worker reads.
    app.extensions["rq_connection"] = connection
    background = start_background_work(connection, dev_sweep_interval(in_process, settings))
    base = f"http://{host}:{port}"
    queue = "in-process (no Redis answered)" if in_process else settings.redis_url
    print(
        f"\n  sms_service dev\n"
        f"  web app          {base}   (phone simulator: {base}/phone)\n"
        f"  inbound webhook  {sim.config.webhook_url}\n"
        f"  carrier sim      {sim.url}   (messages: {sim.url}/sim/messages)\n"
        f"  database         {display_url(settings.database_url)}\n"
        f"  queue            {queue}\n"
        + (f"  demo campaign    text SIGN or {seeded} from the phone simulator\n" if seeded else "")
        + f"  console          {base}/console\n"
        + (f"  console login    {admin[0]}  password {admin[1]}\n" if admin else "")
        + f"  petition page    {base}/p/<KEYWORD>   (demo: {base}/p/{DEMO_CAMPAIGN['keyword']})\n"
        + "\n  Ctrl-C stops everything.\n",
        flush=True,
    )
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        background.stop()
        sim.stop()
        app.extensions["sms_engine"].dispose()
