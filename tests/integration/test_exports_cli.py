"""The CLI on a real database: migrations, campaigns, and the CSV exports with filters."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text
from sqlmodel import Session

from sms_service.cli.main import main
from sms_service.db import make_engine
from sms_service.models import ConsentEvent
from sms_service.services.exports import ExportFilter, write_consent
from tests.factories import text_in

A, B = "+12025550123", "+14155550100"


@pytest.fixture
def cli_env(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    return CliRunner()


def invoke(runner, *args):
    result = runner.invoke(main, list(args), catch_exceptions=False)
    return result


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_db_upgrade_creates_the_schema_and_is_idempotent(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"  # never migrated
    monkeypatch.setenv("DATABASE_URL", url)
    runner = CliRunner()
    assert invoke(runner, "db", "upgrade").exit_code == 0
    assert invoke(runner, "db", "upgrade").exit_code == 0
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert len(list(revisions)) == 1
    finally:
        engine.dispose()
    assert {"subscribers", "consent_events", "broadcasts", "broadcast_deliveries"} <= tables


def test_campaign_create_and_list(cli_env):
    result = invoke(
        cli_env, "campaign", "create", "hk64", "--title", "Release the 64", "--text", "t"
    )
    assert result.exit_code == 0 and "HK64" in result.output
    dup = invoke(cli_env, "campaign", "create", "HK64", "--title", "again")
    assert dup.exit_code != 0 and "already exists" in dup.output
    reserved = invoke(cli_env, "campaign", "create", "stop", "--title", "x")
    assert reserved.exit_code != 0 and "reserved" in reserved.output
    listed = invoke(cli_env, "campaign", "list")
    assert "HK64" in listed.output and "Release the 64" in listed.output


def test_exports_filter_by_number_and_date(cli_env, client, settings, tmp_path):
    invoke(cli_env, "campaign", "create", "HK64", "--title", "Release the 64")
    text_in(client, settings, A, "SIGN")
    text_in(client, settings, A, "Ada Lovelace")
    text_in(client, settings, B, "JOIN")
    text_in(client, settings, B, "STOP")

    everything = parse(invoke(cli_env, "export", "consent").stdout)
    assert [r["event"] for r in everything] == ["signature", "opt_in", "opt_in", "opt_out"]
    header = "occurred_at,phone_number,event,keyword,message_body,message_sid,source,program"
    assert invoke(cli_env, "export", "consent").stdout.startswith(header)
    assert everything[0]["campaign"] == "HK64" and everything[0]["disclosure"]

    only_b = parse(invoke(cli_env, "export", "consent", "--phone", "(415) 555-0100").stdout)
    assert {r["phone_number"] for r in only_b} == {B}

    optouts = parse(invoke(cli_env, "export", "optouts").stdout)
    assert [(r["phone_number"], r["keyword"], r["message_body"]) for r in optouts] == [
        (B, "STOP", "STOP")
    ]
    out = tmp_path / "sigs.csv"
    assert (
        invoke(cli_env, "export", "signatures", "--campaign", "hk64", "-o", str(out)).exit_code == 0
    )
    [sig] = parse(out.read_text())
    assert (sig["phone_number"], sig["name"], sig["campaign"], sig["source"]) == (
        A, "Ada Lovelace", "HK64", "sms",
    )  # fmt: skip

    future = parse(invoke(cli_env, "export", "consent", "--since", "2999-01-01").stdout)
    past = parse(invoke(cli_env, "export", "consent", "--until", "2000-01-01").stdout)
    assert future == [] and past == []


def test_export_rejects_bad_input(cli_env):
    assert invoke(cli_env, "export", "consent", "--since", "yesterday").exit_code == 2
    assert invoke(cli_env, "export", "consent", "--phone", "12").exit_code == 2
    bad_range = invoke(
        cli_env, "export", "consent", "--since", "2026-02-01", "--until", "2026-01-01"
    )
    assert bad_range.exit_code == 2


def test_export_streams_many_rows(app):
    engine = app.extensions["sms_engine"]
    when = datetime(2026, 1, 1, tzinfo=UTC)
    with Session(engine) as s:
        s.add_all(
            ConsentEvent(
                occurred_at=when,
                phone=f"+1202555{i:04d}",
                event="opt_in",
                source="import",
                program="Rights Alerts",
            )  # fmt: skip
            for i in range(5000)
        )
        s.commit()
    out = io.StringIO()
    assert write_consent(engine, out, ExportFilter()) == 5000
    assert out.getvalue().count("\n") == 5001


@pytest.mark.parametrize("kind", ["consent", "signatures"])
def test_an_export_read_part_way_ends_quietly_as_a_broken_pipe_does(database_url, kind):
    """`sms-service export … | head`: the reader stops; the command ends with a SIGPIPE
    command's status (141) and prints no traceback."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO consent_events (occurred_at, phone, event, keyword, "
                    "message_body, source, program) VALUES (:at, :phone, 'opt_in', 'JOIN', "
                    "'JOIN please, and thank you for all of it', 'sms', 'Rights Alerts')"
                ),
                [{"at": datetime(2026, 12, 1, tzinfo=UTC), "phone": f"+1202555{i:04d}"}
                 for i in range(6000)],
            )  # fmt: skip
            campaign = conn.execute(
                text("INSERT INTO campaigns (keyword, title, petition_text, active, created_at) "
                     "VALUES ('HK64', 'Release the 64', '', true, :at) RETURNING id"),
                {"at": datetime(2026, 12, 1, tzinfo=UTC)},
            ).scalar_one()  # fmt: skip
            conn.execute(
                text("INSERT INTO signatures (campaign_id, name, source, signed_at) "
                     "VALUES (:c, :name, 'web', :at)"),
                [{"c": campaign, "name": f"Signer number {i} of many", "at": datetime(
                    2026, 12, 1, tzinfo=UTC)} for i in range(6000)],
            )  # fmt: skip
    finally:
        engine.dispose()
    env = {**os.environ, "DATABASE_URL": database_url}
    command = [sys.executable, "-m", "sms_service.cli.main", "export", kind]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as process:
        header = process.stdout.readline()
        process.stdout.close()  # as `head -1` does once it has its line
        stderr = process.stderr.read().decode()
        status = process.wait(timeout=60)
    assert header.startswith(b"occurred_at" if kind == "consent" else b"signed_at"), stderr
    assert status == 141, stderr
    assert stderr == ""
