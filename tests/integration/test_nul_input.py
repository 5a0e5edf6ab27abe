"""A NUL character in any web input (query string, form field, path) is a 4xx on every
route of the app, never a 500 from PostgreSQL, which cannot store one; Twilio's signed
webhooks keep cleaning their text instead (a refused text is retried, then lost)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from sms_service.models import AuditEntry, InboundMessage, StaffUser, Subscriber
from tests.factories import (
    build_url,
    csrf_token_from,
    log_in,
    make_staff,
    text_arguments,
    text_in,
)

FIELDS = ["email", "password", "q", "number", "phone", "name", "body", "keyword", "title",
          "note", "decision", "tag", "since", "until", "status", "kind", "audience"]  # fmt: skip
WEBHOOKS = ("sms.", "status.")


def routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(WEBHOOKS) or rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def build(rule, text: str) -> str:
    return build_url(rule, number=1, text=text)


def test_every_route_answers_a_nul_with_a_4xx(app):
    make_staff(app, "admin")
    client = app.test_client()
    assert log_in(client, "admin@rights.example").status_code == 302
    token = csrf_token_from(client.get("/console/").text)
    walked = 0
    for rule, method in routes(app):
        if rule.endpoint.endswith("logout"):
            continue
        form = {field: "a\x00b" for field in FIELDS} | {"csrf_token": token}
        tries = [(build(rule, "HK64") + "?q=a%00b&number=%2B1202%00", None)]
        if method == "POST":
            tries.append((build(rule, "HK64"), form))
        if text_arguments(rule):
            tries.append((build(rule, "HK\x0064"), form if method == "POST" else None))
        for url, data in tries:
            response = client.open(url, method=method, data=data)
            assert 400 <= response.status_code < 500, (method, url, response.status_code)
            walked += 1
    assert walked > 60  # the walk really covers the app
    # A refused action is still audited, the path as it came, legibly.
    with Session(app.extensions["sms_engine"]) as s:
        targets = [e.target for e in s.execute(select(AuditEntry)).scalars()]
    assert any("\\x00" in t for t in targets if t)


def test_a_nul_in_the_sign_in_form_is_a_400_and_signs_nobody_in(app, client):
    make_staff(app, "admin")
    token = csrf_token_from(client.get("/login").text)
    for email in ["admin@rights.example\x00", "\x00"]:
        response = client.post(
            "/login", data={"email": email, "password": "x", "csrf_token": token}
        )
        assert response.status_code == 400
    assert client.get("/console/").status_code == 302  # still signed out
    with Session(app.extensions["sms_engine"]) as s:
        assert len(s.execute(select(StaffUser)).scalars().all()) == 1


def test_a_signed_text_with_a_nul_is_still_taken_and_stops(app, client, settings):
    response = text_in(client, settings, "+12025550123", "STOP\x00")
    assert response.status_code == 200
    with Session(app.extensions["sms_engine"]) as s:
        [message] = s.execute(select(InboundMessage)).scalars()
        assert "\x00" not in message.body
        assert s.execute(select(Subscriber.status)).scalar_one() == "opted_out"


@pytest.mark.parametrize("job_id", ["x\x00y", "../etc", "a" * 200, "send-1"])
def test_an_import_page_for_no_import_job_is_a_404(app, job_id):
    make_staff(app, "compliance")
    client = app.test_client()
    assert log_in(client, "compliance@rights.example").status_code == 302
    assert client.get(f"/console/imports/{job_id}").status_code == 404
    assert client.get(f"/console/imports/{job_id}.json").status_code == 404


def test_an_import_page_shows_an_import_job_and_no_other_kind(app, redis_connection):
    from rq import Queue

    queue = Queue("default", connection=redis_connection)
    queue.enqueue("workers.imports.run_import", "subscribers", "/nowhere.csv", {}, job_id="imp-1")
    queue.enqueue("os.getcwd", job_id="not-an-import")
    make_staff(app, "compliance")
    client = app.test_client()
    assert log_in(client, "compliance@rights.example").status_code == 302
    assert client.get("/console/imports/imp-1.json").status_code == 200
    assert client.get("/console/imports/not-an-import.json").status_code == 404
