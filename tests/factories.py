"""Builders shared by tests: Twilio-shaped inbound forms, signed with RequestValidator."""

from __future__ import annotations

import uuid

from twilio.request_validator import RequestValidator

from config import Settings
from sms_service.carrier import twiml as twilio_webhooks


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
