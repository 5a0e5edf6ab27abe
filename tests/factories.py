"""Builders shared by tests: settings, Twilio-shaped inbound forms (signed with
RequestValidator), subscribers and broadcasts in bulk, the carrier simulator's view, the
petition page's app and form, and waiting for a condition or a free port.

Fixtures live in ``tests/conftest.py`` (``tests/e2e/conftest.py`` for processes). No test
module imports another test module or ``conftest``: what two of them share is here.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import requests
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session
from twilio.request_validator import RequestValidator

from config import Settings
from sms_service import broadcasts, create_app
from sms_service.broadcasts.clients import ClientPool
from sms_service.broadcasts.sending import RunSender
from sms_service.broadcasts.tuning import Tuning
from sms_service.carrier import twiml as twilio_webhooks
from sms_service.carrier.client import make_twilio_client
from sms_service.carrier.throttle import Throttle
from sms_service.db import make_engine, session_scope
from sms_service.domain.audience import parse_audience
from sms_service.models import (
    Broadcast,
    BroadcastDelivery,
    BroadcastRun,
    Campaign,
    ConsentEvent,
    OutboundMessage,
    Signature,
    Subscriber,
    SubscriberTag,
    WebConfirmation,
    utcnow,
)
from sms_service.services.api_tokens import create_token
from sms_service.services.campaigns import create_campaign
from tests import redis_db

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_AUTH_TOKEN = "test-auth-token-" + uuid.uuid4().hex[:16]  # 32 characters, like Twilio's
TEST_ACCOUNT_SID = "AC" + "1" * 32


def make_settings(database_url: str, **overrides) -> Settings:
    """Settings for tests: never the environment's secrets."""
    values = dict(
        app_env="test",
        database_url=database_url,
        twilio_account_sid=TEST_ACCOUNT_SID,
        twilio_auth_token=TEST_AUTH_TOKEN,
        twilio_from="21333",
        program_name="Rights Alerts",
        program_help_contact="help@rights.example",
        program_frequency="Up to 4 msgs/mo",
        program_terms_url="https://rights.example/sms-terms",
        public_base_url="https://sms.rights.example",
        secret_key="test-secret",
        # Each app counts its own limits; tests of shared counting pass a Redis URL.
        ratelimit_storage_url="memory://",
        # Anything the app enqueues goes to this run's own Redis database, never db 0.
        redis_url=redis_db.redis_url(),
    )
    values.update(overrides)
    return Settings(**values)


def sending_settings(database_url: str, sim_url: str) -> Settings:
    """Settings for tests that send through the carrier simulator at ``sim_url``: quiet
    hours off, no throttle, no public URL (the simulator posts nothing back)."""
    return make_settings(
        database_url, twilio_api_base_url=sim_url, quiet_hours="off", sender_mps=0,
        public_base_url=None,
    )  # fmt: skip


def make_run_sender(
    engine: Engine, settings: Settings, connection, *, key: str, timeout: float = 10, **tuning
) -> tuple[RunSender, ClientPool]:
    """A broadcast batch sender over ``engine`` sending with ``settings`` through a pool of
    Twilio clients (``timeout`` s), throttled at ``settings.sender_mps`` under ``key`` in
    Redis ``connection``; ``tuning`` as :class:`Tuning` takes it, 25 a chunk and 4 at a time
    unless given. The caller closes the pool."""
    tune = Tuning(**({"chunk": 25, "concurrency": 4} | tuning))
    pool = ClientPool(lambda: make_twilio_client(settings, timeout=timeout), tune.concurrency)
    throttle = Throttle(connection, rate=settings.sender_mps, key=key)
    sender = RunSender(engine=engine, settings=settings, pool=pool, throttle=throttle, tuning=tune)
    return sender, pool


