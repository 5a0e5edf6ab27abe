"""Console access: sign-in, sign-out, rate limits, session end, and the route matrix that
walks every /console URL as anonymous and as each role."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, text

from sms_service.models import StaffRole
from sms_service.web.console.roles import AREAS
from tests.factories import build_url, csrf_token_from, log_in, make_staff

ROLES = [r.value for r in StaffRole]
# Values for URL arguments; an id that does not exist is fine (the check runs first).
ARGS = {"int": 999999, "default": "SM" + "0" * 32}


def console_rules(app):
    """Every (rule, method) under /console, read from the URL map."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/console"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule, method))
    return found


def build(rule) -> str:
    return build_url(rule, number=ARGS["int"], text=ARGS["default"])


def test_every_console_view_declares_a_known_area(app):
    for rule, _method in console_rules(app):
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "console_area", None) in AREAS, f"{rule.rule} declares no area"


def test_route_matrix_anonymous_redirects_and_roles_get_exactly_their_areas(app):
    rules = console_rules(app)
    assert len(rules) > 20  # the walk really covers the console
    for role in ROLES:
        make_staff(app, role)
    anonymous = app.test_client()
    token = csrf_token_from(anonymous.get("/login").text)
    for rule, method in rules:
        url = build(rule)
        response = anonymous.open(url, method=method, data={"csrf_token": token})
        assert response.status_code == 302, (method, url)
        assert response.headers["Location"].startswith("/login?next="), (method, url)
    for role in ROLES:
        client = app.test_client()
        assert log_in(client, f"{role}@rights.example").status_code == 302
        token = csrf_token_from(client.get("/console/").text)
        for rule, method in rules:
            url = build(rule)
            area = app.view_functions[rule.endpoint].console_area
            response = client.open(url, method=method, data={"csrf_token": token},
                                   headers={"X-CSRFToken": token})  # fmt: skip
            if role in AREAS[area]:
                assert response.status_code not in (302, 401, 403) or (
                    response.status_code == 302
                    and not response.headers["Location"].startswith("/login")
                ), (role, method, url, response.status_code)
                assert response.status_code < 500, (role, method, url, response.status_code)
            else:
                assert response.status_code == 403, (role, method, url, response.status_code)


def test_login_page_has_the_form_and_a_wrong_password_is_refused_and_audited(app, client):
    page = client.get("/login")
    assert page.status_code == 200
    for field in ('name="email"', 'name="password"', 'name="csrf_token"'):
        assert field in page.text
    make_staff(app, "organiser")
    response = log_in(client, "organiser@rights.example", "not the password at all")
    assert response.status_code == 401
    assert "do not match" in response.text
    assert client.get("/console/").status_code == 302
    assert log_in(client, "organiser@rights.example").status_code == 302
    assert client.get("/console/").status_code == 200
    engine = app.extensions["sms_engine"]
    with engine.connect() as conn:
        actions = conn.execute(text("SELECT action, actor FROM audit_log ORDER BY id")).all()
    assert actions == [
        ("login.failed", "organiser@rights.example"),
        ("login", "organiser@rights.example"),
    ]


def test_login_without_csrf_token_is_refused(app, client):
    make_staff(app, "admin")
    response = client.post(
        "/login", data={"email": "admin@rights.example", "password": "correct horse battery staple"}
    )
    assert response.status_code == 400
    assert client.get("/console/").status_code == 302


def test_next_only_goes_to_this_site(app, client):
    make_staff(app, "admin")
    token = csrf_token_from(client.get("/login").text)
    form = {"email": "admin@rights.example", "password": "correct horse battery staple",
            "csrf_token": token}  # fmt: skip
    response = client.post("/login?next=//evil.example/x", data=form)
    assert response.headers["Location"] == "/console/"


def test_failed_logins_are_limited_per_account(app, client):
    make_staff(app, "admin")
    codes = [log_in(client, "admin@rights.example", "wrong password!!").status_code
             for _ in range(6)]  # fmt: skip
    assert codes == [401] * 5 + [429]
    # Even the right password waits now: the limit is on the account.
    assert log_in(client, "admin@rights.example").status_code == 429
    # Another account from the same address is not locked by it.
    make_staff(app, "organiser")
    assert log_in(client, "organiser@rights.example").status_code == 302


