"""Builders for the petition page and API tests: an app whose queue is the run's Redis, a
CSRF token read off the page, an API token, and a look at what was stored."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlmodel import Session

from sms_service import create_app
from sms_service.db import session_scope
from sms_service.models import (
    ConsentEvent,
    OutboundMessage,
    Signature,
    Subscriber,
    WebConfirmation,
)
from sms_service.services.api_tokens import create_token
from sms_service.services.campaigns import create_campaign
from tests.factories import make_settings

PHONE = "+12025550123"
KEYWORD = "HK64"
_CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')


def petition_app(database_url: str, redis_connection, **overrides):
    """The web app with a demo petition; confirmation texts go to the run's Redis queue."""
    settings = make_settings(database_url, **overrides)
    app = create_app(settings)
    app.config["TESTING"] = True
    app.extensions["rq_connection"] = redis_connection
    with session_scope(app.extensions["sms_engine"]) as session:
        create_campaign(
            session=session, keyword=KEYWORD, title="Release the 64",
            text="Dear Secretary Cheng:\n\nRelease those prosecuted for peaceful expression.",
        )  # fmt: skip
    return app


def csrf_token(client, keyword: str = KEYWORD) -> str:
    """The CSRF token the page's form carries (the client keeps the session cookie)."""
    page = client.get(f"/p/{keyword}")
    assert page.status_code == 200, page.status_code
    return _CSRF.search(page.data).group(1).decode()


def sign(client, *, ip: str = "198.51.100.7", keyword: str = KEYWORD, **fields):
    """Post the page's form as a browser at ``ip`` would (CSRF token included)."""
    data = {"csrf_token": csrf_token(client, keyword), **fields}
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


def texts_to(app, phone: str = PHONE) -> list[OutboundMessage]:
    return rows(app, OutboundMessage, OutboundMessage.to_number == phone)


def consent_events(app, phone: str = PHONE) -> list[ConsentEvent]:
    return rows(app, ConsentEvent, ConsentEvent.phone == phone)


def status_of(app, phone: str = PHONE) -> str | None:
    found = rows(app, Subscriber, Subscriber.phone == phone)
    return found[0].status if found else None
