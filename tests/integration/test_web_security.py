"""The web app's shared security: headers, CSRF (webhooks exempt), rate limits, cookies."""

from __future__ import annotations

import re

import pytest
from flask import render_template_string, session

from sms_service import create_app
from sms_service.web.security import limiter, limiter_storage_uri
from tests.factories import make_settings, text_in
from tests.redis_db import redis_url


@pytest.fixture
def sqlite_app(sqlite_url):
    """An app on SQLite with two extra routes: a form that posts, and a limited one."""
    app = create_app(make_settings(sqlite_url))
    app.config["TESTING"] = True

    @app.route("/t/form", methods=["GET", "POST"])
    def form():
        session["seen"] = True
        return render_template_string('<input name="csrf_token" value="{{ csrf_token() }}">')

    @app.get("/t/limited")
    @limiter.limit("2/minute")
    def limited():
        return "ok"

    yield app
    app.extensions["sms_engine"].dispose()


def test_every_response_carries_the_security_headers(sqlite_app):
    response = sqlite_app.test_client().get("/healthz")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert not re.search(r"https?:", csp)  # nothing from outside the service
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # only in production


def test_a_post_without_the_csrf_token_is_refused(sqlite_app):
    client = sqlite_app.test_client()
    page = client.get("/t/form")
    assert client.post("/t/form", data={}).status_code == 400
    token = re.search(r'value="([^"]+)"', page.text).group(1)
    assert client.post("/t/form", data={"csrf_token": token}).status_code == 200
    assert client.post("/t/form", data={"csrf_token": token[:-2] + "xx"}).status_code == 400


def test_twilio_webhooks_need_no_csrf_token(sqlite_app):
    settings = sqlite_app.config["SETTINGS"]
    response = text_in(sqlite_app.test_client(), settings, "+12025550123", "JOIN")
    assert response.status_code == 200 and "<Message>" in response.text


def test_the_limiter_answers_429_past_the_limit(sqlite_app):
    client = sqlite_app.test_client()
    assert [client.get("/t/limited").status_code for _ in range(3)] == [200, 200, 429]


def test_session_cookie_is_httponly_and_lax_in_development(sqlite_app):
    client = sqlite_app.test_client()
    client.get("/t/form")
    cookie = client.get_cookie("sms_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert not cookie.secure


def test_production_cookie_is_secure_host_only_and_hsts_is_sent(sqlite_url):
    settings = make_settings(
        sqlite_url, app_env="production", secret_key="s" * 40, twilio_account_sid="AC" + "2" * 32
    )
    app = create_app(settings)

    @app.get("/t/session")
    def touch():
        session["seen"] = True
        return "ok"

    client = app.test_client()
    response = client.get("/t/session", base_url="https://sms.rights.example")
    cookie_header = response.headers["Set-Cookie"]
    assert cookie_header.startswith("__Host-sms_session=")
    assert "Secure" in cookie_header and "HttpOnly" in cookie_header
    assert "SameSite=Lax" in cookie_header
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    app.extensions["sms_engine"].dispose()


def test_limits_are_counted_in_redis_when_it_answers(sqlite_url, redis_connection):
    settings = make_settings(sqlite_url, ratelimit_storage_url=None, redis_url=redis_url())
    assert limiter_storage_uri(settings) == redis_url()
    dead = make_settings(sqlite_url, ratelimit_storage_url=None, redis_url="redis://127.0.0.1:1/0")
    assert limiter_storage_uri(dead) == "memory://"
    production = dead.model_copy(update={"app_env": "production"})
    assert limiter_storage_uri(production) == "redis://127.0.0.1:1/0"  # never per process

    app = create_app(settings)

    @app.get("/t/limited")
    @limiter.limit("1/minute")
    def limited():
        return "ok"

    client = app.test_client()
    assert [client.get("/t/limited").status_code for _ in range(2)] == [200, 429]
    assert any(k.startswith(b"LIMITS") or b"sms_limits" in k for k in redis_connection.keys())
    app.extensions["sms_engine"].dispose()
