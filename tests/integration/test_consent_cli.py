"""The consent, subscribers, suppression and message-export commands, end to end."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlmodel import Session

from sms_service.cli.main import main
from sms_service.db import make_engine
from sms_service.models import ConsentEvent, OutboundMessage
from tests.factories import text_in

PHONE = "+12025550123"


@pytest.fixture
def cli(monkeypatch, settings):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens: no queue
    return CliRunner()


def run(cli, *args):
    return cli.invoke(main, list(args), catch_exceptions=False)


def tamper(url: str, sql: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS consent_events_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS consent_events_no_delete"))
            conn.execute(text("DROP TRIGGER IF EXISTS consent_seals_no_delete"))
        conn.execute(text(sql))
    engine.dispose()


def event_id(app, kind: str) -> int:
    with Session(app.extensions["sms_engine"]) as s:
        return s.execute(select(ConsentEvent.id).where(ConsentEvent.event == kind)).scalar_one()


def test_verify_and_checkpoint_catch_edits_and_cuts(cli, app, client, settings, tmp_path):
    text_in(client, settings, PHONE, "JOIN")
    text_in(client, settings, PHONE, "HELP")
    text_in(client, settings, PHONE, "STOP")
    checkpoint = tmp_path / "head.json"
    made = run(cli, "consent", "checkpoint", "-o", str(checkpoint))
    head = json.loads(checkpoint.read_text())
    assert made.exit_code == 0 and head["count"] == 3 and len(head["hash"]) == 64
    ok = run(cli, "consent", "verify", "--checkpoint", str(checkpoint))
    assert ok.exit_code == 0 and f"ok: 3 events verified, head {head['hash']}" in ok.output

    stop, help_ = event_id(app, "opt_out"), event_id(app, "help")
    tamper(settings.database_url, f"DELETE FROM consent_events WHERE id = {stop}")
    tamper(settings.database_url, f"DELETE FROM consent_seals WHERE event_id = {stop}")
    assert run(cli, "consent", "verify").exit_code == 0  # a clean cut leaves a valid chain
    cut = run(cli, "consent", "verify", "--checkpoint", str(checkpoint))
    assert cut.exit_code == 1 and f"last event {stop}" in cut.output and "cut" in cut.output

    tamper(settings.database_url, "UPDATE consent_events SET event = 'opt_in' WHERE event = 'help'")
    edited = run(cli, "consent", "verify")
    assert edited.exit_code == 1 and f"event {help_} was changed" in edited.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert run(cli, "consent", "verify", "--checkpoint", str(bad)).exit_code == 2


def test_staff_opt_out_and_evidence_from_the_cli(cli, app, client, settings, tmp_path):
    text_in(client, settings, PHONE, "JOIN")
    out = run(cli, "consent", "opt-out", "(202) 555-0123", "--by", "Maya", "--channel", "email",
              "--note", "subject: remove me")  # fmt: skip
    assert out.exit_code == 0 and "confirmation saved as outbound message" in out.output
    with Session(app.extensions["sms_engine"]) as s:
        [message] = s.execute(select(OutboundMessage)).scalars().all()
    assert message.kind == "optout_confirm" and message.status == "pending"
    again = run(cli, "consent", "opt-out", PHONE, "--by", "Maya", "--channel", "phone")
    assert again.exit_code == 0 and "already opted out" in again.output
    assert run(cli, "consent", "opt-out", PHONE, "--by", "M", "--channel", "fax").exit_code == 2

    assert run(cli, "consent", "seal").output.strip() == "3 events sealed"
    pack = run(cli, "consent", "evidence", PHONE, "-o", str(tmp_path / "pack"))
    assert (
        pack.exit_code == 0
        and "3 consent events" in pack.output
        and "status opted_out" in (pack.output)
    )
    rows = list(csv.DictReader(io.StringIO((tmp_path / "pack" / "messages.csv").read_text())))
    assert [r["kind"] for r in rows] == ["inbound", "keyword_reply", "optout_confirm"]
    assert run(cli, "consent", "evidence", PHONE, "-o", str(tmp_path / "p.zip")).exit_code == 0
    assert (tmp_path / "p.zip").stat().st_size > 1000

    exported = run(cli, "export", "messages", "--phone", PHONE)
    assert exported.exit_code == 0 and "3 rows" in exported.stderr
    assert list(csv.DictReader(io.StringIO(exported.stdout)))[2]["status"] == "pending"
    consent = list(csv.DictReader(io.StringIO(run(cli, "export", "consent").stdout)))
    assert all(len(r["hash"]) == 64 and r["chain_position"] for r in consent)
    assert run(cli, "export", "messages", "--since", "nope").exit_code == 2


def test_imports_tags_and_counts_from_the_cli(cli, tmp_path):
    people = tmp_path / "people.csv"
    people.write_text(f"phone,name\n{PHONE},Ada\nnot a phone,Bob\n+12025550124,\x1b[2JEve\n")
    done = run(cli, "subscribers", "import", str(people), "--consent-source", "paper form",
               "--tag", "volunteers", "--report", str(tmp_path / "rejected.csv"))  # fmt: skip
    assert done.exit_code == 0 and "2 subscribed" in done.output
    assert "line 3: not a valid phone number" in done.stderr and "not a phone" not in done.output
    assert (tmp_path / "rejected.csv").read_text() == "line,reason\n3,not a valid phone number\n"
    assert run(cli, "subscribers", "count", "--tag", "volunteers").output.strip() == "2"
    dnc = tmp_path / "dnc.txt"
    dnc.write_text("+12025550124\n")
    assert "1 opted out" in run(cli, "suppression", "import", str(dnc)).output
    assert run(cli, "subscribers", "count", "--status", "subscribed").output.strip() == "1"
    shown = run(cli, "subscribers", "show", "+12025550124").output
    assert "opted_out" in shown and "\x1b" not in shown and "volunteers" in shown
    assert run(cli, "subscribers", "untag", PHONE, "volunteers").output.strip() == "untagged"
    assert run(cli, "subscribers", "tag", "+12025550199", "x").exit_code == 1  # unknown number
    refused = run(cli, "subscribers", "import", str(dnc), "--consent-source", "x")
    assert refused.exit_code == 0 and "1 opted out (kept)" in refused.output
