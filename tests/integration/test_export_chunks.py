"""Exports copied as several ranges at once on PostgreSQL: the same bytes as one COPY, one
snapshot for every range, no temporary file left, and a failure anywhere raised whole."""

from __future__ import annotations

import io
import os
import stat
import tempfile
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import event, text
from sqlmodel import Session

from sms_service.cli.main import main
from sms_service.db import make_engine
from sms_service.models import ConsentEvent
from sms_service.services.copy_out import copy_out
from sms_service.services.export_ranges import boundaries
from sms_service.services.exports import (
    COPY_SETTINGS,
    ExportFilter,
    consent_export,
    signature_export,
    write_export,
)
from tests.integration.test_export_paths import A, B, at, awkward_events, seed

BULK = """
    INSERT INTO consent_events (occurred_at, phone, event, keyword, message_body,
        message_sid, source, program)
    SELECT timestamptz '2026-03-01 00:00:00+00' + (g / 3) * interval '1 second',
           '+1202555' || lpad((g % 10000)::text, 4, '0'),
           (ARRAY['opt_in', 'opt_out', 'help'])[1 + g % 3], 'JOIN',
           CASE WHEN g % 7 = 0 THEN '=1+' || g ELSE 'join ' || g END,
           'SM' || g, 'sms', 'Rights Alerts'
    FROM generate_series(1, CAST(:rows AS int)) AS g
"""


@pytest.fixture
def pg_engine(pg_db):
    engine = make_engine(pg_db)
    yield engine
    engine.dispose()


@pytest.fixture
def spool_dir(tmp_path, monkeypatch):
    """The temporary files' folder, for the test to look into."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def seed_awkward(engine) -> None:
    """Hostile first characters, and rows that tie on their time (only the id orders them)."""
    with Session(engine) as s:
        s.add_all(awkward_events())
        s.add_all(
            ConsentEvent(
                occurred_at=at(6), phone=B, event="opt_out", keyword="STOP",
                message_body=f"STOP {i}", source="sms", program="Rights Alerts",
            )
            for i in range(12)
        )  # fmt: skip
        s.commit()


def export_bytes(engine, export, **kwargs) -> bytes:
    out = io.BytesIO()
    write_export(engine, out, export, **kwargs)
    return out.getvalue()


def open_spools(folder) -> list[str]:
    """This process's open files in ``folder`` (deleted or not)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


EXPORTS = [
    lambda: consent_export(ExportFilter()),
    lambda: consent_export(ExportFilter(), opt_outs_only=True),
    lambda: consent_export(ExportFilter(since=at(1, 1), until=at(6), phone=A)),
    lambda: consent_export(ExportFilter(since=at(5, 3))),
    lambda: consent_export(ExportFilter(since=at(7))),  # no rows
    lambda: signature_export(ExportFilter(), campaign="hk64"),
    lambda: signature_export(ExportFilter(phone=B)),
]


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("build", EXPORTS)
def test_ranges_copied_at_once_write_the_bytes_of_one_copy(pg_engine, spool_dir, build, raw):
    seed(pg_engine)
    seed_awkward(pg_engine)
    export = build()
    serial = export_bytes(pg_engine, export, raw=raw)
    assert serial == export_bytes(pg_engine, export, raw=raw, use_copy=False)
    for chunks in (2, 3, 8, 50):  # 50: more ranges than rows
        assert export_bytes(pg_engine, export, raw=raw, chunks=chunks, min_chunk_rows=1) == serial
    assert list(spool_dir.iterdir()) == [] and open_spools(spool_dir) == []
    assert pg_engine.pool.checkedout() == 0


def test_the_ranges_cut_where_rows_tie_on_time_and_never_exceed_the_rows(pg_engine):
    seed_awkward(pg_engine)  # 27 rows at distinct times, then 12 at one instant
    export = consent_export(ExportFilter(since=at(5, 20)))  # 7 + 12 rows
    with pg_engine.connect() as conn:
        bounds = boundaries(conn, export, 4, 1)
        assert len(bounds) == 3
        times = [t for t, _ in bounds]
        assert times == sorted(times) and times[-1] == at(6)  # inside the tied instant
        assert len(boundaries(conn, export, 50, 1)) == 18  # 19 ranges of one row
        assert boundaries(conn, export, 4, 10) == []  # 19 rows: one range of 10 at least
        assert boundaries(conn, consent_export(ExportFilter(phone="+19995550100")), 4, 1) == []


def test_every_range_reads_the_snapshot_of_the_first(pg_engine, spool_dir):
    """Rows committed by another connection after the export's snapshot was taken (here:
    while the ranges are being planned, before the other connections start) are in no range."""
    with pg_engine.begin() as conn:
        conn.execute(text(BULK), {"rows": 300})
    count = "COPY (SELECT count(*) FROM consent_events) TO STDOUT WITH (FORMAT csv)"

    def plan(conn):
        assert conn.execute(text("SELECT count(*) FROM consent_events")).scalar_one() == 300
        with pg_engine.begin() as other:  # committed after the snapshot
            other.execute(text(BULK), {"rows": 50})
        return [(count, {})] * 4

    written = []
    assert copy_out(pg_engine, written.append, plan, settings=COPY_SETTINGS) == 4
    assert b"".join(written) == b"300\r\n" * 4
    with pg_engine.connect() as conn:  # the rows are there for a later export
        assert conn.execute(text("SELECT count(*) FROM consent_events")).scalar_one() == 350
    assert open_spools(spool_dir) == [] and pg_engine.pool.checkedout() == 0


