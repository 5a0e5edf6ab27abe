"""Verifying that a webhook request really comes from Twilio (``X-Twilio-Signature``)."""

from __future__ import annotations

from flask import Request
from twilio.request_validator import RequestValidator


def signed_url(request: Request, public_base_url: str | None) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path when set, else the request URL.

    Behind a proxy the request URL is rebuilt by ProxyFix from X-Forwarded-* headers.
    """
    if public_base_url:
        url = public_base_url.rstrip("/") + request.path
        query = request.query_string.decode()
        return f"{url}?{query}" if query else url
    return request.url


def is_valid_twilio_request(request: Request, auth_token: str, public_base_url: str | None) -> bool:
    """True when the signature matches the URL and *all* posted form fields.

    Twilio adds parameters without notice, so every posted field is included, never a
    fixed list.
    """
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    params = request.form.to_dict(flat=True)
    return validator.validate(signed_url(request, public_base_url), params, signature)
