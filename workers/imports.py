"""RQ job: import a subscriber or suppression list saved by the console.

``run_import(kind, path, options)`` streams the file through
:func:`sms_service.services.imports.import_subscribers` or ``import_suppression`` (which
commit per batch, so a job that dies part-way is finished by running it again), keeps its
progress in the job's meta for the console's progress bar, returns the report as plain
data, and deletes the file.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict

from rq import get_current_job

from workers import context

PROGRESS_EVERY = 0.5  # seconds between progress writes to Redis


def run_import(kind: str, path: str, options: dict) -> dict:
    """Import the list at ``path``; the report (counts and the first rejected lines)."""
    from sms_service.services.imports import import_subscribers, import_suppression

    job = get_current_job()
    last = [0.0]

    def progress(done: int, total: int | None) -> None:
        if job is None or time.monotonic() - last[0] < PROGRESS_EVERY:
            return
        last[0] = time.monotonic()
        job.meta.update(done=done, total=total or 0)
        job.save_meta()

    run = import_subscribers if kind == "subscribers" else import_suppression
    try:
        report = run(context.engine(), path, progress=progress, **options)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    if job is not None:
        total = job.meta.get("total") or 1
        job.meta.update(done=total, total=total)
        job.save_meta()
    data = asdict(report)
    data["rejections"] = [list(asdict(r).values()) for r in report.rejections]
    return data
