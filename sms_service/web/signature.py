"""Verifying that a webhook request really comes from Twilio (``X-Twilio-Signature``).

Twilio signs the URL it was configured with plus every posted field. Which URL we check
against decides what a signature proves: with PUBLIC_BASE_URL (required in production) it
is that fixed address, so a signature Twilio made for some other webhook of the account
(``https://other.example/sms/inbound``) never matches here, whatever ``Host`` or
``X-Forwarded-Host`` the request claims. Without it (development and tests only) the URL
the request reached, which ProxyFix rebuilds from X-Forwarded-* headers only when
TRUSTED_PROXIES says proxies are in front.

Two callers: Flask's views (:func:`is_valid_twilio_request`) and the inbound webhook's lane
in front of Flask (:mod:`sms_service.web.inbound_lane`), which has only the WSGI environ;
both come down to :func:`signature_matches`.
"""

from __future__ import annotations

from functools import lru_cache
from hmac import compare_digest
from urllib.parse import urlparse

from flask import Request
from twilio.request_validator import RequestValidator, add_port, remove_port


def signed_url(request: Request, public_base_url: str | None) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path (+ query) when set, else the request URL."""
    if public_base_url:
        return fixed_url(public_base_url, request.path, request.query_string.decode("latin-1"))
    return request.url


def fixed_url(public_base_url: str, path: str, query: str) -> str:
    """PUBLIC_BASE_URL + ``path`` (+ ``?query``): the one address Twilio's signature may name."""
    url = public_base_url.rstrip("/") + path
    return f"{url}?{query}" if query else url


def is_valid_twilio_request(request: Request, auth_token: str, public_base_url: str | None) -> bool:
    """True when the signature matches the URL and *all* posted form fields."""
    return signature_matches(
        request.headers.get("X-Twilio-Signature", ""),
        signed_url(request, public_base_url),
        request.form,
        auth_token,
    )


def signature_matches(signature: str, url: str, form, auth_token: str) -> bool:
    """True when ``signature`` is Twilio's for ``url`` and every field of ``form`` (a
    MultiDict, as werkzeug parses a posted form).

    Twilio adds parameters without notice, so every posted field is included, never a
    fixed list. A key posted more than once counts with each of its values, as Twilio
    signs it (the validator reads the MultiDict's lists): a value added to a signed request
    breaks the signature instead of being ignored.
    """
    if not signature:
        return False
    # Twilio's validator accepts the URL with or without its port (its signing is not
    # consistent about it) and computes both every time; here the second only when the
    # first does not match: the same answer, one HMAC for a genuine webhook.
    validator = RequestValidator(auth_token)
    for candidate in _with_and_without_port(url):
        computed = validator.compute_signature(candidate, form)
        if compare_digest(computed.encode(), signature.encode()):
            return True
    return False


@lru_cache(maxsize=256)
def _with_and_without_port(url: str) -> tuple[str, str]:
    # With PUBLIC_BASE_URL every text names the same URL: parsed once, not per text.
    parsed = urlparse(url)
    return remove_port(parsed), add_port(parsed)
