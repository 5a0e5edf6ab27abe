"""When a recurring broadcast goes out: none, daily, weekly or monthly, on local wall time.

Pure: no Flask, ORM, Twilio or Redis. The organiser picks the first send in their own zone;
every later occurrence keeps that wall-clock time (9:00 in New York stays 9:00 across DST),
so occurrences are computed from the first one, never from the previous one. A monthly
broadcast first sent on the 31st goes on the last day of shorter months and returns to the
31st when the month has one.

Wall times the clocks skip (02:30 on the spring-forward night) move forward by the gap;
wall times that happen twice (01:30 on the fall-back night) use the first.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sms_service.domain.zones import zone_named


class Rule(StrEnum):
    """How a broadcast repeats; the value is what the database stores."""

    NONE = "none"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


def parse_rule(text: str | Rule) -> Rule:
    """Read a stored rule (``"weekly"``, case and spaces ignored); ValueError if unknown."""
    try:
        return Rule(str(text).strip().lower())
    except ValueError:
        choices = ", ".join(rule.value for rule in Rule)
        raise ValueError(f"recurrence must be one of {choices}, not {text!r}") from None


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, not naive")
    return moment


@dataclass(frozen=True)
class Recurrence:
    """A broadcast's schedule: the first send, the organiser's zone and the rule.

    ``first`` may be given in any zone (UTC from the database, or the organiser's own);
    its wall-clock reading in ``tz`` is the anchor every occurrence repeats.
    """

    first: datetime
    tz: str
    rule: Rule
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _anchor: datetime = field(init=False, repr=False, compare=False)  # local, naive

    def __post_init__(self) -> None:
        _aware(self.first, "first")
        zone = zone_named(self.tz)
        # Frozen: the derived fields are set once here, the way dataclasses do it themselves.
        object.__setattr__(self, "rule", parse_rule(self.rule))
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_anchor", self.first.astimezone(zone).replace(tzinfo=None))

    def occurrence(self, index: int) -> datetime:
        """The ``index``-th send (0 is the first) as an aware UTC datetime."""
        if index < 0 or (self.rule is Rule.NONE and index > 0):
            raise IndexError(f"no occurrence {index} for rule {self.rule}")
        anchor = self._anchor
        if self.rule is Rule.DAILY:
            local = anchor + timedelta(days=index)
        elif self.rule is Rule.WEEKLY:
            local = anchor + timedelta(weeks=index)
        elif self.rule is Rule.MONTHLY:
            local = datetime.combine(_add_months(anchor.date(), index), anchor.time())
        else:
            local = anchor
        return _to_utc(local, self._zone)

    def next_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after ``after``; None when the schedule has ended."""
        after = _aware(after, "after").astimezone(UTC)
        index = self._index_before(after)
        while True:
            try:
                moment = self.occurrence(index)
            except IndexError:
                return None
            if moment > after:
                return moment
            index += 1

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Occurrences with ``start <= t < end``, in order, as aware UTC datetimes."""
        start = _aware(start, "start").astimezone(UTC)
        end = _aware(end, "end").astimezone(UTC)
        moment = self.next_after(start - timedelta(microseconds=1))
        while moment is not None and moment < end:
            yield moment
            moment = self.next_after(moment)

    def _index_before(self, after: datetime) -> int:
        """An occurrence index at or before the answer: a jump close to ``after``.

        Occurrences stay within a day of the anchor's spacing (DST moves them by an hour at
        most), so starting one step early and walking forward is enough.
        """
        anchor = self._anchor
        local_day = after.astimezone(self._zone).date()
        days = (local_day - anchor.date()).days
        if self.rule is Rule.DAILY:
            estimate = days - 1
        elif self.rule is Rule.WEEKLY:
            estimate = days // 7 - 1
        elif self.rule is Rule.MONTHLY:
            months = (local_day.year - anchor.year) * 12 + local_day.month - anchor.month
            estimate = months - 1
        else:
            estimate = 0
        return max(estimate, 0)


def _add_months(anchor: date, months: int) -> date:
    """``anchor`` moved ``months`` on, its day clamped to the target month's last day."""
    total = anchor.year * 12 + anchor.month - 1 + months
    year, month = divmod(total, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(anchor.day, last))


def _to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: a repeated wall time means its first pass; a skipped one is read with the
    # offset from before the jump, which lands the same distance past the jump.
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def next_occurrence(
    first: datetime, tz: str, rule: str | Rule, after_utc: datetime
) -> datetime | None:
    """The first send strictly after ``after_utc`` (aware UTC), None once a one-off has gone."""
    return Recurrence(first, tz, parse_rule(rule)).next_after(after_utc)


def occurrences_between(
    first: datetime, tz: str, rule: str | Rule, start_utc: datetime, end_utc: datetime
) -> list[datetime]:
    """Every send with ``start_utc <= t < end_utc``, in order, as aware UTC datetimes."""
    return list(Recurrence(first, tz, parse_rule(rule)).between(start_utc, end_utc))
