"""Quiet hours: when a broadcast may reach a recipient, read on the recipient's own clock.

Pure: no Flask, ORM, Twilio or Redis. The sender asks :func:`next_allowed_time` before each
broadcast message; ``None`` means "send now", a datetime means "not before then".

Two rules combine, and a message goes out only when both allow it:

* the house window (``Settings.quiet_hours``, e.g. ``"08:00-21:00"``; ``"off"`` drops it);
* a stricter US state window from :data:`STATE_RULES`, chosen by the number's area code.
  State law is the floor: turning the house window off leaves the state windows in force
  (``state_rules=False`` drops them, for tests and for programs counsel has cleared).

Where the recipient is: a stored zone (the subscriber told us) wins; otherwise every zone
``phonenumbers`` lists for the number is a candidate, and the message waits until it is
allowed in all of them, because we cannot tell which one the handset is in.

Known limitations, on purpose:

* The state comes from the area code (NPA), not the residence: numbers move with people.
  Florida, Oklahoma and Connecticut presume an in-state area code means an in-state person,
  which is why the NPA is the test here; a Texan with a 212 number gets New York's hours.
* State holidays close the day where the state forbids them (Alabama, Louisiana, Rhode
  Island), read from the ``holidays`` package's calendar for the state (its legal
  holidays, "observed" days included: the stricter reading). Louisiana's
  state-of-emergency bans are not modelled: they are declared, not scheduled.
* Exemptions (Maryland and Connecticut exempt some nonprofits, Washington exempts polling
  and calls to an organisation's own members) are not applied: the stricter reading holds.
* States whose stricter hours are reported by compliance vendors but were not checked
  against the statute text (KY, MA, MI, MN, NV, NM, PA, UT) are not in the table yet.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers

from sms_service.domain.zones import zone_named

DEFAULT_ZONE = "America/New_York"
UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers when it cannot place a number
SEARCH_DAYS = 14  # a week of day rules, holidays next to closed days, and slack
_WINDOW_TEXT = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def _parse(e164: str) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not an E.164 number: {e164!r}") from exc


@dataclass(frozen=True)
class Window:
    """Sending is allowed from ``start`` (inclusive) to ``end`` (exclusive), local wall time.

    Windows never cross midnight: quiet hours are a night, so the allowed part is a day.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window times are local wall-clock times, without a zone")
        if self.start >= self.end:
            raise ValueError(f"window must start before it ends: {self}")

    def __contains__(self, moment: time) -> bool:
        return self.start <= moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def intersect(self, other: Window) -> Window | None:
        """The part of the day both windows allow, or None when they do not overlap."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Window(start, end) if start < end else None


def parse_window(text: str) -> Window | None:
    """Read ``"08:00-21:00"`` into a :class:`Window`; ``"off"`` gives None (no house window).

    Raises ValueError for anything else, e.g. ``"25:00-21:00"`` or ``"21:00-08:00"``.
    """
    cleaned = re.sub(r"\s+", "", text or "")
    if cleaned.lower() == "off":
        return None
    match = _WINDOW_TEXT.match(cleaned)
    if not match:
        raise ValueError(f"quiet hours must look like '08:00-21:00' or 'off', not {text!r}")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"not a time of day in quiet hours {text!r}")
    if (h1, m1) >= (h2, m2):
        raise ValueError(f"quiet hours {text!r} must start before they end, within one day")
    return Window(time(h1, m1), time(h2, m2))


Week = tuple[Window | None, ...]  # Monday..Sunday; None closes the day


def _week(weekdays: Window, saturday: Window | None, sunday: Window | None) -> Week:
    """Seven day rules: Monday to Friday share one, then Saturday's and Sunday's."""
    return (weekdays,) * 5 + (saturday, sunday)


@dataclass(frozen=True)
class StateRule:
    """A state's own sending hours, per weekday, with the law they come from.

    ``clock_zone`` is set when the statute names a clock rather than "local time":
    Mississippi says Central *Standard* Time, so its hours are also read on UTC-6.
    ``no_holidays`` closes the state's legal holidays (:func:`is_state_holiday`).
    """

    state: str
    week: Week
    source: str
    clock_zone: str | None = None
    no_holidays: bool = False

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise ValueError(f"{self.state}: a week has seven day rules, not {len(self.week)}")
        if self.clock_zone is not None:
            zone_named(self.clock_zone)

    def window_on(self, day: date) -> Window | None:
        """The allowed hours on ``day`` (a local date), None when the day is closed."""
        if self.no_holidays and is_state_holiday(self.state, day):
            return None
        return self.week[day.weekday()]


@functools.lru_cache(maxsize=256)
def _holidays(state: str, year: int) -> frozenset[date]:
    # Imported here: the calendars take ~0.1 s to load, and every command's settings
    # read this module (the quiet-hours setting is checked with parse_window).
    import holidays

    return frozenset(holidays.US(subdiv=state, years=year))


def is_state_holiday(state: str, day: date) -> bool:
    """True when ``day`` is a legal holiday in the US ``state`` (observed days included)."""
    return day in _holidays(state, day.year)


_8_TO_20 = Window(time(8), time(20))
_9_TO_20 = Window(time(9), time(20))
_9_TO_21 = Window(time(9), time(21))

# Read from the statute or rule text where a copy was at hand (AL, FL, LA, MS, RI, WA),
# otherwise from law-firm summaries of the act (CT, MD, OK, TX); checked in 2025-26.
STATE_RULES: dict[str, StateRule] = {
    rule.state: rule
    for rule in (
        StateRule("AL", _week(_8_TO_20, _8_TO_20, None),
                  "Ala. Admin. Code r. 770-X-5-.17(1)(b): no solicitation calls on Sundays "
                  "or holidays; otherwise not before 8 a.m. or after 8 p.m.",
                  no_holidays=True),
        StateRule("CT", _week(_9_TO_20, _9_TO_20, _9_TO_20),
                  "Conn. Gen. Stat. 42-288a as amended by 2023 SB 1058 (eff. 2023-10-01): "
                  "telephonic sales calls, texts included, 9 a.m. to 8 p.m. local time"),
        StateRule("FL", _week(_8_TO_20, _8_TO_20, _8_TO_20),
                  "Fla. Stat. 501.616(6)(a) as amended by 2021 SB 1120: not before 8 a.m. "
                  "or after 8 p.m. in the called person's time zone"),
        StateRule("LA", _week(_8_TO_20, _8_TO_20, None),
                  "La. R.S. 45:811: 8 a.m. to 8 p.m. Monday to Saturday, never on Sundays "
                  "or state holidays; LPSC General Order R-29617",
                  no_holidays=True),
        StateRule("MD", _week(_8_TO_20, _8_TO_20, _8_TO_20),
                  "Md. Code, Com. Law 14-4502 (Stop the Spam Calls Act of 2023, eff. "
                  "2024-01-01): 8 a.m. to 8 p.m. in the called party's time zone"),
        StateRule("MS", _week(_8_TO_20, _8_TO_20, None),
                  "Miss. Code Ann. 77-3-723(1): only between 8 a.m. and 8 p.m. Central "
                  "Standard Time, none on Sundays (holiday ban repealed in 2024)",
                  clock_zone="Etc/GMT+6"),
        StateRule("OK", _week(_8_TO_20, _8_TO_20, _8_TO_20),
                  "Okla. Stat. tit. 15, 775C.4 (Telephone Solicitation Act of 2022, eff. "
                  "2022-11-01): not before 8 a.m. or after 8 p.m. local time"),
        StateRule("RI", _week(Window(time(9), time(18)), Window(time(10), time(17)), None),
                  "R.I. Gen. Laws 5-61-2 ('hours of operation') and 5-61-3.6: Mon-Fri "
                  "9 a.m. to 6 p.m., Sat 10 a.m. to 5 p.m., no Sundays or holidays",
                  no_holidays=True),
        StateRule("TX", _week(_9_TO_21, _9_TO_21, Window(time(12), time(21))),
                  "Tex. Bus. & Com. Code 301.051: 9 a.m. to 9 p.m. Mon-Sat, noon to 9 p.m. "
                  "Sunday; texts covered since SB 140 (eff. 2025-09-01)"),
        StateRule("WA", _week(_8_TO_20, _8_TO_20, _8_TO_20),
                  "RCW 19.158.040(2): not received before 8 a.m. or after 8 p.m. at the "
                  "recipient's local time"),
    )
}  # fmt: skip

# Area codes in service for those states (NANPA; cross-checked against phonenumbers' geocoder
# in tests/unit/test_quiet_hours.py, which fails when a new overlay appears).
STATE_NPAS: dict[str, frozenset[str]] = {
    "AL": frozenset("205 251 256 334 659 938".split()),
    "CT": frozenset("203 475 860 959".split()),
    "FL": frozenset(
        "239 305 321 324 352 386 407 448 561 645 656 689 727 728 754 772 786 813 850 863 "
        "904 941 954".split()
    ),
    "LA": frozenset("225 318 337 504 985".split()),
    "MD": frozenset("227 240 301 410 443 667".split()),
    "MS": frozenset("228 601 662 769".split()),
    "OK": frozenset("405 539 572 580 918".split()),
    "RI": frozenset("401".split()),
    "TX": frozenset(
        "210 214 254 281 325 346 361 409 430 432 469 512 682 713 726 737 806 817 830 832 "
        "903 915 936 940 945 956 972 979".split()
    ),
    "WA": frozenset("206 253 360 425 509 564".split()),
}
_STATE_BY_NPA = {npa: state for state, npas in STATE_NPAS.items() for npa in npas}


def state_for_number(e164: str) -> str | None:
    """The US state whose stricter hours apply, from the area code; None outside the table."""
    number = _parse(e164)
    if phonenumbers.region_code_for_number(number) != "US":
        return None
    return _STATE_BY_NPA.get(str(number.national_number)[:3])


def zones_for_number(
    e164: str, stored_zone: str | None = None, default_zone: str = DEFAULT_ZONE
) -> tuple[str, ...]:
    """The time zones the recipient may be in: the stored one, else phonenumbers' candidates.

    Numbers phonenumbers cannot place (``Etc/Unknown``) get ``default_zone``.
    """
    zone_named(default_zone)
    if stored_zone:
        zone_named(stored_zone)
        return (stored_zone,)
    from phonenumbers import timezone as phone_timezones  # its tables load on first use

    candidates = phone_timezones.time_zones_for_number(_parse(e164))
    named = (default_zone if zone == UNKNOWN_ZONE else zone for zone in candidates)
    return tuple(dict.fromkeys(named)) or (default_zone,)


@dataclass(frozen=True)
class _Clock:
    """One condition: on this zone's clock, the day's window must be open."""

    zone: ZoneInfo
    week: Week
    rule: StateRule | None = None  # when set, its day rules (holidays too) replace ``week``

    def window_on(self, day: date) -> Window | None:
        return self.rule.window_on(day) if self.rule is not None else self.week[day.weekday()]

    def allows(self, moment: datetime) -> bool:
        """True when ``moment`` falls inside the window of its local day on this clock."""
        local = moment.astimezone(self.zone)
        window = self.window_on(local.date())
        return window is not None and local.time() in window

    def openings(self, after: datetime) -> list[datetime]:
        """UTC instants at which a window opens, from the local day before ``after`` on."""
        today = after.astimezone(self.zone).date()
        found = []
        for offset in range(-1, SEARCH_DAYS + 1):
            day = today + timedelta(days=offset)
            window = self.window_on(day)
            if window is not None:
                opening = datetime.combine(day, window.start)
                found.append(_first_instant(opening, self.zone))
                # When clocks go back the opening reading comes round a second time.
                found.append(opening.replace(tzinfo=self.zone, fold=1).astimezone(UTC))
        return found


def _first_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """The first UTC instant whose wall-clock reading in ``zone`` is at or after ``local``.

    An ambiguous reading (clocks going back) resolves to its first occurrence. A reading
    the clocks skip (going forward) resolves to the moment of the jump, found by bisection
    between the instants on either side of the gap.
    """
    instant = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local:
        return instant
    low = int(local.replace(tzinfo=zone, fold=1).timestamp())  # before the gap
    high = int(instant.timestamp())  # after it
    while high - low > 1:
        middle = (low + high) // 2
        reading = datetime.fromtimestamp(middle, zone).replace(tzinfo=None)
        low, high = (low, middle) if reading >= local else (middle, high)
    return datetime.fromtimestamp(high, UTC)


def _clocks(zones: Sequence[str], window: Window | None, rule: StateRule | None) -> list[_Clock]:
    clocks = []
    for name in zones:
        if window is not None:
            clocks.append(_Clock(zone_named(name), (window,) * 7))
        if rule is not None:
            clocks.append(_Clock(zone_named(name), rule.week, rule))
    if rule is not None and rule.clock_zone is not None:
        clocks.append(_Clock(zone_named(rule.clock_zone), rule.week, rule))
    return clocks


def _earliest(now: datetime, clocks: list[_Clock]) -> datetime | None:
    """``now`` if every clock allows it, else the first opening they all allow; None if none.

    The allowed times of one clock are a union of intervals closed on the left, so the
    earliest instant allowed by all of them is ``now`` or the opening of one of them.
    """

    def allowed(moment: datetime) -> bool:
        return all(clock.allows(moment) for clock in clocks)

    if allowed(now):
        return now
    openings = sorted({t for clock in clocks for t in clock.openings(now) if t > now})
    return next((t for t in openings if allowed(t)), None)


def next_allowed_time(
    now_utc: datetime,
    e164: str,
    *,
    window: Window | str | None,
    stored_zone: str | None = None,
    default_zone: str = DEFAULT_ZONE,
    state_rules: bool = True,
) -> datetime | None:
    """None if a broadcast may reach ``e164`` at ``now_utc``; else the earliest UTC time it may.

    ``window`` is the house window (a :class:`Window`, its text, or None for "off"). With
    several candidate zones the message waits until every one of them allows it; when they
    never agree within a week (a toll-free number spans Guam to Newfoundland) the default
    zone alone decides. Raises ValueError for a naive ``now_utc`` or an unknown zone.
    """
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError("now_utc must be timezone-aware (UTC), not naive")
    if isinstance(window, str):
        window = parse_window(window)
    now = now_utc.astimezone(UTC)
    rule = STATE_RULES.get(state_for_number(e164) or "") if state_rules else None
    zones = zones_for_number(e164, stored_zone, default_zone)
    clocks = _clocks(zones, window, rule)
    if not clocks:
        return None
    found = _earliest(now, clocks)
    if found is None and zones != (default_zone,):
        found = _earliest(now, _clocks((default_zone,), window, rule))
    if found is None:
        raise ValueError(f"quiet hours {window} and the state rule never leave a time to send")
    return None if found == now else found