def test_logout_ends_every_copy_of_the_session(app):
    make_staff(app, "admin")
    browser = app.test_client()
    log_in(browser, "admin@rights.example")
    stolen = browser.get_cookie("sms_session").value
    token = csrf_token_from(browser.get("/console/").text)
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("sms_session", stolen)
    response = replay.get("/console/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_disabled_account_is_signed_out_at_its_next_request(app, client):
    from sms_service.db import session_scope
    from sms_service.services import staff

    make_staff(app, "organiser")
    log_in(client, "organiser@rights.example")
    assert client.get("/console/").status_code == 200
    with session_scope(app.extensions["sms_engine"]) as session:
        staff.disable_user(session=session, email="organiser@rights.example")
    assert client.get("/console/").status_code == 302
    assert log_in(client, "organiser@rights.example").status_code == 401


def test_a_session_ends_after_the_maximum_age(app, client):
    make_staff(app, "admin")
    log_in(client, "admin@rights.example")
    with client.session_transaction() as session:
        session["login_at"] -= 13 * 3600
    assert client.get("/console/").status_code == 302


def test_session_cookie_lifetime_is_the_idle_timeout(app, client):
    make_staff(app, "admin")
    response = log_in(client, "admin@rights.example")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie


def test_audit_log_is_append_only(app):
    from sms_service.db import session_scope
    from sms_service.errors import AuditLogIsAppendOnly
    from sms_service.models import AuditEntry
    from sms_service.services import audit

    engine = app.extensions["sms_engine"]
    with session_scope(engine) as session:
        audit.record(session=session, user=None, actor="x", action="login.failed")
    with pytest.raises(AuditLogIsAppendOnly), session_scope(engine) as session:
        entry = session.execute(select(AuditEntry)).scalar_one()
        entry.action = "login"
        session.flush()
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET action = 'login'"))
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))


def test_organisers_see_masked_numbers_and_compliance_full_ones(app):
    from tests.factories import text_in

    settings = app.config["SETTINGS"]
    text_in(app.test_client(), settings, "+12025550123", "SIGN")
    from sms_service.db import session_scope
    from sms_service.services.campaigns import create_campaign

    with session_scope(app.extensions["sms_engine"]) as session:
        create_campaign(session=session, keyword="HK64", title="Release the 64")
    text_in(app.test_client(), settings, "+12025550123", "HK64")
    make_staff(app, "organiser")
    make_staff(app, "compliance")
    organiser, compliance = app.test_client(), app.test_client()
    log_in(organiser, "organiser@rights.example")
    log_in(compliance, "compliance@rights.example")
    page = organiser.get("/console/campaigns/1").text
    assert "2025550123" not in page and re.search(r"\+1\*+23", page)
    looked_up = compliance.get("/console/lookup?number=%2B12025550123").text
    assert "+12025550123" in looked_up
    assert "HK64" in looked_up


def test_every_console_action_and_download_leaves_an_audit_entry(app):
    """Walk every console rule as an admin: each request other than a GET (done or
    refused) and each download adds an entry; plain page views and the composer's live
    estimate do not. Refused attempts by another role are entries too."""
    for role in ROLES:
        make_staff(app, role)
    engine = app.extensions["sms_engine"]

    def entries() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()

    rules = console_rules(app)
    for role in ("admin", "organiser"):
        client = app.test_client()
        assert log_in(client, f"{role}@rights.example").status_code == 302
        token = csrf_token_from(client.get("/console/").text)
        for rule, method in rules:
            view = app.view_functions[rule.endpoint]
            before = entries()
            response = client.open(build(rule), method=method, data={"csrf_token": token},
                                   headers={"X-CSRFToken": token})  # fmt: skip
            download = response.headers.get("Content-Disposition", "").startswith("attachment")
            added = entries() - before
            if getattr(view, "console_reads_only", None):
                assert added == 0, (role, method, rule.rule)
            elif method != "GET" or download:
                assert added >= 1, (role, method, rule.rule, response.status_code)
            elif rule.endpoint not in ("console.compliance.lookup", "console.subscribers.show"):
                assert added == 0, (role, method, rule.rule)
    with engine.connect() as conn:
        refused = conn.execute(text(
            "SELECT action, actor, detail FROM audit_log WHERE action = 'admin.create_user.refused'"
        )).all()  # fmt: skip
    assert [(a, who) for a, who, _ in refused] == [("admin.create_user.refused",
                                                    "organiser@rights.example")]  # fmt: skip
    assert '"status": 403' in refused[0][2]


def test_downloads_are_audited_with_what_was_downloaded(app):
    make_staff(app, "compliance")
    client = app.test_client()
    log_in(client, "compliance@rights.example")
    assert client.get("/console/exports/consent.csv").status_code == 200
    assert client.get("/console/verify/checkpoint.json").status_code == 200
    response = client.get("/console/lookup/evidence.zip?number=%2B12025550100")
    engine = app.extensions["sms_engine"]
    with engine.connect() as conn:
        actions = list(conn.execute(text("SELECT action FROM audit_log ORDER BY id")).scalars())
    assert actions[:3] == ["login", "export.consent", "chain.checkpoint"]
    assert actions[3] == ("evidence.download" if response.status_code == 200
                          else "proof.evidence.refused")  # fmt: skip
