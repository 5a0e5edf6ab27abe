"""How fast a subscriber list imports, and that memory stays flat, on PostgreSQL and SQLite.

    python bench/import_rate.py [--lines 1000000] [--bad-every 1000]

Writes a CSV of ``--lines`` numbers (one line in ``--bad-every`` unusable), then for each
database (a private PostgreSQL database, a fresh SQLite file):

* the baseline: the same file read and every line parsed and normalised to E.164
  (:func:`sms_service.domain.import_rows.read_rows`), with no database at all;
* the import (:func:`sms_service.services.imports.import_subscribers`), then the same
  import again (idempotent: nothing changes), each timed.

Peak memory is read from the process's maximum resident set size before and after each
step (``ru_maxrss``): flat memory shows as no growth between a 100k-line and a 1M-line run.
Prints lines/s and the ratio of the import to the baseline.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import exit_on_sigterm, private_database
from sms_service.db import make_engine
from sms_service.db.migrate import upgrade
from sms_service.domain.import_rows import Rejection, read_rows
from sms_service.services.imports import import_subscribers


def peak_mb() -> float:
    """The process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_file(path: Path, lines: int, bad_every: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write("phone,name,opted_in_at,consent_wording\n")
        for i in range(lines):
            if i % bad_every == 1:
                f.write(f"nope-{i},x,,\n")
            else:
                f.write(f"+1202{2_000_000 + i:07d},Supporter {i},2025-01-01,Text JOIN\n")


def baseline(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as f:
        rejected = sum(isinstance(r, Rejection) for r in read_rows(f))
    return time.perf_counter() - started, rejected


def run_import(url: str, path: Path) -> list[tuple[float, object]]:
    engine = make_engine(url)
    try:
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            report = import_subscribers(engine, path, consent_source="bench", program="Bench")
            timings.append((time.perf_counter() - started, report))
        return timings
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Time the baseline and both imports on each database; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--bad-every", type=int, default=1000)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.csv"
        write_file(path, args.lines, args.bad_every)
        print(
            f"{args.lines:,} lines, {path.stat().st_size / 1e6:.0f} MB; peak RSS {peak_mb():.0f} MB"
        )
        base_s, rejected = baseline(path)
        print(f"  baseline (parse + E.164, no database)  {base_s:7.1f} s  "
              f"{args.lines / base_s:9,.0f} lines/s  peak RSS {peak_mb():.0f} MB")  # fmt: skip
        sqlite_path = Path(tmp) / "bench.db"
        upgrade(f"sqlite:///{sqlite_path}")
        with private_database("bench_import") as pg_url:
            for name, url in (("postgresql", pg_url), ("sqlite", f"sqlite:///{sqlite_path}")):
                (first_s, first), (again_s, again) = run_import(url, path)
                assert first.rejected == rejected and again.changed == 0, (first, again)
                print(f"  {name:10s} import  {first_s:7.1f} s  {args.lines / first_s:9,.0f} "
                      f"lines/s  {first_s / base_s:5.2f}x baseline  peak RSS {peak_mb():.0f} MB"
                      f"\n  {name:10s} again   {again_s:7.1f} s  {args.lines / again_s:9,.0f} "
                      f"lines/s  ({again.already:,} already, {again.rejected:,} "
                      "rejected)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
