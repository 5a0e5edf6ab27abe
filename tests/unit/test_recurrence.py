"""Recurrence as tables: (first send, zone, rule, after) → the next send, in UTC."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sms_service.domain.recurrence import (
    Recurrence,
    Rule,
    next_occurrence,
    occurrences_between,
    parse_rule,
)

NY = "America/New_York"
NEW_YORK = ZoneInfo(NY)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: str = NY) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


# (first send, zone, rule, after, expected next send in UTC or None)
# US clocks go forward on 2026-03-08 and back on 2026-11-01; 2028 is a leap year.
CASES = [
    # one-off
    pytest.param(local("2026-11-25T09:00"), NY, "none", utc("2026-11-25T13:59"),
                 "2026-11-25T14:00", id="none-before"),
    pytest.param(local("2026-11-25T09:00"), NY, "none", utc("2026-11-25T14:00"), None,
                 id="none-at-first"),
    pytest.param(local("2026-11-25T09:00"), NY, "none", utc("2027-01-01T00:00"), None,
                 id="none-after"),
    # daily keeps 09:00 local across both DST changes
    pytest.param(local("2026-03-06T09:00"), NY, "daily", utc("2026-03-06T14:00"),
                 "2026-03-07T14:00", id="daily-strictly-after"),
    pytest.param(local("2026-03-06T09:00"), NY, "daily", utc("2026-03-07T14:00"),
                 "2026-03-08T13:00", id="daily-spring-forward"),
    pytest.param(local("2026-10-30T09:00"), NY, "daily", utc("2026-10-31T13:00"),
                 "2026-11-01T14:00", id="daily-fall-back"),
    pytest.param(local("2026-03-06T09:00"), NY, "daily", utc("2026-01-01T00:00"),
                 "2026-03-06T14:00", id="daily-before-first"),
    # weekly
    pytest.param(local("2026-10-20T09:00"), NY, "weekly", utc("2026-10-27T13:00"),
                 "2026-11-03T14:00", id="weekly-fall-back"),
    pytest.param(local("2026-03-03T09:00"), NY, "weekly", utc("2026-03-03T14:01"),
                 "2026-03-10T13:00", id="weekly-spring-forward"),
    # monthly on the 31st: last day of shorter months, back to the 31st after
    pytest.param(local("2026-01-31T09:00"), NY, "monthly", utc("2026-01-31T14:00"),
                 "2026-02-28T14:00", id="monthly-31-feb"),
    pytest.param(local("2026-01-31T09:00"), NY, "monthly", utc("2026-02-28T14:00"),
                 "2026-03-31T13:00", id="monthly-31-back-to-31"),
    pytest.param(local("2026-01-31T09:00"), NY, "monthly", utc("2026-03-31T13:00"),
                 "2026-04-30T13:00", id="monthly-31-april"),
    pytest.param(local("2028-01-31T09:00"), NY, "monthly", utc("2028-02-01T00:00"),
                 "2028-02-29T14:00", id="monthly-31-leap-feb"),
    pytest.param(local("2027-01-30T09:00"), NY, "monthly", utc("2027-02-01T00:00"),
                 "2027-02-28T14:00", id="monthly-30-feb"),
    pytest.param(local("2027-01-30T09:00"), NY, "monthly", utc("2027-03-01T00:00"),
                 "2027-03-30T13:00", id="monthly-30-back-to-30"),
    pytest.param(local("2028-02-29T09:00"), NY, "monthly", utc("2029-02-01T00:00"),
                 "2029-02-28T14:00", id="monthly-29-feb-common-year"),
    pytest.param(local("2028-02-29T09:00"), NY, "monthly", utc("2032-02-01T00:00"),
                 "2032-02-29T14:00", id="monthly-29-feb-next-leap"),
    pytest.param(local("2026-12-15T09:00"), NY, "monthly", utc("2026-12-20T00:00"),
                 "2027-01-15T14:00", id="monthly-year-end"),
    # wall times the clocks skip or repeat
    pytest.param(local("2026-03-07T02:30"), NY, "daily", utc("2026-03-07T08:00"),
                 "2026-03-08T07:30", id="skipped-time-moves-forward"),
    pytest.param(local("2026-03-07T02:30"), NY, "daily", utc("2026-03-08T07:30"),
                 "2026-03-09T06:30", id="after-the-skip"),
    pytest.param(local("2026-10-31T01:30"), NY, "daily", utc("2026-10-31T06:00"),
                 "2026-11-01T05:30", id="repeated-time-first-pass"),
    pytest.param(local("2026-10-31T01:30"), NY, "daily", utc("2026-11-01T05:30"),
                 "2026-11-02T06:30", id="after-the-repeat"),
    # other zones, and a first send given in UTC or in another zone
    pytest.param(local("2026-03-20T09:00", "Europe/London"), "Europe/London", "weekly",
                 utc("2026-03-27T09:00"), "2026-04-03T08:00", id="london-bst"),
    pytest.param(utc("2026-11-25T14:00"), NY, "daily", utc("2026-11-25T14:00"),
                 "2026-11-26T14:00", id="first-in-utc"),
    pytest.param(local("2026-07-01T06:00", "America/Los_Angeles"), NY, "daily",
                 utc("2026-12-01T00:00"), "2026-12-01T14:00", id="first-in-other-zone"),
    pytest.param(local("2026-01-01T09:00"), NY, "daily", utc("2126-06-15T15:00"),
                 "2126-06-16T13:00", id="century-later"),
]  # fmt: skip


@pytest.mark.parametrize(("first", "tz", "rule", "after", "expected"), CASES)
def test_next_occurrence(first, tz, rule, after, expected):
    got = next_occurrence(first, tz, rule, after)
    assert got == (utc(expected) if expected else None)
    if got is not None:
        assert got.tzinfo is UTC


@pytest.mark.parametrize("day", [31, 30, 29, 28])
def test_monthly_keeps_anchor_day_and_wall_time_for_years(day):
    schedule = Recurrence(local(f"2027-01-{day}T09:00"), NY, Rule.MONTHLY)
    for index in range(0, 72):
        moment = schedule.occurrence(index).astimezone(NEW_YORK)
        last = calendar.monthrange(moment.year, moment.month)[1]
        assert (moment.hour, moment.minute) == (9, 0)
        assert moment.day == min(day, last)
        assert (moment.year - 2027) * 12 + moment.month - 1 == index


@pytest.mark.parametrize("rule", ["daily", "weekly", "monthly"])
def test_next_after_walks_every_occurrence_in_order(rule):
    schedule = Recurrence(local("2026-01-31T09:00"), NY, Rule(rule))
    expected = [schedule.occurrence(i) for i in range(40)]
    walked = [schedule.first.astimezone(UTC)]
    while len(walked) < 40:
        walked.append(schedule.next_after(walked[-1]))
    assert walked == expected
    assert all(m.astimezone(NEW_YORK).hour == 9 for m in walked)


def test_occurrences_between_is_start_inclusive_end_exclusive():
    got = occurrences_between(
        local("2026-03-05T09:00"), NY, "daily", utc("2026-03-06T14:00"), utc("2026-03-10T13:00")
    )
    assert got == [utc("2026-03-06T14:00"), utc("2026-03-07T14:00"), utc("2026-03-08T13:00"),
                   utc("2026-03-09T13:00")]  # fmt: skip


def test_occurrences_between_for_a_one_off():
    first = local("2026-11-25T09:00")
    assert occurrences_between(
        first, NY, "none", utc("2026-11-01T00:00"), utc("2026-12-01T00:00")
    ) == [utc("2026-11-25T14:00")]
    assert (
        occurrences_between(first, NY, "none", utc("2026-11-26T00:00"), utc("2027-01-01T00:00"))
        == []
    )


def test_recurrence_validates_itself():
    with pytest.raises(ValueError, match="aware"):
        Recurrence(datetime(2026, 11, 25, 9), NY, Rule.DAILY)
    with pytest.raises(ValueError, match="time zone"):
        Recurrence(local("2026-11-25T09:00"), "Atlantis/Capital", Rule.DAILY)
    with pytest.raises(ValueError, match="recurrence"):
        Recurrence(local("2026-11-25T09:00"), NY, "fortnightly")
    with pytest.raises(ValueError, match="aware"):
        next_occurrence(local("2026-11-25T09:00"), NY, "daily", datetime(2026, 11, 26))
    with pytest.raises(IndexError):
        Recurrence(local("2026-11-25T09:00"), NY, Rule.NONE).occurrence(1)
    assert Recurrence(local("2026-11-25T09:00"), NY, "Weekly").rule is Rule.WEEKLY


@pytest.mark.parametrize(
    ("text", "rule"),
    [("none", Rule.NONE), ("daily", Rule.DAILY), (" Weekly ", Rule.WEEKLY),
     ("MONTHLY", Rule.MONTHLY), (Rule.DAILY, Rule.DAILY)],
)  # fmt: skip
def test_parse_rule(text, rule):
    assert parse_rule(text) is rule


@pytest.mark.parametrize("text", ["", "yearly", "every day", "fortnightly", "d"])
def test_parse_rule_refuses(text):
    with pytest.raises(ValueError, match="one of none, daily, weekly, monthly"):
        parse_rule(text)