def truncate_all(url: str) -> None:
    """Empty every table. The consent log refuses TRUNCATE by trigger; the test run is a
    superuser, and in replica mode ordinary triggers do not fire."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        tables = conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ).scalars()
        names = ", ".join(f'"{t}"' for t in tables)
        if names:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


def new_sid(prefix: str = "SM") -> str:
    """A Twilio-shaped sid: two letters and 32 hex digits."""
    return prefix + uuid.uuid4().hex


def inbound_form(from_: str, body: str, *, sid: str | None = None, **extra: str) -> dict[str, str]:
    """The fields Twilio posts for an inbound SMS (a realistic subset, plus ``extra``)."""
    form = twilio_webhooks.inbound_form(
        sid=sid or new_sid(), account_sid="AC" + "1" * 32, from_=from_, to="21333", body=body
    )
    form.update(extra)
    return form


def sign(settings: Settings, path: str, form: dict[str, str]) -> str:
    """The X-Twilio-Signature Twilio would send for ``form`` posted to ``path``."""
    url = (settings.public_base_url or "http://localhost").rstrip("/") + path
    return RequestValidator(settings.twilio_auth_token).compute_signature(url, form)


def post_signed(client, settings: Settings, path: str, form: dict[str, str]):
    """POST ``form`` to ``path`` with a valid Twilio signature."""
    headers = {"X-Twilio-Signature": sign(settings, path, form)}
    return client.post(path, data=form, headers=headers)


def text_in(client, settings: Settings, from_: str, body: str, **extra: str):
    """A supporter texts ``body`` from ``from_``; returns the Flask response."""
    return post_signed(client, settings, "/sms/inbound", inbound_form(from_, body, **extra))


STAFF_PASSWORD = "correct horse battery staple"


def make_staff(app, role: str, email: str | None = None, **fields):
    """A console account with ``role`` (password :data:`STAFF_PASSWORD`)."""
    from sms_service.db import session_scope
    from sms_service.services import staff

    with session_scope(app.extensions["sms_engine"]) as session:
        user = staff.create_user(
            session=session, email=email or f"{role}@rights.example", role=role,
            password=STAFF_PASSWORD,
        )  # fmt: skip
        for name, value in fields.items():
            setattr(user, name, value)
        session.add(user)
    return user


def csrf_token_from(html: str) -> str:
    """The CSRF token a console page carries (in its <meta name="csrf-token">)."""
    import re

    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


def log_in(client, email: str, password: str = STAFF_PASSWORD):
    """Sign in through /login like a browser: fetch the form for its token, then post."""
    token = csrf_token_from(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def text_arguments(rule) -> set[str]:
    """The arguments of a URL rule that take text (every converter but ``int``)."""
    return {name for name, converter in rule._converters.items()
            if type(converter).__name__ != "IntegerConverter"}  # fmt: skip


def build_url(rule, *, number: int, text: str) -> str:
    """``rule``'s path with ``number`` for each ``int`` argument and ``text`` for the rest."""
    texts = text_arguments(rule)
    values = {name: text if name in texts else number for name in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


# -- subscribers and broadcasts in bulk, the simulator's view ---------------------------


def phone(i: int) -> str:
    """A valid Washington DC number (no state quiet-hours rule applies)."""
    return f"+1202{2_000_000 + i:07d}"


def add_subscribers(
    engine: Engine,
    count: int,
    *,
    start: int = 0,
    status: str = "subscribed",
    timezone: str | None = None,
    tag: str | None = None,
) -> list[int]:
    """Insert ``count`` subscribers (numbers ``phone(start)``…); their ids, in order."""
    now = utcnow()
    rows = [
        dict(phone=phone(i), status=status, timezone=timezone, created_at=now, updated_at=now)
        for i in range(start, start + count)
    ]
    table = Subscriber.__table__
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
        ids = list(
            conn.execute(
                select(table.c.id).where(table.c.phone.in_([r["phone"] for r in rows]))
            ).scalars()
        )
        if tag:
            conn.execute(
                insert(SubscriberTag.__table__), [dict(subscriber_id=i, tag=tag) for i in ids]
            )
    return sorted(ids)


def add_campaign(engine: Engine, keyword: str, signer_ids: list[int]) -> int:
    """A campaign signed by ``signer_ids``; its id."""
    with engine.begin() as conn:
        campaign_id = conn.execute(
            insert(Campaign.__table__)
            .values(
                keyword=keyword,
                title=keyword.title(),
                petition_text="",
                active=True,
                created_at=utcnow(),
            )  # fmt: skip
            .returning(Campaign.__table__.c.id)
        ).scalar_one()
        if signer_ids:
            conn.execute(
                insert(Signature.__table__),
                [
                    dict(
                        campaign_id=campaign_id, subscriber_id=i, source="sms", signed_at=utcnow()
                    )  # fmt: skip
                    for i in signer_ids
                ],
            )
    return campaign_id


def sim_messages(sim_url: str, to: str | None = None) -> list[dict]:
    """Every message the simulator accepted (newest first), optionally to one number."""
    params = {"to": to} if to else {}
    response = requests.get(f"{sim_url}/sim/messages", params=params, timeout=10)
    response.raise_for_status()
    return response.json()["messages"]


def texts_per_number(sim_url: str) -> Counter:
    """How many texts each number got from the simulator's point of view."""
    return Counter(message["to"] for message in sim_messages(sim_url))


def clear_sim(sim_url: str) -> None:
    """Forget every message, opt-out and preset outcome the simulator holds."""
    for path in ("/sim/messages", "/sim/optouts", "/sim/outcomes"):
        requests.delete(f"{sim_url}{path}", timeout=10).raise_for_status()


def zone_at_local_hour(hour: int) -> str:
    """An ``Etc/GMT±N`` zone where the local hour is now ``hour`` (or within an hour)."""
    offset = (hour - datetime.now(UTC).hour + 12) % 24 - 12
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def delivery_counts(engine: Engine, run_id: int | None = None) -> Counter:
    """Deliveries per (status, reason), for one run or all."""
    d = BroadcastDelivery.__table__
    query = select(d.c.status, d.c.reason)
    if run_id is not None:
        query = query.where(d.c.run_id == run_id)
    with engine.connect() as conn:
        return Counter(tuple(row) for row in conn.execute(query))


def runs_of(engine: Engine, broadcast_id: int) -> list:
    """The broadcast's runs, in occurrence order."""
    r = BroadcastRun.__table__
    with engine.connect() as conn:
        return conn.execute(
            select(r).where(r.c.broadcast_id == broadcast_id).order_by(r.c.occurrence_at)
        ).all()


def schedule_broadcast(
    engine: Engine,
    audience: str = "all",
    *,
    body: str = "Rally at city hall, 6pm",
    timezone: str = "America/New_York",
    **options: Any,
) -> tuple[int, BroadcastRun]:
    """Create and schedule a broadcast, as ``sms-service broadcast create`` does; its id and
    first run. ``options`` go to :func:`create_broadcast` (``send_at``, ``recurrence``...)."""
    with session_scope(engine) as session:
        created = broadcasts.create_broadcast(
            session=session, body=body, audience=parse_audience(audience), timezone=timezone,
            **options,
        )  # fmt: skip
        run = broadcasts.schedule_broadcast(session=session, broadcast_id=created.id)
    return created.id, run


def sent_runs(engine, recipients: list[list[int]], *, days_ago: float) -> None:
    """One finished run per list, each text sent ``days_ago``."""
    when = datetime.now(UTC) - timedelta(days=days_ago)
    with engine.begin() as conn:
        broadcast = conn.execute(
            insert(Broadcast.__table__)
            .values(
                body="Earlier",
                audience_kind="all",
                send_at=when,
                timezone="UTC",
                status="sent",
                created_at=when,
                updated_at=when,
            )
            .returning(Broadcast.__table__.c.id)
        ).scalar_one()
        for k, ids in enumerate(recipients):
            start = when + timedelta(minutes=k)
            run = conn.execute(
                insert(BroadcastRun.__table__)
                .values(
                    broadcast_id=broadcast,
                    occurrence_at=start,
                    status="sent",
                    planned=len(ids),
                    created_at=start,
                    started_at=start,
                    finished_at=start + timedelta(seconds=30),
                )
                .returning(BroadcastRun.__table__.c.id)
            ).scalar_one()
            conn.execute(insert(BroadcastDelivery.__table__), [
                dict(run_id=run, subscriber_id=s, status="sent", attempts=1, sid=f"SMr{run}x{s}",
                     sent_at=start, updated_at=start) for s in ids])  # fmt: skip


# -- waiting and ports --------------------------------------------------------------------

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


def answers(url: str) -> bool:
    """True when a GET of ``url`` succeeds within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:  # refused, reset, timed out while the server starts, or an error status
        return False


def _port_band() -> range:
    """The ports this test process hands out: below the kernel's ephemeral range, where no
    outgoing connection takes its local port, and a band of its own per xdist worker, so two
    workers never pick the same port between checking it and a server binding it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    start, end = 10000, max(low, 12000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index, workers = int(worker or 0), max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1)), 1)
    width = (end - start) // workers
    return range(start + index * width, start + (index + 1) * width)


