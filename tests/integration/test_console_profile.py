"""The profile page: one's own account, and a new password behind the current one."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.factories import STAFF_PASSWORD, csrf_token_from, log_in, make_staff

NEW = "a much longer new passphrase"


@pytest.fixture
def signed_in(app, redis_connection):
    make_staff(app, "compliance", phone="+12025550199", timezone="America/Chicago")
    client = app.test_client()
    assert log_in(client, "compliance@rights.example").status_code == 302
    client.token = csrf_token_from(client.get("/console/").text)
    return client


def change(client, current, new=NEW, confirm=None, token=None):
    return client.post("/console/profile/password", data={
        "csrf_token": client.token if token is None else token, "current_password": current,
        "new_password": new, "confirm_password": new if confirm is None else confirm,
    })  # fmt: skip


def audit(app) -> list[tuple]:
    with app.extensions["sms_engine"].connect() as conn:
        return conn.execute(text("SELECT action, actor, detail FROM audit_log "
                                 "WHERE action LIKE 'password%' ORDER BY id")).all()  # fmt: skip


def test_the_page_shows_the_account_to_every_role(app, signed_in):
    page = signed_in.get("/console/profile")
    assert page.status_code == 200
    assert "compliance@rights.example" in page.text and "America/Chicago" in page.text
    assert "+12025550199" in page.text  # compliance sees numbers in full
    assert 'name="current_password"' in page.text and 'id="profile-link"' in page.text


def test_a_wrong_current_password_or_mismatch_changes_nothing_and_is_audited(app, signed_in):
    wrong = change(signed_in, "not my password at all")
    assert wrong.status_code == 400 and "current password is not right" in wrong.text
    mismatch = change(signed_in, STAFF_PASSWORD, confirm=NEW + "!")
    assert mismatch.status_code == 400 and "differ" in mismatch.text
    short = change(signed_in, STAFF_PASSWORD, new="short")
    assert short.status_code == 400 and "at least 12" in short.text
    assert [a for a, _, _ in audit(app)] == ["password.change.refused"] * 3
    assert signed_in.get("/console/profile").status_code == 200  # still signed in
    assert log_in(app.test_client(), "compliance@rights.example").status_code == 302


def test_without_the_csrf_token_it_is_refused(app, signed_in):
    assert change(signed_in, STAFF_PASSWORD, token="").status_code == 400
    assert audit(app) == []
    assert log_in(app.test_client(), "compliance@rights.example").status_code == 302


def test_a_new_password_ends_other_sessions_and_keeps_this_one(app, signed_in):
    other = app.test_client()
    assert log_in(other, "compliance@rights.example").status_code == 302
    assert other.get("/console/").status_code == 200
    done = change(signed_in, STAFF_PASSWORD)
    assert done.status_code == 303 and done.headers["Location"].endswith("/console/profile")
    assert "Password changed" in signed_in.get("/console/profile").text
    assert other.get("/console/").status_code == 302  # signed out by the new token
    assert log_in(app.test_client(), "compliance@rights.example").status_code == 401
    assert log_in(app.test_client(), "compliance@rights.example", NEW).status_code == 302
    assert [(a, actor) for a, actor, _ in audit(app)] == [
        ("password.change", "compliance@rights.example")
    ]


def test_guessing_the_current_password_is_limited(app, signed_in):
    codes = [change(signed_in, f"guess number {i:04d}").status_code for i in range(6)]
    assert codes == [400] * 5 + [429]
    assert change(signed_in, STAFF_PASSWORD).status_code == 429  # even the right one waits
