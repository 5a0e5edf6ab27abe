"""The evidence pack and the message log, for a number that signed, got a broadcast and
texted STOP: every part of it in the pack, on PostgreSQL and SQLite."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
import redis

from sms_service import broadcasts
from sms_service.db import session_scope
from sms_service.domain.replies import opt_out_confirmation
from sms_service.program import program_from
from sms_service.services.campaigns import create_campaign
from sms_service.services.consent_chain import seal_all
from sms_service.services.evidence import FILES, DirectorySink, write_evidence, write_evidence_zip
from sms_service.services.exports import ExportFilter
from sms_service.services.messages import write_messages
from tests.factories import (
    clear_sim,
    make_run_sender,
    runs_of,
    schedule_broadcast,
    sending_settings,
    text_in,
)
from tests.redis_db import redis_url

PHONE = "+12025550123"
OTHER = "+12025550199"
HOSTILE_NAME = "Ada <script>alert(1)</script> & co"
BROADCAST = 'Rally at <b>city hall</b> 6pm "today"'


@pytest.fixture
def settings(database_url, module_sim):
    return sending_settings(database_url, module_sim.url)


@pytest.fixture
def engine(app):
    return app.extensions["sms_engine"]


def send_broadcast(engine, settings, module_sim) -> None:
    clear_sim(module_sim.url)
    broadcast_id, _ = schedule_broadcast(engine, "all", body=BROADCAST)
    with session_scope(engine) as session:
        started = broadcasts.begin_run(session=session, run_id=runs_of(engine, broadcast_id)[0].id)
    connection = redis.Redis.from_url(redis_url())
    sender, pool = make_run_sender(
        engine, settings, connection, key="test:evidence:throttle", chunk=10, concurrency=2
    )
    try:
        assert sender.send_run(started.run_id).sent == 2
    finally:
        pool.close()
        connection.close()


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_pack_holds_signature_broadcast_and_stop(
    client, settings, engine, module_sim, tmp_path
):
    with session_scope(engine) as session:
        create_campaign(session=session, keyword="HK64", title="Release the 64")
    text_in(client, settings, PHONE, "SIGN")
    text_in(client, settings, PHONE, HOSTILE_NAME)
    text_in(client, settings, OTHER, "JOIN")
    send_broadcast(engine, settings, module_sim)
    text_in(client, settings, PHONE, "STOP")
    seal_all(engine)

    summary = write_evidence(engine, PHONE, DirectorySink(tmp_path / "pack"))
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == sorted(FILES)
    assert summary.verdict.ok and summary.sent_after_opt_out == 0 and summary.status == "opted_out"

    events = read_csv(tmp_path / "pack" / "consent_events.csv")
    assert [e["event"] for e in events] == ["signature", "opt_in", "opt_out"]
    assert all(e["matches_seal"] == "yes" and len(e["hash"]) == 64 for e in events)
    assert "Msg & data rates may apply" in events[0]["disclosure"]
    assert events[0]["campaign"] == "HK64" and events[2]["message_body"] == "STOP"
    assert events[2]["disclosure"] == opt_out_confirmation(program_from(settings))

    messages = read_csv(tmp_path / "pack" / "messages.csv")
    kinds = [(m["direction"], m["kind"]) for m in messages]
    assert kinds == [
        ("in", "inbound"), ("out", "keyword_reply"),  # SIGN
        ("in", "inbound"), ("out", "keyword_reply"),  # the name
        ("out", "broadcast"),
        ("in", "inbound"), ("out", "keyword_reply"),  # STOP and its one confirmation
    ]  # fmt: skip
    broadcast = messages[4]
    assert broadcast["body"] == BROADCAST and broadcast["sid"].startswith("SM")
    assert broadcast["status"] in ("sent", "queued", "delivered")
    assert {m["phone_number"] for m in messages} == {PHONE}

    [signature] = read_csv(tmp_path / "pack" / "signatures.csv")
    # Name capture refuses markup as a name; the text itself is kept as received.
    assert signature["campaign"] == "HK64" and signature["name"] != HOSTILE_NAME
    assert messages[2]["body"] == HOSTILE_NAME
    [status] = read_csv(tmp_path / "pack" / "status.csv")
    assert status["status"] == "opted_out" and status["status_changed_at"]
    checks = {r["check"]: r["result"] for r in read_csv(tmp_path / "pack" / "verification.csv")}
    assert checks["chain_verified"] == "yes" and checks["chain_events"] == "4"
    assert checks["chain_head_hash"] == summary.verdict.head.hash

    page = (tmp_path / "pack" / "index.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "&lt;b&gt;city hall&lt;/b&gt;" in page and "<b>city" not in page
    assert summary.verdict.head.hash in page and 'src="' not in page and "href=" not in page

    archive = io.BytesIO()
    write_evidence_zip(engine, PHONE, archive)
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == sorted(f"evidence-12025550123/{n}" for n in FILES)
        assert z.read("evidence-12025550123/messages.csv").decode().count("\n") == 8


def test_message_log_export_filters_and_streams(client, settings, engine, module_sim):
    text_in(client, settings, PHONE, "JOIN")
    text_in(client, settings, OTHER, "JOIN")
    send_broadcast(engine, settings, module_sim)
    out = io.StringIO()
    assert write_messages(engine, out, ExportFilter()) == 6
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["kind"] for r in rows].count("broadcast") == 2
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    mine = io.StringIO()
    assert write_messages(engine, mine, ExportFilter(phone=PHONE)) == 3
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert write_messages(engine, io.StringIO(), ExportFilter(since=later)) == 0


def test_message_log_copy_and_row_paths_write_the_same_bytes(pg_db):
    from sms_service.db import make_engine
    from sms_service.models import InboundMessage, OutboundMessage
    from sms_service.services.exports import write_export
    from sms_service.services.messages import message_export

    engine = make_engine(pg_db)
    try:
        with session_scope(engine) as s:
            s.add(InboundMessage(message_sid="SM" + "1" * 32, from_number=PHONE, to_number="21333",
                                 body='=HYPERLINK("http://x") stop, "now"\nplease',
                                 intent="opt_out", reply="@you: bye"))  # fmt: skip
            s.add(OutboundMessage(to_number=PHONE, body="-1 day left", status="failed",
                                  error_code=30005, kind="system"))  # fmt: skip
        outs = {}
        for use_copy in (True, False):
            for raw in (True, False):
                buffer = io.BytesIO()
                rows = write_export(engine, buffer, message_export(ExportFilter()), raw=raw,
                                    use_copy=use_copy)  # fmt: skip
                assert rows == 3
                outs[use_copy, raw] = buffer.getvalue()
        assert outs[True, False] == outs[False, False] and outs[True, True] == outs[False, True]
        safe = outs[False, False].decode()
        assert "'=HYPERLINK" in safe and "'@you: bye" in safe and "'-1 day left" in safe
        assert ",30005," in safe and "'=" not in outs[False, True].decode()
    finally:
        engine.dispose()
