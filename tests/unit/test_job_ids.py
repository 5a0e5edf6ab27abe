"""RQ job ids for broadcast occurrences: valid for RQ, stable, distinct per occurrence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from rq.job import JOB_ID_PATTERN

from sms_service.domain.recurrence import Recurrence, Rule
from workers.job_ids import occurrence_job_id

NY = "America/New_York"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: str = NY) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("broadcast_id", "moment", "expected"),
    [
        (12, utc("2026-11-25T14:00"), "bcast-12-20261125T140000Z"),
        (12, local("2026-11-25T09:00"), "bcast-12-20261125T140000Z"),
        (0, utc("2026-03-08T07:30:05"), "bcast-0-20260308T073005Z"),
        (7, utc("2026-11-25T14:00:00.000250"), "bcast-7-20261125T140000000250Z"),
    ],
)
def test_occurrence_job_id(broadcast_id, moment, expected):
    job_id = occurrence_job_id(broadcast_id, moment)
    assert job_id == expected
    assert JOB_ID_PATTERN.fullmatch(job_id)


def test_occurrence_job_id_prefix_and_refusals():
    assert occurrence_job_id(3, utc("2026-11-25T14:00"), prefix="remind_x") == (
        "remind_x-3-20261125T140000Z"
    )
    for bad_id in (-1, True, "12", 1.5):
        with pytest.raises(ValueError, match="broadcast id"):
            occurrence_job_id(bad_id, utc("2026-11-25T14:00"))
    for bad_prefix in ("", "b:cast", "bcast.1", "bcäst"):
        with pytest.raises(ValueError, match="prefix"):
            occurrence_job_id(1, utc("2026-11-25T14:00"), prefix=bad_prefix)
    with pytest.raises(ValueError, match="aware"):
        occurrence_job_id(1, datetime(2026, 11, 25, 14))


def test_job_ids_differ_per_occurrence():
    schedule = Recurrence(local("2026-01-31T09:00"), NY, Rule.DAILY)
    ids = {occurrence_job_id(5, schedule.occurrence(i)) for i in range(400)}
    assert len(ids) == 400
    assert schedule.occurrence(0) + timedelta(days=1) == schedule.occurrence(1)