_next_ports: Iterator[int] | None = None


def free_port() -> int:
    """A loopback TCP port nobody listens on right now, not handed out again by this process
    until its band comes round (see :func:`_port_band`)."""
    global _next_ports
    if _next_ports is None:
        band = _port_band()
        first = band.start + (os.getpid() % len(band))  # reruns start somewhere else
        _next_ports = itertools.cycle([*range(first, band.stop), *range(band.start, first)])
    for port in itertools.islice(_next_ports, 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # someone listens, or a connection lingers there
                continue
        return port
    raise RuntimeError("no free loopback port in this test process's band")


def wait_until_it_answers(
    url: str, timeout: float = 40.0, process: subprocess.Popen | None = None
) -> None:
    """Wait for a GET of ``url`` to succeed (a server starting); with ``process`` (that
    server), fail at once when it exits first."""

    def up() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}) before {url} answered")
        return answers(url)

    wait_for(up, timeout=timeout, interval=0.1, what=url)


@contextmanager
def serving_gunicorn(env: dict[str, str], cwd: Path, port: int, *options: str) -> Iterator[str]:
    """The web app (``sms_service.web.wsgi:app``) under gunicorn on ``port``, with ``env``
    and gunicorn's ``options``, once it answers: its base URL, until the block ends."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen(
        [gunicorn, "sms_service.web.wsgi:app", "--bind", f"127.0.0.1:{port}", *options],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_it_answers(base + "/healthz")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- the petition page and API ------------------------------------------------------------

PETITION_PHONE = "+12025550123"
PETITION_KEYWORD = "HK64"
_CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')


def make_petition_app(database_url: str, redis_connection, **overrides):
    """The web app with a demo petition; confirmation texts go to the run's Redis queue."""
    settings = make_settings(database_url, **overrides)
    app = create_app(settings)
    app.config["TESTING"] = True
    app.extensions["rq_connection"] = redis_connection
    with session_scope(app.extensions["sms_engine"]) as session:
        create_campaign(
            session=session, keyword=PETITION_KEYWORD, title="Release the 64",
            text="Dear Secretary Cheng:\n\nRelease those prosecuted for peaceful expression.",
        )  # fmt: skip
    return app


