"""Console pages through the app: campaigns, the composer's estimate and forecast,
scheduling and cancelling, subscribers and tags, exports, the dashboard's figures."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text

from sms_service.models import Broadcast, BroadcastDelivery, Campaign
from tests.factories import (
    add_subscribers,
    csrf_token_from,
    log_in,
    make_staff,
    phone,
    sent_runs,
    text_in,
    zone_at_local_hour,
)


@pytest.fixture
def organiser(app, redis_connection):
    """An organiser's signed-in client; what it enqueues lands in this run's Redis, emptied
    after the test."""
    make_staff(app, "organiser")
    client = app.test_client()
    log_in(client, "organiser@rights.example")
    client.token = csrf_token_from(client.get("/console/").text)
    return client


@pytest.fixture
def compliance(app):
    make_staff(app, "compliance")
    client = app.test_client()
    log_in(client, "compliance@rights.example")
    client.token = csrf_token_from(client.get("/console/").text)
    return client


def post(client, url, **form):
    return client.post(url, data={"csrf_token": client.token, **form})


def estimate(client, **data):
    return client.post("/console/broadcasts/estimate", json=data,
                       headers={"X-CSRFToken": client.token})  # fmt: skip


def test_campaign_create_edit_and_choose_what_plain_sign_signs(app, organiser):
    settings = app.config["SETTINGS"]
    first = post(organiser, "/console/campaigns/", keyword="hk64", title="Release the 64")
    assert first.status_code == 302
    post(organiser, "/console/campaigns/", keyword="CLIMATE", title="Climate now")
    engine = app.extensions["sms_engine"]
    with engine.connect() as conn:
        ids = dict(conn.execute(select(Campaign.keyword, Campaign.id)).all())
    # Plain SIGN signs the newest active campaign until one is chosen.
    assert "Climate now" in text_in(app.test_client(), settings, "+12025550111", "SIGN").text
    post(organiser, f"/console/campaigns/{ids['HK64']}/default")
    assert "Release the 64" in text_in(app.test_client(), settings, "+12025550112", "SIGN").text
    post(organiser, f"/console/campaigns/{ids['HK64']}", title="Free the 64", text="Dear ...")
    page = organiser.get(f"/console/campaigns/{ids['HK64']}").text
    assert "Free the 64" in page and 'id="signature-count">1<' in page
    assert "+1********12" in page  # an organiser sees the signer masked
    post(organiser, f"/console/campaigns/{ids['HK64']}/active", active="0")
    with engine.connect() as conn:
        row = conn.execute(select(Campaign).where(Campaign.id == ids["HK64"])).one()
    assert not row.active and not row.sign_default
    refused = post(organiser, "/console/campaigns/", keyword="STOP", title="x")
    assert "reserved keyword" in organiser.get(refused.headers["Location"]).text


def test_estimate_counts_segments_warns_of_ucs2_and_forecasts_cap_and_quiet_hours(app, organiser):
    engine = app.extensions["sms_engine"]
    noon = zone_at_local_hour(12)  # never in quiet hours, whatever the time of the run
    plain = add_subscribers(engine, 5, timezone=noon)
    capped = add_subscribers(engine, 3, start=5, timezone=noon)
    night = add_subscribers(engine, 2, start=8, timezone=zone_at_local_hour(3))
    sent_runs(engine, [capped] * 4, days_ago=2)  # four texts each: at the cap
    response = estimate(organiser, body="It\u2019s time", audience="all")
    data = response.get_json()
    assert response.status_code == 200, data
    assert data["encoding"] == "UCS-2" and "\u2019" in data["warning"]
    assert data["gsm_safe_body"] == "It's time"
    assert data["audience"] == len(plain) + len(capped) + len(night) == 10
    assert data["capped"] == 3
    assert data["deferred"] == 2 and data["deferred_until"]
    assert data["sends"] == 7
    assert data["cost"] == f"{7 * app.config['SETTINGS'].cost_per_segment:.2f}"
    past = estimate(organiser, body="x", audience="all", send_at="2020-01-01T09:00")
    assert past.status_code == 400 and "in the past" in past.get_json()["error"]


def test_schedule_refuses_the_past_then_schedules_and_cancels(app, organiser):
    engine = app.extensions["sms_engine"]
    add_subscribers(engine, 2)
    refused = post(organiser, "/console/broadcasts/", body="Hello", audience="all",
                   send_at="2020-01-01T09:00")  # fmt: skip
    assert refused.headers["Location"].endswith("/console/broadcasts/new")
    with engine.connect() as conn:
        assert conn.execute(select(Broadcast)).first() is None
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    created = post(organiser, "/console/broadcasts/", body="Rally on Friday", audience="all",
                   send_at=later, action="schedule")  # fmt: skip
    assert created.status_code == 302
    broadcast_id = int(created.headers["Location"].rsplit("/", 1)[1])
    status = organiser.get(f"/console/broadcasts/{broadcast_id}/progress.json").get_json()
    assert status["status"] == "scheduled" and status["can_cancel"]
    post(organiser, f"/console/broadcasts/{broadcast_id}/cancel")
    status = organiser.get(f"/console/broadcasts/{broadcast_id}/progress.json").get_json()
    assert status["status"] == "cancelled" and not status["can_cancel"]
    with engine.connect() as conn:
        actions = list(conn.execute(text("SELECT action FROM audit_log ORDER BY id")).scalars())
    assert actions[-2:] == ["broadcast.schedule", "broadcast.cancel"]


def test_draft_is_saved_unscheduled(app, organiser):
    created = post(organiser, "/console/broadcasts/", body="Draft text", audience="all",
                   action="draft")  # fmt: skip
    broadcast_id = int(created.headers["Location"].rsplit("/", 1)[1])
    status = organiser.get(f"/console/broadcasts/{broadcast_id}/progress.json").get_json()
    assert status["status"] == "draft" and status["can_schedule"] and status["run"] is None


def test_compliance_cannot_write_broadcasts_but_reads_them(app, compliance):
    assert compliance.get("/console/broadcasts/").status_code == 200
    assert post(compliance, "/console/broadcasts/", body="x", audience="all").status_code == 403


def test_subscriber_search_by_number_and_name_and_tags(app, organiser):
    engine = app.extensions["sms_engine"]
    [first, second] = add_subscribers(engine, 2)
    with engine.begin() as conn:
        conn.execute(text("UPDATE subscribers SET name = 'Ada Lovelace' WHERE id = :i"),
                     {"i": second})  # fmt: skip
    by_number = organiser.get("/console/subscribers/?q=" + phone(0).replace("+", "%2B")).text
    assert f"/console/subscribers/{first}" in by_number
    assert f"/console/subscribers/{second}" not in by_number
    formatted = "(" + phone(0)[2:5] + ") " + phone(0)[5:8] + "-" + phone(0)[8:]
    assert (
        f"/console/subscribers/{first}"
        in organiser.get(f"/console/subscribers/?q={formatted}").text
    )
    by_name = organiser.get("/console/subscribers/?q=ada").text
    assert f"/console/subscribers/{second}" in by_name and "Ada Lovelace" in by_name
    assert f'/console/subscribers/{first}"' not in by_name
    post(organiser, f"/console/subscribers/{first}/tags", add="Volunteers")
    assert "volunteers" in organiser.get(f"/console/subscribers/{first}").text
    assert estimate(organiser, body="x", audience="tag", tag="volunteers").get_json()[
        "audience"] == 1  # fmt: skip
    post(organiser, f"/console/subscribers/{first}/tags", remove="volunteers")
    assert "volunteers" not in organiser.get(f"/console/subscribers/{first}").text


def test_exports_stream_a_csv_for_the_date_range(app, compliance):
    settings = app.config["SETTINGS"]
    text_in(app.test_client(), settings, "+12025550123", "JOIN")
    text_in(app.test_client(), settings, "+12025550123", "STOP")
    today = datetime.now(UTC).date()
    since, until = today - timedelta(days=1), today + timedelta(days=1)
    response = compliance.get(f"/console/exports/optouts.csv?since={since}&until={until}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith('attachment; filename="optouts-')
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["occurred_at", "phone_number", "event"]
    assert [r[1:3] for r in rows[1:]] == [["+12025550123", "opt_out"]]
    empty = compliance.get("/console/exports/consent.csv?since=2001-01-01&until=2001-01-02")
    assert len(list(csv.reader(io.StringIO(empty.get_data(as_text=True))))) == 1


def test_dashboard_charts_come_from_sql_aggregates(app, organiser):
    settings = app.config["SETTINGS"]
    for n in range(3):
        text_in(app.test_client(), settings, f"+1202555013{n}", "JOIN")
    text_in(app.test_client(), settings, "+12025550130", "STOP")
    page = organiser.get("/console/").text
    assert 'id="subscribed">2<' in page
    assert "<svg" in page and "opt-ins (3)" in page and "opt-outs (1)" in page
    assert "<script" not in page  # the dashboard needs no script at all


def test_test_send_goes_only_to_the_users_own_phone_and_is_rate_limited(
    app, organiser, redis_connection
):
    refused = post(organiser, "/console/broadcasts/test", body="Test")
    assert refused.status_code == 400 and "no phone" in refused.get_json()["error"]
    make_staff(app, "admin", phone="+12025550100")
    admin = app.test_client()
    log_in(admin, "admin@rights.example")
    admin.token = csrf_token_from(admin.get("/console/").text)
    codes = [post(admin, "/console/broadcasts/test", body="Test", test_phone="+12025550199")
             .status_code for _ in range(11)]  # fmt: skip
    assert codes[:10] == [200] * 10 and codes[10] == 429
    engine = app.extensions["sms_engine"]
    with engine.connect() as conn:
        sent_to = set(conn.execute(text("SELECT to_number FROM outbound_messages")).scalars())
    assert sent_to == {"+12025550100"}  # the typed number was ignored
    assert redis_connection.llen("rq:queue:default") == 10


def test_progress_counts_opt_outs_after_the_text(app, organiser):
    from sms_service.models import BroadcastRun

    engine = app.extensions["sms_engine"]
    ids = add_subscribers(engine, 4)
    created = post(organiser, "/console/broadcasts/", body="Rally", audience="all",
                   action="draft")  # fmt: skip
    broadcast_id = int(created.headers["Location"].rsplit("/", 1)[1])
    earlier = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(BroadcastRun.__table__).values(
                broadcast_id=broadcast_id, occurrence_at=earlier, status="sent", planned=4,
                created_at=earlier, started_at=earlier,
            ).returning(BroadcastRun.__table__.c.id)
        ).scalar_one()  # fmt: skip
        conn.execute(insert(BroadcastDelivery.__table__), [
            dict(run_id=run_id, subscriber_id=s, status="sent", attempts=1, sent_at=earlier,
                 updated_at=earlier) for s in ids
        ])  # fmt: skip
        conn.execute(text("UPDATE broadcasts SET status = 'sent' WHERE id = :i"),
                     {"i": broadcast_id})  # fmt: skip
    settings = app.config["SETTINGS"]
    text_in(app.test_client(), settings, phone(1), "STOP")  # after the text: counts
    text_in(app.test_client(), settings, "+12025550100", "STOP")  # not a recipient
    data = organiser.get(f"/console/broadcasts/{broadcast_id}/progress.json").get_json()
    assert data["run"]["counts"]["sent"] == 4
    assert data["opt_outs"] == 1 and data["opt_out_rate"] == "25.0%"


def test_a_draft_is_opened_edited_saved_and_scheduled_and_each_step_audited(app, organiser):
    engine = app.extensions["sms_engine"]
    add_subscribers(engine, 2, tag="volunteers")
    later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    created = post(organiser, "/console/broadcasts/", body="Draft text", audience="all",
                   send_at=later, action="draft")  # fmt: skip
    broadcast_id = int(created.headers["Location"].rsplit("/", 1)[1])
    assert (
        f"/console/broadcasts/{broadcast_id}/edit"
        in organiser.get(f"/console/broadcasts/{broadcast_id}").text
    )
    page = organiser.get(f"/console/broadcasts/{broadcast_id}/edit").text
    assert ">Draft text</textarea>" in page and f'value="{later}"' in page
    assert f'action="/console/broadcasts/{broadcast_id}"' in page
    saved = post(organiser, f"/console/broadcasts/{broadcast_id}", body="Volunteers: bring water",
                 audience="tag", tag="volunteers", send_at=later, recurrence="weekly",
                 action="draft")  # fmt: skip
    assert saved.headers["Location"].endswith(f"/console/broadcasts/{broadcast_id}")
    with engine.connect() as conn:
        row = conn.execute(select(Broadcast).where(Broadcast.id == broadcast_id)).one()
    assert (row.body, row.audience_kind, row.audience_value, row.recurrence, row.status) == (
        "Volunteers: bring water",
        "tag",
        "volunteers",
        "weekly",
        "draft",
    )
    page = organiser.get(f"/console/broadcasts/{broadcast_id}/edit").text
    assert "<option selected>weekly</option>" in page and 'value="tag" checked' in page
    # A past time is refused when saving, and the draft stays as it was.
    refused = post(organiser, f"/console/broadcasts/{broadcast_id}", body="x", audience="all",
                   send_at="2020-01-01T09:00", action="draft")  # fmt: skip
    assert refused.headers["Location"].endswith(f"/{broadcast_id}/edit")
    assert "in the past" in organiser.get(refused.headers["Location"]).text
    post(
        organiser,
        f"/console/broadcasts/{broadcast_id}",
        body="Volunteers: bring water!",
        audience="tag",
        tag="volunteers",
        send_at=later,
        action="schedule",
    )
    status = organiser.get(f"/console/broadcasts/{broadcast_id}/progress.json").get_json()
    assert status["status"] == "scheduled" and status["body"] == "Volunteers: bring water!"
    # Scheduled: no longer a draft, so no more edits.
    again = post(organiser, f"/console/broadcasts/{broadcast_id}", body="changed", audience="all",
                 send_at=later, action="draft")  # fmt: skip
    assert (
        "only a draft can be edited"
        in organiser.get(again.headers["Location"], follow_redirects=True).text
    )
    assert organiser.get(f"/console/broadcasts/{broadcast_id}/edit").status_code == 302
    with engine.connect() as conn:
        actions = list(
            conn.execute(
                text("SELECT action FROM audit_log WHERE target = :t ORDER BY id"),
                {"t": str(broadcast_id)},
            ).scalars()
        )
        body = conn.execute(select(Broadcast.body).where(Broadcast.id == broadcast_id)).scalar()
    assert actions == ["broadcast.draft", "broadcast.edit", "broadcast.edit", "broadcast.schedule"]
    assert body == "Volunteers: bring water!"
