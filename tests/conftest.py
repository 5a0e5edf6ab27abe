"""Shared fixtures: a private PostgreSQL database per test run, settings, app and client.

PostgreSQL (127.0.0.1:5432, database ``test`` for the admin connection) and Redis
(127.0.0.1:6379) are real. Each run creates its own database and drops it at the end;
each test starts from empty tables. Each run also leases a Redis database number of its
own (:mod:`tests.redis_db`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from config import Settings
from sms_service.carrier.client import close_twilio_client, make_twilio_client
from sms_service.db import make_engine
from sms_service.db.migrate import private_database, upgrade
from sms_service.devtools.carrier_sim import SimConfig, SimHandle, run_in_thread
from tests import redis_db
from tests.factories import (
    PG_ADMIN_URL,
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    make_petition_app,
    make_settings,
    truncate_all,
)
from workers import context


def pytest_configure(config) -> None:
    # This run's own Redis database number; each pytest-xdist worker leases its own.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        try:
            redis_db.lease_for_worker()
        except RuntimeError as exc:
            raise pytest.UsageError(str(exc)) from None
    else:
        redis_db.lease()


def pytest_collection_modifyitems(config, items) -> None:
    """Everything under tests/e2e starts processes (servers, browsers): mark it ``slow``."""
    e2e = Path(__file__).resolve().parent / "e2e"
    for item in items:
        if Path(item.fspath).is_relative_to(e2e):
            item.add_marker(pytest.mark.slow)


def pytest_unconfigure(config) -> None:
    redis_db.release()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated to head, dropped afterwards."""
    with private_database(PG_ADMIN_URL, "sms_test") as url:
        yield url


@pytest.fixture
def redis_connection() -> Iterator[redis.Redis]:
    """The run's own Redis database (:mod:`tests.redis_db`), emptied before and after."""
    conn = redis.Redis.from_url(redis_db.redis_url())
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """The run's PostgreSQL database, emptied before each test."""
    truncate_all(pg_url)
    yield pg_url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated to head once per run, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "sms.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template) -> str:
    """A fresh, migrated SQLite file: the embedded default."""
    path = tmp_path / "sms.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request) -> str:
    """Run the test on PostgreSQL and on the embedded SQLite default."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_db")
    return request.getfixturevalue("sqlite_url")


@pytest.fixture
def engine(database_url: str) -> Iterator:
    """An engine on the test's database (PostgreSQL or SQLite), disposed afterwards."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


def _testing(app) -> Iterator:
    """``app`` in testing mode; its engine disposed afterwards."""
    app.config["TESTING"] = True
    yield app
    app.extensions["sms_engine"].dispose()


@pytest.fixture
def app(settings: Settings):
    from sms_service import create_app

    yield from _testing(create_app(settings))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def petition_app(database_url: str, redis_connection: redis.Redis):
    """The app with a demo petition (:func:`tests.factories.make_petition_app`); a petition
    test module overrides ``app`` with it."""
    app = make_petition_app(database_url, redis_connection)
    yield app
    app.extensions["sms_engine"].dispose()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / ".screenshots"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can see whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (its own download cannot work here)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context and page; a failing test leaves a screenshot in .screenshots/."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(exist_ok=True)
        shot = SCREENSHOTS / (request.node.name.replace("/", "_")[:120] + ".png")
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shot}")
    context.close()


@pytest.fixture
def dev_app(settings: Settings):
    """The app with the developer pages (the phone page), as ``sms-service dev`` serves it."""
    from sms_service.devtools.webapp import create_dev_app

    yield from _testing(create_dev_app(settings))


@pytest.fixture
def dev_client(dev_app):
    return dev_app.test_client()


# -- the carrier simulator and workers (tests of sending) --------------------------------


@pytest.fixture
def sim_config(settings: Settings) -> Callable[..., SimConfig]:
    """How ``start_sim`` configures a simulator from its overrides: from the test's settings
    (credentials, short code, webhook), on a free port. A module overrides it."""
    return lambda **overrides: SimConfig.from_settings(settings, port=0, **overrides)


@pytest.fixture
def start_sim(sim_config) -> Iterator[Callable[..., SimHandle]]:
    """Start carrier simulators (``sim_config``); all stopped afterwards."""
    handles: list[SimHandle] = []

    def start(**overrides) -> SimHandle:
        handle = run_in_thread(sim_config(**overrides))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def sim(start_sim) -> SimHandle:
    return start_sim()


@pytest.fixture(scope="module")
def module_sim(request) -> Iterator[SimHandle]:
    """One carrier simulator for a whole test module (starting one per test costs): the
    test credentials, no status callbacks, answers delayed by the module's
    ``SIM_LATENCY_MS`` (0 without one)."""
    latency = getattr(request.module, "SIM_LATENCY_MS", 0)
    handle = run_in_thread(
        SimConfig(
            port=0,
            latency_ms=latency,
            callbacks="none",
            account_sid=TEST_ACCOUNT_SID,
            auth_token=TEST_AUTH_TOKEN,
        )  # fmt: skip
    )
    yield handle
    handle.stop()


@pytest.fixture
def clients() -> Iterator:
    """Make Twilio clients (one per thread); all closed afterwards."""
    made = []

    def make(settings: Settings, **kwargs):
        client = make_twilio_client(settings, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        close_twilio_client(client)


@pytest.fixture
def worker_env(monkeypatch, settings: Settings):
    """The environment a worker process reads its settings from."""

    def point_at(base_url: str, **extra: str) -> None:
        env = extra | {
            "APP_ENV": "test",
            "DATABASE_URL": settings.database_url,
            "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
            "TWILIO_FROM": settings.twilio_from,
            "TWILIO_API_BASE_URL": base_url,
            "PROGRAM_NAME": settings.program_name,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in ("PUBLIC_BASE_URL", "TWILIO_MESSAGING_SERVICE_SID"):
            monkeypatch.delenv(name, raising=False)
        context.reset()

    yield point_at
    context.reset()