def petition_csrf_token(client, keyword: str = PETITION_KEYWORD) -> str:
    """The CSRF token the page's form carries (the client keeps the session cookie)."""
    page = client.get(f"/p/{keyword}")
    assert page.status_code == 200, page.status_code
    return _CSRF.search(page.data).group(1).decode()


def sign_petition(client, *, ip: str = "198.51.100.7", keyword: str = PETITION_KEYWORD, **fields):
    """Post the page's form as a browser at ``ip`` would (CSRF token included)."""
    data = {"csrf_token": petition_csrf_token(client, keyword), **fields}
    if data.get("sms_consent") is True:
        data["sms_consent"] = "on"
    return client.post(
        f"/p/{keyword}", data=data, environ_base={"REMOTE_ADDR": ip},
        headers={"User-Agent": "pytest-browser/1.0"},
    )  # fmt: skip


def api_token(app, scope: str = "signatures:write") -> dict[str, str]:
    """Headers with a fresh bearer token of ``scope``."""
    with session_scope(app.extensions["sms_engine"]) as session:
        token = create_token(session=session, name=f"test {scope}", scope=scope)
    return {"Authorization": f"Bearer {token.secret}"}


def rows(app, model, *where):
    """Every row of ``model`` matching ``where``, by id."""
    with Session(app.extensions["sms_engine"]) as session:
        return list(session.execute(select(model).where(*where).order_by(model.id)).scalars())


def signatures(app) -> list[Signature]:
    return rows(app, Signature)


def confirmations(app) -> list[WebConfirmation]:
    return rows(app, WebConfirmation)


def texts_to(app, phone: str = PETITION_PHONE) -> list[OutboundMessage]:
    return rows(app, OutboundMessage, OutboundMessage.to_number == phone)


def consent_events(app, phone: str = PETITION_PHONE) -> list[ConsentEvent]:
    return rows(app, ConsentEvent, ConsentEvent.phone == phone)


def status_of(app, phone: str = PETITION_PHONE) -> str | None:
    found = rows(app, Subscriber, Subscriber.phone == phone)
    return found[0].status if found else None
