"""How long planning a broadcast to a million subscribers takes, against a raw INSERT … SELECT.

    python bench/plan_audience.py [--subscribers 1000000] [--repeat 3]

Creates a private PostgreSQL database, seeds the subscribers with ``generate_series`` (plus
a few opted-out numbers the audience must leave out), then, ``--repeat`` times and in
alternating order:

* the service: a broadcast to ``all`` is created and scheduled (not timed), then the run
  is started in one transaction, timed from the start of :func:`begin_run` to its commit
  (planning writes one pending delivery per subscriber);
* the baseline: the same rows written by one hand-written ``INSERT … SELECT`` into
  ``broadcast_deliveries``, in its own transaction, to the commit.

The deliveries table is emptied and a checkpoint taken before each timing, so every
timing starts from the same state. Prints each timing, the medians and the ratio; exits 1
when the service takes more than 10 s or more than 1.5 times the baseline. The database
is dropped afterwards, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine

from sms_service.broadcasts.runs import begin_run
from sms_service.broadcasts.service import create_broadcast, schedule_broadcast
from sms_service.db import make_engine, session_scope
from sms_service.domain.audience import AudienceSpec

try:  # bench/ is not a package: run as a script, or imported by path
    from _common import exit_on_sigterm, private_database, seed_subscribers
except ImportError:  # pragma: no cover
    from bench._common import exit_on_sigterm, private_database, seed_subscribers

TARGET_SECONDS = 10.0
TARGET_RATIO = 1.5

RAW_INSERT = text(
    "INSERT INTO broadcast_deliveries (run_id, subscriber_id, status, attempts, updated_at) "
    "SELECT :run_id, s.id, 'pending', 0, now() FROM subscribers AS s "
    "WHERE s.status = 'subscribed'"
)


def reset(engine: Engine) -> None:
    """Empty the deliveries and flush dirty pages, so each timing starts alike."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("TRUNCATE broadcast_deliveries"))
        conn.execute(text("CHECKPOINT"))


def time_baseline(engine: Engine, run_id: int) -> tuple[float, int]:
    """The hand-written INSERT … SELECT to its commit: (seconds, rows)."""
    started = time.perf_counter()
    with engine.begin() as conn:
        rows = conn.execute(RAW_INSERT, {"run_id": run_id}).rowcount
    return time.perf_counter() - started, rows


def time_service(engine: Engine) -> tuple[float, int]:
    """Create and schedule a broadcast to everyone (untimed), then start its run: the
    transaction that plans it, timed to its commit. (seconds, planned)."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        broadcast = create_broadcast(
            session=session,
            body="Rally at the courthouse, 6pm today. Reply STOP to end.",
            audience=AudienceSpec("all"),
            timezone="America/New_York",
            send_at=now,
            created_by="bench",
        )
        run_id = schedule_broadcast(session=session, broadcast_id=broadcast.id).id
    started = time.perf_counter()
    with session_scope(engine) as session:
        result = begin_run(session=session, run_id=run_id)
    elapsed = time.perf_counter() - started
    if result is None:
        raise SystemExit(f"run {run_id} was not started")
    return elapsed, result.planned


def main(argv: list[str] | None = None) -> int:
    """Seed, time both ways ``--repeat`` times, print the figures; 0 when the targets hold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument(
        "--opted-out", type=int, default=20_000, help="extra opted-out subscribers, left out"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    exit_on_sigterm()

    with private_database("bench_plan") as url:
        print(f"seeding {args.subscribers:,} subscribed + {args.opted_out:,} opted-out ...")
        started = time.perf_counter()
        seed_subscribers(url, args.subscribers, opted_out=args.opted_out)
        print(f"  seeded in {time.perf_counter() - started:.1f} s")
        engine = make_engine(url)
        service: list[float] = []
        baseline: list[float] = []
        try:
            for rep in range(args.repeat):
                order = ("baseline", "service") if rep % 2 == 0 else ("service", "baseline")
                for which in order:
                    reset(engine)
                    if which == "baseline":
                        seconds, rows = time_baseline(engine, run_id=1_000_000 + rep)
                        baseline.append(seconds)
                    else:
                        seconds, rows = time_service(engine)
                        service.append(seconds)
                    if rows != args.subscribers:
                        raise SystemExit(f"{which} wrote {rows} rows, not {args.subscribers}")
                    print(f"  round {rep + 1} {which:8s} {seconds:6.2f} s  "
                          f"({rows / seconds:,.0f} rows/s)")  # fmt: skip
        finally:
            engine.dispose()

    svc, base = statistics.median(service), statistics.median(baseline)
    ratio = svc / base
    holds = svc <= TARGET_SECONDS and ratio <= TARGET_RATIO
    print(f"\nplanning {args.subscribers:,} recipients on PostgreSQL, median of {args.repeat}:")
    print(f"  service (begin_run, to commit)   {svc:6.2f} s   min {min(service):6.2f} s")
    print(f"  baseline (raw INSERT … SELECT)   {base:6.2f} s   min {min(baseline):6.2f} s")
    print(f"  ratio to baseline                {ratio:6.2f}x")
    print(f"  target: <= {TARGET_SECONDS:g} s and <= {TARGET_RATIO:g}x baseline: "
          f"{'HOLDS' if holds else 'FAILS'}")  # fmt: skip
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
