"""Compliance proof pages: the evidence pack download, verification and checkpoint, an
opt-out recorded by staff, and a suppression import followed to its report."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import text

from tests.factories import csrf_token_from, log_in, make_staff, text_in


@pytest.fixture
def compliance(app, redis_connection):
    make_staff(app, "compliance")
    client = app.test_client()
    log_in(client, "compliance@rights.example")
    client.token = csrf_token_from(client.get("/console/").text)
    return client


def test_evidence_pack_downloads_as_a_zip_and_is_audited(app, compliance):
    text_in(app.test_client(), app.config["SETTINGS"], "+12025550123", "JOIN")
    response = compliance.get("/console/lookup/evidence.zip?number=%2B12025550123")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    assert any(n.endswith("consent_events.csv") for n in names)
    assert any(n.endswith("index.html") for n in names)
    assert compliance.get("/console/lookup/evidence.zip?number=nope").status_code == 400
    with app.extensions["sms_engine"].connect() as conn:
        actions = list(conn.execute(text("SELECT action FROM audit_log")).scalars())
    assert "evidence.download" in actions


def test_verify_and_checkpoint(app, compliance):
    text_in(app.test_client(), app.config["SETTINGS"], "+12025550123", "JOIN")
    checkpoint = compliance.get("/console/verify/checkpoint.json")
    assert checkpoint.status_code == 200
    head = json.loads(checkpoint.data)
    assert head["count"] >= 1
    page = compliance.post("/console/verify", data={"csrf_token": compliance.token})
    assert page.status_code == 200 and "ok:" in page.text


def test_staff_opt_out_is_recorded_against_the_signed_in_user(app, compliance):
    text_in(app.test_client(), app.config["SETTINGS"], "+12025550123", "JOIN")
    response = compliance.post(
        "/console/opt-outs",
        data={"csrf_token": compliance.token, "phone": "(202) 555-0123", "channel": "email",
              "note": "asked by email"},
    )  # fmt: skip
    assert response.status_code == 302
    with app.extensions["sms_engine"].connect() as conn:
        status = conn.execute(text("SELECT status FROM subscribers")).scalar_one()
        note = conn.execute(
            text("SELECT note FROM consent_events WHERE event = 'opt_out'")
        ).scalar_one()
    assert status == "opted_out"
    assert "compliance@rights.example" in note and "email" in note


def test_suppression_import_runs_as_a_job_with_progress_and_a_rejected_lines_report(
    app, compliance, redis_connection, monkeypatch, database_url
):
    from rq import Queue, SimpleWorker

    from workers import QUEUE_DEFAULT, context

    text_in(app.test_client(), app.config["SETTINGS"], "+12025550123", "JOIN")
    monkeypatch.setenv("DATABASE_URL", database_url)
    context.reset()
    csv_file = b"phone\n+12025550123\nnot a number\n+12025550199\n"
    response = compliance.post(
        "/console/imports",
        data={"csrf_token": compliance.token, "kind": "suppression",
              "file": (io.BytesIO(csv_file), "dnc.csv")},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert response.status_code == 302
    status_url = response.headers["Location"]
    assert compliance.get(status_url + ".json").get_json()["status"] == "queued"
    queue = Queue(QUEUE_DEFAULT, connection=redis_connection)
    SimpleWorker([queue], connection=redis_connection).work(burst=True)
    context.reset()
    state = compliance.get(status_url + ".json").get_json()
    assert state["status"] == "finished", state
    assert state["done"] == state["total"] > 0
    report = state["report"]
    assert report["changed"] == 2 and report["rejected"] + report["skipped_invalid"] == 1
    page = compliance.get(status_url).text
    assert 'id="i-changed">2<' in page
    with app.extensions["sms_engine"].connect() as conn:
        statuses = dict(conn.execute(text("SELECT phone, status FROM subscribers")).all())
    assert statuses == {"+12025550123": "opted_out", "+12025550199": "opted_out"}
