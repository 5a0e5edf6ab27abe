"""Quiet hours as tables: (number, moment) → may it go now, and if not, when."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from phonenumbers import geocoder
from phonenumbers.geodata import GEOCODE_DATA

from sms_service.domain.quiet_hours import (
    STATE_NPAS,
    STATE_RULES,
    Window,
    next_allowed_time,
    parse_window,
    state_for_number,
    zones_for_number,
)

HOUSE = "08:00-21:00"

NEW_YORK = "+12125550123"
LOS_ANGELES = "+12135550123"
MIAMI = "+13055550123"  # Florida, Eastern
PANHANDLE = "+18502345678"  # Florida, Central (phonenumbers places this exchange in Chicago)
AUSTIN = "+15125550123"
EL_PASO = "+19155550123"  # Texas, Mountain
BIRMINGHAM = "+12055550123"
NEW_ORLEANS = "+15045550123"
JACKSON = "+16015550123"
PROVIDENCE = "+14015550123"
NEW_HAVEN = "+12035550123"
SEATTLE = "+12065550123"
BALTIMORE = "+14105550123"
TULSA = "+19185550123"
TORONTO = "+14165550123"
VANCOUVER = "+16045550123"
LONDON = "+442079460000"
ALASKA = "+19075550123"  # America/Adak or America/Anchorage
NEVADA = "+17755550123"  # America/Boise or America/Los_Angeles
TOLL_FREE = "+18005550123"  # 42 candidate zones, Guam to Newfoundland
UNPLACEABLE = "+15555550100"  # phonenumbers answers Etc/Unknown


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (number, now in UTC, expected in UTC or None for "send now", extra keyword arguments)
# 2026-11-25 is a Wednesday in standard time; 2026-11-29 a Sunday; 2026-07-15 a Wednesday in
# summer time. US clocks go forward on 2026-03-08 and back on 2026-11-01; UK on 03-29 and 10-25.
CASES = [
    # New York, the house window's edges
    pytest.param(NEW_YORK, "2026-11-25T17:00", None, {}, id="ny-noon"),
    pytest.param(NEW_YORK, "2026-11-25T12:59", "2026-11-25T13:00", {}, id="ny-0759"),
    pytest.param(NEW_YORK, "2026-11-25T13:00", None, {}, id="ny-exactly-0800"),
    pytest.param(NEW_YORK, "2026-11-26T01:59:59", None, {}, id="ny-205959"),
    pytest.param(NEW_YORK, "2026-11-26T02:00", "2026-11-26T13:00", {}, id="ny-exactly-2100"),
    pytest.param(NEW_YORK, "2026-11-26T07:00", "2026-11-26T13:00", {}, id="ny-0200"),
    pytest.param(NEW_YORK, "2026-11-29T14:00", None, {}, id="ny-sunday-no-state-rule"),
    # Los Angeles: the same window, three hours later
    pytest.param(LOS_ANGELES, "2026-11-25T15:00", "2026-11-25T16:00", {}, id="la-0700"),
    pytest.param(LOS_ANGELES, "2026-11-26T04:59", None, {}, id="la-2059"),
    pytest.param(LOS_ANGELES, "2026-11-26T05:00", "2026-11-26T16:00", {}, id="la-2100"),
    # Florida: 8 p.m. by statute, in its Eastern and Central parts
    pytest.param(MIAMI, "2026-11-26T00:59", None, {}, id="fl-1959"),
    pytest.param(MIAMI, "2026-11-26T01:00", "2026-11-26T13:00", {}, id="fl-2000"),
    pytest.param(MIAMI, "2026-11-26T01:00", None, {"state_rules": False}, id="fl-2000-rules-off"),
    pytest.param(PANHANDLE, "2026-11-26T02:00", "2026-11-26T14:00", {}, id="fl-central-2000"),
    pytest.param(PANHANDLE, "2026-11-25T13:30", "2026-11-25T14:00", {}, id="fl-central-0730"),
    # Texas: 9 a.m. on weekdays, noon on Sundays; El Paso keeps Mountain time
    pytest.param(AUSTIN, "2026-11-25T14:30", "2026-11-25T15:00", {}, id="tx-0830"),
    pytest.param(AUSTIN, "2026-11-29T16:00", "2026-11-29T18:00", {}, id="tx-sunday-1000"),
    pytest.param(AUSTIN, "2026-11-29T18:00", None, {}, id="tx-sunday-noon"),
    pytest.param(AUSTIN, "2026-11-26T02:30", None, {}, id="tx-2030"),
    pytest.param(EL_PASO, "2026-11-25T15:30", "2026-11-25T16:00", {}, id="tx-mountain-0830"),
    # Alabama and Louisiana: 8 to 8, never on Sunday
    pytest.param(BIRMINGHAM, "2026-11-29T16:00", "2026-11-30T14:00", {}, id="al-sunday"),
    pytest.param(BIRMINGHAM, "2026-11-28T16:00", None, {}, id="al-saturday"),
    pytest.param(NEW_ORLEANS, "2026-11-29T02:30", "2026-11-30T14:00", {}, id="la-saturday-2030"),
    # Mississippi: 8 to 8 Central *Standard* Time, so 9 a.m. local in summer
    pytest.param(JACKSON, "2026-07-15T13:30", "2026-07-15T14:00", {}, id="ms-summer-0830"),
    pytest.param(JACKSON, "2026-11-25T14:30", None, {}, id="ms-winter-0830"),
    pytest.param(JACKSON, "2026-11-29T18:00", "2026-11-30T14:00", {}, id="ms-sunday"),
    # Rhode Island: weekdays 9-6, Saturdays 10-5, no Sundays
    pytest.param(PROVIDENCE, "2026-12-02T23:00", "2026-12-03T14:00", {}, id="ri-1800"),
    pytest.param(PROVIDENCE, "2026-11-28T14:30", "2026-11-28T15:00", {}, id="ri-saturday-0930"),
    pytest.param(PROVIDENCE, "2026-11-28T22:30", "2026-11-30T14:00", {}, id="ri-saturday-1730"),
    # State holidays: Alabama, Louisiana and Rhode Island close them; the others do not
    pytest.param(PROVIDENCE, "2026-11-25T23:00", "2026-11-27T14:00", {},
                 id="ri-eve-of-thanksgiving"),
    pytest.param(BIRMINGHAM, "2026-11-26T15:00", "2026-11-27T14:00", {}, id="al-thanksgiving"),
    pytest.param(BIRMINGHAM, "2026-04-27T15:00", "2026-04-28T13:00", {},
                 id="al-confederate-memorial-day"),
    pytest.param(BIRMINGHAM, "2026-07-03T15:00", "2026-07-06T13:00", {},
                 id="al-july-4th-observed-saturday-and-sunday"),
    pytest.param(NEW_ORLEANS, "2026-02-17T16:00", "2026-02-18T14:00", {}, id="la-mardi-gras"),
    pytest.param(PROVIDENCE, "2026-08-10T14:00", "2026-08-11T13:00", {}, id="ri-victory-day"),
    pytest.param(NEW_YORK, "2026-11-26T15:00", None, {}, id="ny-thanksgiving-no-state-rule"),
    pytest.param(AUSTIN, "2026-11-26T18:00", None, {}, id="tx-thanksgiving"),
    pytest.param(JACKSON, "2026-11-26T15:00", None, {}, id="ms-thanksgiving-ban-repealed"),
    pytest.param(BIRMINGHAM, "2026-11-26T15:00", None, {"state_rules": False},
                 id="al-thanksgiving-rules-off"),
    # Connecticut 9-8; Washington, Maryland, Oklahoma 8-8
    pytest.param(NEW_HAVEN, "2026-11-25T13:30", "2026-11-25T14:00", {}, id="ct-0830"),
    pytest.param(SEATTLE, "2026-11-26T04:00", "2026-11-26T16:00", {}, id="wa-2000"),
    pytest.param(BALTIMORE, "2026-11-26T01:00", "2026-11-26T13:00", {}, id="md-2000"),
    pytest.param(TULSA, "2026-11-26T02:00", "2026-11-26T14:00", {}, id="ok-2000"),
    # Canada and the UK: the house window only
    pytest.param(TORONTO, "2026-11-26T01:30", None, {}, id="toronto-2030"),
    pytest.param(TORONTO, "2026-11-26T02:30", "2026-11-26T13:00", {}, id="toronto-2130"),
    pytest.param(VANCOUVER, "2026-11-25T15:00", "2026-11-25T16:00", {}, id="vancouver-0700"),
    pytest.param(LONDON, "2026-11-25T07:30", "2026-11-25T08:00", {}, id="london-winter-0730"),
    pytest.param(LONDON, "2026-07-15T06:30", "2026-07-15T07:00", {}, id="london-summer-0730"),
    pytest.param(LONDON, "2026-03-29T06:30", "2026-03-29T07:00", {}, id="london-spring-day"),
    pytest.param(LONDON, "2026-10-25T07:30", "2026-10-25T08:00", {}, id="london-autumn-day"),
    # Several candidate zones: quiet if quiet in any of them
    pytest.param(ALASKA, "2026-11-25T17:30", "2026-11-25T18:00", {}, id="ak-anchorage-0830"),
    pytest.param(ALASKA, "2026-11-26T05:30", None, {}, id="ak-anchorage-2030"),
    pytest.param(ALASKA, "2026-11-26T06:00", "2026-11-26T18:00", {}, id="ak-anchorage-2100"),
    pytest.param(ALASKA, "2026-11-25T18:00", None, {}, id="ak-adak-0800"),
    pytest.param(NEVADA, "2026-11-25T15:30", "2026-11-25T16:00", {}, id="nv-boise-0830"),
    pytest.param(NEVADA, "2026-11-26T04:00", "2026-11-26T16:00", {}, id="nv-boise-2100"),
    pytest.param(TOLL_FREE, "2026-11-25T12:59", "2026-11-25T22:00", {}, id="toll-free-all-zones"),
    pytest.param(UNPLACEABLE, "2026-11-25T12:59", "2026-11-25T13:00", {}, id="unknown-zone"),
    # A stored zone wins over the area code's
    pytest.param(NEW_YORK, "2026-11-25T14:00", "2026-11-25T16:00",
                 {"stored_zone": "America/Los_Angeles"}, id="stored-zone"),
    pytest.param(MIAMI, "2026-11-26T04:00", "2026-11-26T16:00",
                 {"stored_zone": "America/Los_Angeles"}, id="stored-zone-keeps-state-rule"),
    pytest.param(UNPLACEABLE, "2026-11-25T15:59", "2026-11-25T16:00",
                 {"default_zone": "America/Los_Angeles"}, id="default-zone"),
    # "off": no house window, but state law still holds
    pytest.param(NEW_YORK, "2026-11-25T08:00", None, {"window": "off"}, id="off-ny-0300"),
    pytest.param(MIAMI, "2026-11-25T08:00", "2026-11-25T13:00", {"window": "off"}, id="off-fl"),
    pytest.param(MIAMI, "2026-11-25T08:00", None, {"window": None, "state_rules": False},
                 id="off-and-rules-off"),
    # DST: the window opens at 08:00 on the new clock
    pytest.param(NEW_YORK, "2026-03-08T06:00", "2026-03-08T12:00", {}, id="ny-spring-forward"),
    pytest.param(NEW_YORK, "2026-03-07T06:00", "2026-03-07T13:00", {}, id="ny-day-before"),
    pytest.param(NEW_YORK, "2026-11-01T05:30", "2026-11-01T13:00", {}, id="ny-fall-back"),
    pytest.param(NEW_YORK, "2026-11-01T00:59", None, {}, id="ny-fall-back-eve-2059-edt"),
    pytest.param(NEW_YORK, "2026-11-01T01:00", "2026-11-01T13:00", {}, id="ny-fall-back-eve-2100"),
    pytest.param(LOS_ANGELES, "2026-03-08T14:00", "2026-03-08T15:00", {}, id="la-spring-forward"),
    pytest.param(AUSTIN, "2026-03-08T16:00", "2026-03-08T17:00", {}, id="tx-sunday-dst"),
    # Windows that start inside the skipped or repeated hour
    pytest.param(NEW_YORK, "2026-03-08T06:00", "2026-03-08T07:00", {"window": "02:30-21:00"},
                 id="start-in-spring-gap"),
    pytest.param(NEW_YORK, "2026-11-01T04:00", "2026-11-01T05:30", {"window": "01:30-21:00"},
                 id="start-in-repeated-hour"),
    pytest.param(NEW_YORK, "2026-11-01T05:45", None, {"window": "01:30-21:00"},
                 id="repeated-hour-first-pass"),
    pytest.param(NEW_YORK, "2026-11-01T06:15", "2026-11-01T06:30", {"window": "01:30-21:00"},
                 id="repeated-hour-opens-again"),
]  # fmt: skip


@pytest.mark.parametrize(("number", "now", "expected", "options"), CASES)
def test_next_allowed_time(number, now, expected, options):
    options = {"window": HOUSE} | options
    got = next_allowed_time(utc(now), number, **options)
    assert got == (utc(expected) if expected else None)
    if got is not None:
        assert got.tzinfo is UTC
        assert next_allowed_time(got, number, **options) is None
        assert next_allowed_time(got - timedelta(seconds=1), number, **options) == got


@pytest.mark.parametrize(
    "number", [NEW_YORK, MIAMI, AUSTIN, JACKSON, PROVIDENCE, BIRMINGHAM, ALASKA, LONDON]
)
@pytest.mark.parametrize("start", ["2026-03-06T00:07", "2026-10-30T00:07", "2026-11-24T00:07"])
def test_answer_is_the_earliest_allowed_moment(number, start):
    """Nothing is allowed between now and the answer: checked every 15 minutes over 3 days."""
    step = timedelta(minutes=15)
    for hour in range(0, 72, 5):
        now = utc(start) + timedelta(hours=hour)
        answer = next_allowed_time(now, number, window=HOUSE)
        if answer is None:
            continue
        probe = now + step
        while probe < answer:
            assert next_allowed_time(probe, number, window=HOUSE) is not None, probe
            probe += step


def test_accepts_any_aware_zone_and_a_window_object():
    now = datetime(2026, 11, 25, 7, 59, tzinfo=ZoneInfo("America/New_York"))
    assert next_allowed_time(now, NEW_YORK, window=Window(time(8), time(21))) == utc(
        "2026-11-25T13:00"
    )


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="aware"):
        next_allowed_time(datetime(2026, 11, 25, 12), NEW_YORK, window=HOUSE)


def test_window_that_never_meets_the_state_rule_is_refused():
    with pytest.raises(ValueError, match="never"):
        next_allowed_time(utc("2026-11-25T12:00"), MIAMI, window="20:30-21:00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:00-21:00", Window(time(8), time(21))),
        ("8:30-20:15", Window(time(8, 30), time(20, 15))),
        (" 09:00 - 17:00 ", Window(time(9), time(17))),
        ("00:00-23:59", Window(time(0), time(23, 59))),
        ("off", None),
        ("OFF", None),
        (" Off ", None),
    ],
)
def test_parse_window(text, expected):
    assert parse_window(text) == expected


@pytest.mark.parametrize(
    "text",
    ["25:00-21:00", "08:00-24:00", "08:60-21:00", "21:00-08:00", "08:00-08:00", "8-21",
     "08:00", "", "on", "08:00-21:00-22:00", "0800-2100"],
)  # fmt: skip
def test_parse_window_refuses(text):
    with pytest.raises(ValueError):
        parse_window(text)


def test_window_checks_itself():
    with pytest.raises(ValueError):
        Window(time(21), time(8))
    assert str(Window(time(8), time(21))) == "08:00-21:00"
    assert Window(time(8), time(21)).intersect(Window(time(9), time(20))) == Window(
        time(9), time(20)
    )
    assert Window(time(8), time(9)).intersect(Window(time(10), time(11))) is None


@pytest.mark.parametrize(
    ("number", "stored", "expected"),
    [
        (NEW_YORK, None, ("America/New_York",)),
        (LOS_ANGELES, None, ("America/Los_Angeles",)),
        (PANHANDLE, None, ("America/Chicago",)),
        (ALASKA, None, ("America/Adak", "America/Anchorage")),
        (NEVADA, None, ("America/Boise", "America/Los_Angeles")),
        (LONDON, None, ("Europe/London",)),
        (UNPLACEABLE, None, ("America/New_York",)),
        (ALASKA, "America/Juneau", ("America/Juneau",)),
    ],
)
def test_zones_for_number(number, stored, expected):
    assert zones_for_number(number, stored) == expected


def test_zones_for_number_refuses_unknown_zones_and_garbage():
    with pytest.raises(ValueError, match="time zone"):
        zones_for_number(NEW_YORK, "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="time zone"):
        zones_for_number(NEW_YORK, default_zone="Nowhere")
    with pytest.raises(ValueError, match="E.164"):
        zones_for_number("not a number")


@pytest.mark.parametrize(
    ("number", "state"),
    [(MIAMI, "FL"), (PANHANDLE, "FL"), (AUSTIN, "TX"), (EL_PASO, "TX"), (JACKSON, "MS"),
     (NEW_YORK, None), (TORONTO, None), (LONDON, None), (TOLL_FREE, None)],
)  # fmt: skip
def test_state_for_number(number, state):
    assert state_for_number(number) == state


def test_every_state_rule_has_area_codes_and_a_source():
    assert set(STATE_RULES) == set(STATE_NPAS)
    for rule in STATE_RULES.values():
        assert len(rule.source) > 40


_GEO_NAMES = {"AL": "Alabama", "CT": "Connecticut", "FL": "Florida", "LA": "Louisiana",
              "MD": "Maryland", "MS": "Mississippi", "OK": "Oklahoma", "RI": "Rhode Island",
              "TX": "Texas", "WA": "Washington State"}  # fmt: skip


def _names_state(description: str, state: str) -> bool:
    return description == _GEO_NAMES[state] or description.endswith(f", {state}")


@pytest.mark.parametrize("state", sorted(STATE_NPAS))
def test_area_code_table_agrees_with_phonenumbers(state):
    """Each listed NPA is that state's in phonenumbers' geocoder, and none is missing."""
    for npa in STATE_NPAS[state]:
        number = phonenumbers.parse(f"+1{npa}2345678")
        assert _names_state(geocoder.description_for_valid_number(number, "en"), state), npa
    known = {
        prefix[1:4]
        for prefix, names in GEOCODE_DATA.items()
        if prefix.startswith("1") and len(prefix) >= 4 and _names_state(names.get("en", ""), state)
    }
    assert known <= STATE_NPAS[state]
