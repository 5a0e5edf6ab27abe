"""RQ job ids for broadcast jobs: deterministic, so enqueueing one occurrence twice makes one job.

Queue mechanics, not domain rules, so this lives with the jobs (pure: no Redis, no RQ).
"""

from __future__ import annotations

from datetime import UTC, datetime


def occurrence_job_id(broadcast_id: int, occurrence: datetime, *, prefix: str = "bcast") -> str:
    """An RQ job id for one send of one broadcast, e.g. ``bcast-12-20261125T140000Z``.

    RQ accepts only letters, digits, ``_`` and ``-``. The same broadcast and time always
    give the same id, so enqueueing an occurrence twice cannot create two jobs.
    Sub-second times keep their microseconds (``...T140000123456Z``) rather than collide.
    """
    if isinstance(broadcast_id, bool) or not isinstance(broadcast_id, int) or broadcast_id < 0:
        raise ValueError(f"broadcast id must be a non-negative integer, not {broadcast_id!r}")
    if not prefix or not all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in prefix):
        raise ValueError(f"job id prefix may hold only letters, digits, '_' and '-': {prefix!r}")
    if occurrence.tzinfo is None or occurrence.utcoffset() is None:
        raise ValueError("occurrence must be timezone-aware, not naive")
    moment = occurrence.astimezone(UTC)
    micros = f"{moment.microsecond:06d}" if moment.microsecond else ""
    return f"{prefix}-{broadcast_id}-{moment:%Y%m%dT%H%M%S}{micros}Z"
