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


def post_signed(client, settings: Settings, path: str, form: dict[str, str]):  # noqa: ANN001
    """POST ``form`` to ``path`` with a valid Twilio signature."""
    headers = {"X-Twilio-Signature": sign(settings, path, form)}
    return client.post(path, data=form, headers=headers)


def text_in(client, settings: Settings, from_: str, body: str, **extra: str):  # noqa: ANN001
    """A supporter texts ``body`` from ``from_``; returns the Flask response."""
    return post_signed(client, settings, "/sms/inbound", inbound_form(from_, body, **extra))
