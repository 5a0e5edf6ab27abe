"""Web security for the whole app: CSRF, rate limits, session cookies, response headers.

``init_security(app, settings)`` is called once by the app factory. Other blueprints use
the two module-level extension objects:

* ``csrf``: every POST/PUT/PATCH/DELETE needs a CSRF token (forms render
  ``{{ csrf_token() }}``; JavaScript sends the ``X-CSRFToken`` header). Blueprints whose
  callers cannot hold a token are exempted with ``exempt_from_csrf(bp)`` before they are
  registered: the Twilio webhooks (they prove themselves with ``X-Twilio-Signature``) and
  the bearer-token API (no cookie, so nothing for another site to ride on).
* ``limiter``: ``@limiter.limit("5/minute", key_func=...)`` on any route. Counts live in
  Redis (``RATELIMIT_STORAGE_URL``, else ``REDIS_URL``) so that every gunicorn worker and
  every web host share them; only development without a Redis falls back to memory.
* ``@limited(limits)``: the forms that can send a text (the petition page, the API's
  signatures) fall under several limits at once; this counts them all in one round trip
  (:mod:`sms_service.web.limits`, same storage) and flask-limiter leaves the view alone.

The Content-Security-Policy allows nothing from outside the service and no inline script
or style: templates link ``/static`` files, and charts are inline SVG drawn on the server
with presentation attributes (``fill=``), which CSP does not govern.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import TooManyRequests

from config import Settings
from sms_service.web.limits import RequestLimits

log = logging.getLogger(__name__)

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Console URLs can carry a phone number (?number=...): never hand them to another site.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000; includeSubDomains"
LIMITER_KEY_PREFIX = "sms_limits"


def client_ip() -> str:
    """The caller's address: the peer's, or as ProxyFix resolved it from X-Forwarded-For
    when TRUSTED_PROXIES says proxies stand in front."""
    return request.remote_addr or "unknown"


csrf = CSRFProtect()
# No X-RateLimit-* headers on every answer: each costs a storage round trip per limit on
# every limited request (the petition form has two limits). A refusal still says when to
# come back (Retry-After, :func:`init_security`).
limiter = Limiter(client_ip, key_prefix=LIMITER_KEY_PREFIX, headers_enabled=False)


def exempt_from_csrf(blueprint: Blueprint) -> Blueprint:
    """Exempt ``blueprint`` from CSRF; only for callers that authenticate without cookies."""
    csrf.exempt(blueprint)
    return blueprint


def twilio_webhook(blueprint: Blueprint) -> Blueprint:
    """Exempt Twilio's webhooks from CSRF (they are signed instead) and from rate limits (a
    refused webhook is a text Twilio retries later or drops; the signature keeps everyone
    else out, and the limiter's bookkeeping would cost every text of a burst)."""
    csrf.exempt(blueprint)
    _WEBHOOK_BLUEPRINTS.add(blueprint.name)  # the limiter's request filter below
    return blueprint


# Twilio's webhook blueprints: the limiter skips them before any of its bookkeeping.
_WEBHOOK_BLUEPRINTS: set[str] = set()


@limiter.request_filter
def _is_twilio_webhook() -> bool:
    return request.blueprint in _WEBHOOK_BLUEPRINTS


@limiter.request_filter
def _counts_own_limits() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "counts_own_limits", False)


def limited(limits: Callable[[], Sequence[tuple[str, str]]]) -> Callable:
    """Count every request to the view under ``limits()``, ``(limit text, key)`` pairs such
    as ``(settings.petition_rate_limit_ip, "ip:" + client_ip())``, in one round trip before
    it runs (:class:`~sms_service.web.limits.RequestLimits`); past any of them, 429 with
    ``Retry-After`` and the view does not run. flask-limiter skips the view."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def counted(*args, **kwargs):
            wait = current_app.extensions["sms_limits"].hit(limits())
            if wait is not None:
                log.info("rate limit reached at %s: retry after %s s", request.endpoint, wait)
                g.retry_after = wait
                raise TooManyRequests(retry_after=wait)
            return view(*args, **kwargs)

        counted.counts_own_limits = True  # type: ignore[attr-defined]
        return counted

    return decorate


def limiter_storage_uri(settings: Settings) -> str:
    """Where rate-limit counters live: shared Redis, or memory for Redis-less development.

    Production always uses Redis (a per-process memory store would let an attacker multiply
    the login limit by the number of gunicorn workers), and fails loudly if it is down.
    """
    if settings.ratelimit_storage_url:
        return settings.ratelimit_storage_url
    if settings.is_production:
        return settings.redis_url
    from sms_service.redis_ping import redis_answers

    if redis_answers(settings.redis_url):
        return settings.redis_url
    log.warning("no Redis at the REDIS_URL: rate limits are counted per process (dev only)")
    return "memory://"


def _refuse_nul() -> None:
    """A 400 for a NUL character anywhere in the query string or a form, before any view
    reads it: no browser sends one, PostgreSQL cannot store one (a value holding it fails
    as a 500 wherever it reaches a query), and a name or an address never holds one.
    Twilio's signed webhooks are left to their own cleaning: a refused text is retried,
    then lost."""
    if request.blueprint in _WEBHOOK_BLUEPRINTS:
        return
    if "\x00" in request.path:  # a path's part (a keyword, a number) reaches queries too
        abort(404)
    for fields in (request.args, request.form):
        for key, value in fields.items(multi=True):
            if "\x00" in key or "\x00" in value:
                abort(400, description="A field holds a NUL character, which no text may hold.")


def init_security(app: Flask, settings: Settings) -> None:
    """Configure cookies, CSRF, the rate limiter and the security headers on ``app``."""
    secure = settings.is_production
    app.config.update(
        SESSION_COOKIE_NAME="__Host-sms_session" if secure else "sms_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_idle_minutes),
        # Each request moves the expiry on: the lifetime is an idle timeout.
        SESSION_REFRESH_EACH_REQUEST=True,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        # The token lives as long as the session; an hour-old form still submits.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=secure,
    )
    storage = limiter_storage_uri(settings)
    app.config["RATELIMIT_STORAGE_URI"] = storage
    if storage.startswith("redis"):
        # A Redis outage should answer 500 quickly, not hang every login for a minute.
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": 2, "socket_timeout": 2}
    app.before_request(_refuse_nul)  # first: CSRF's check reads the form too
    csrf.init_app(app)
    limiter.init_app(app)
    app.extensions["sms_limits"] = RequestLimits(storage, prefix=LIMITER_KEY_PREFIX)

    @app.after_request
    def _retry_after(response: Response) -> Response:
        # When the limit that refused this request resets, as the limiter's headers said.
        if response.status_code == 429 and "Retry-After" not in response.headers:
            if "retry_after" in g:  # refused by @limited
                response.headers["Retry-After"] = str(g.retry_after)
                return response
            current = limiter.current_limit
            if current is not None:
                wait = max(1, math.ceil(current.reset_at - time.time()))
                response.headers["Retry-After"] = str(wait)
        return response

    headers = response_headers(settings)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response


def response_headers(settings: Settings) -> dict[str, str]:
    """The headers every answer carries (unless a view set its own): the security headers,
    and HSTS in production."""
    if settings.is_production:
        return {**SECURITY_HEADERS, "Strict-Transport-Security": HSTS}
    return dict(SECURITY_HEADERS)