def test_a_failure_in_a_later_range_is_raised_and_nothing_is_left(pg_engine, spool_dir):
    rows = "COPY (SELECT g FROM generate_series(1, 50000) AS g) TO STDOUT WITH (FORMAT csv)"
    fails = "COPY (SELECT 12 / (4 - g) FROM generate_series(1, 6) AS g) TO STDOUT"
    written = []
    with pytest.raises(psycopg.errors.DivisionByZero):
        copy_out(pg_engine, written.append, lambda conn: [(rows, {}), (fails, {})], settings={})
    assert open_spools(spool_dir) == [] and list(spool_dir.iterdir()) == []
    assert pg_engine.pool.checkedout() == 0
    with pg_engine.connect() as conn:  # the pool's connections still work
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_a_failure_in_the_first_range_cancels_the_others_at_once(pg_engine, spool_dir):
    fails = "COPY (SELECT 12 / (4 - g) FROM generate_series(1, 6) AS g) TO STDOUT"
    slow = "COPY (SELECT g FROM generate_series(1, 3) AS g, pg_sleep(60)) TO STDOUT"
    started = time.monotonic()
    with pytest.raises(psycopg.errors.DivisionByZero):
        copy_out(pg_engine, [].append, lambda conn: [(fails, {}), (slow, {}), (slow, {})],
                 settings={})  # fmt: skip
    assert time.monotonic() - started < 20  # cancelled, not waited for
    assert open_spools(spool_dir) == [] and pg_engine.pool.checkedout() == 0
    assert not [t for t in threading.enumerate() if t.name == "export-copy"]


def test_the_first_ranges_failure_is_raised_when_the_others_start_after_it(pg_engine, spool_dir):
    # The first range fails on the server while its client is still writing rows (a slow
    # output), and the other ranges' connections come late (a busy machine): they find
    # the first transaction failed and its snapshot gone before the first range has seen
    # its own error. That is a consequence; the error to report is the first range's.
    @event.listens_for(pg_engine, "checkout")
    def late(*_):
        if threading.current_thread().name == "export-copy":
            time.sleep(0.3)

    def slow(data: bytes) -> None:
        time.sleep(1)

    fails = (
        "COPY (SELECT CASE WHEN g < 300000 THEN g ELSE 1 / (g - g) END"
        " FROM generate_series(1, 300000) AS g) TO STDOUT"
    )
    rows = "COPY (SELECT g FROM generate_series(1, 3) AS g) TO STDOUT"
    with pytest.raises(psycopg.errors.DivisionByZero):
        copy_out(pg_engine, slow, lambda conn: [(fails, {}), (rows, {})], settings={})
    assert open_spools(spool_dir) == [] and pg_engine.pool.checkedout() == 0


def test_a_failed_write_cancels_the_ranges_and_is_raised(pg_engine, spool_dir):
    rows = "COPY (SELECT g FROM generate_series(1, 3000000) AS g) TO STDOUT WITH (FORMAT csv)"

    def full(data):
        raise OSError(28, "No space left on device")

    started = time.monotonic()
    with pytest.raises(OSError, match="No space left"):
        copy_out(pg_engine, full, lambda conn: [(rows, {})] * 3, settings={})
    assert time.monotonic() - started < 20
    assert open_spools(spool_dir) == [] and pg_engine.pool.checkedout() == 0


@pytest.fixture
def bulk_cli(pg_db, pg_engine, monkeypatch):
    """200,000 events and the CLI pointed at them, copying two ranges at once."""
    with pg_engine.begin() as conn:
        conn.execute(text(BULK), {"rows": 200_000})
    monkeypatch.setenv("DATABASE_URL", pg_db)
    monkeypatch.setenv("EXPORT_CHUNKS", "2")
    return CliRunner()


def test_the_cli_writes_the_file_whole_and_keeps_its_permissions(bulk_cli, pg_engine, tmp_path):
    out = tmp_path / "consent.csv"
    out.write_text("an older export")
    out.chmod(0o600)
    args = ["export", "consent", "--since", "2026-03-01T10:00", "-o", str(out)]
    result = bulk_cli.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "92001 rows" in result.stderr  # 3 a second: the 108,000th to the 200,000th
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes() == export_bytes(
        pg_engine, consent_export(ExportFilter(since=datetime(2026, 3, 1, 10, tzinfo=UTC)))
    )
    assert [p.name for p in tmp_path.iterdir()] == ["consent.csv"]


def test_a_cli_export_failing_part_way_says_so_in_one_line_and_leaves_no_file(
    bulk_cli, tmp_path, monkeypatch
):
    """A statement timeout ends the COPYs after their first rows (the ranges' sample, a
    few pages, takes milliseconds): exit 1, one line, no file, a file already there kept."""
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=100")
    out = tmp_path / "consent.csv"
    result = bulk_cli.invoke(main, ["export", "consent", "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: database error at ")
    assert "canceling statement due to statement timeout" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
    out.write_text("an older export")
    assert bulk_cli.invoke(main, ["export", "consent", "-o", str(out)]).exit_code == 1
    assert [p.name for p in tmp_path.iterdir()] == ["consent.csv"]
    assert out.read_text() == "an older export"
