"""Audiences as organisers write them, number lists, and the send-time gate, as tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sms_service.domain import broadcast_gate as gate
from sms_service.domain.audience import AudienceSpec, parse_audience, read_number_list
from sms_service.domain.quiet_hours import next_allowed_time, parse_window


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("all", "all", None),
        ("  ALL ", "all", None),
        ("campaign:release64", "campaign", "RELEASE64"),
        ("Campaign: Save-The-Park ", "campaign", "SAVE-THE-PARK"),
        ("tag:volunteers", "tag", "volunteers"),
        ("tag:Ward 3", "tag", "Ward 3"),
        ("file:/tmp/list.csv", "file", "/tmp/list.csv"),
        ("file:numbers with spaces.txt", "file", "numbers with spaces.txt"),
    ],
)
def test_audiences_that_parse(text, kind, value):
    spec = parse_audience(text)
    assert (spec.kind, spec.value) == (kind, value)
    assert str(spec) == (kind if value is None else f"{kind}:{value}")


@pytest.mark.parametrize(
    "text",
    ["", "everyone", "campaign:", "tag:", "file:", "all:x", "group:x", "tag:bad/tag", "tag:#x"],
)
def test_audiences_refused(text):
    with pytest.raises(ValueError):
        parse_audience(text)


def test_spec_checks_itself():
    with pytest.raises(ValueError):
        AudienceSpec("all", "x")
    with pytest.raises(ValueError):
        AudienceSpec("tag")
    with pytest.raises(ValueError):
        AudienceSpec("everyone")


def test_number_list_normalises_and_reports_every_bad_line():
    text = "\n".join(
        [
            "(202) 555-0143",  # 1: national format
            "+1 202 555 0144",  # 2
            "",  # 3: blank, ignored
            "# volunteers from the march",  # 4: comment, ignored
            "not a number",  # 5
            "202-555-0143",  # 6: repeat of line 1
            "12",  # 7: too short
            "+44 20 7946 0958",  # 8: London
        ]
    )
    result = read_number_list(text)
    assert result.phones == ("+12025550143", "+12025550144", "+442079460958")
    assert [(bad.line, bad.raw) for bad in result.invalid] == [(5, "not a number"), (7, "12")]
    assert all(bad.reason for bad in result.invalid)
    assert result.duplicates == 1
    assert result.numbers[0] == (1, "(202) 555-0143", "+12025550143")


def test_number_list_reads_the_phone_column_of_a_csv():
    text = "\ufeffname,Phone,ward\nAna,2025550143,3\nBo,,4\nCy,+12025550199,5\n"
    result = read_number_list(text)
    assert result.phones == ("+12025550143", "+12025550199")
    assert [(bad.line, bad.reason) for bad in result.invalid] == [
        (3, "no number in the phone column")
    ]


def test_number_list_without_header_takes_the_first_field():
    result = read_number_list("2025550143,Ana\n2025550199,Bo\n")
    assert result.phones == ("+12025550143", "+12025550199")
    assert result.invalid == ()


# -- the send-time gate ----------------------------------------------------------------------

NOON_NY = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 12:00 in New York
MIDNIGHT_NY = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 00:00 in New York
DC = "+12025550143"  # no state rule for the District
RULES = gate.Rules(window=parse_window("08:00-21:00"), cap=4, default_zone="America/New_York")


@pytest.mark.parametrize(
    ("status", "sent", "zone", "now", "action", "reason"),
    [
        ("subscribed", 0, None, NOON_NY, "send", None),
        ("opted_out", 0, None, NOON_NY, "skip", "opted_out"),
        ("invalid", 0, None, NOON_NY, "skip", "invalid_number"),
        ("none", 0, None, NOON_NY, "skip", "not_subscribed"),
        ("subscribed", 3, None, NOON_NY, "send", None),
        ("subscribed", 4, None, NOON_NY, "skip", "frequency_cap"),
        ("opted_out", 9, None, MIDNIGHT_NY, "skip", "opted_out"),  # consent comes first
        ("subscribed", 4, None, MIDNIGHT_NY, "skip", "frequency_cap"),  # waiting won't help
        ("subscribed", 0, None, MIDNIGHT_NY, "defer", "quiet_hours"),
        ("subscribed", 0, "Asia/Tokyo", MIDNIGHT_NY, "send", None),  # 14:00 in Tokyo
        ("subscribed", 0, "Asia/Tokyo", NOON_NY, "defer", "quiet_hours"),  # 02:00 there
        ("subscribed", 0, "Not/AZone", NOON_NY, "send", None),  # bad stored zone ignored
    ],
)
def test_gate(status, sent, zone, now, action, reason):
    verdict = gate.decide(gate.Recipient(DC, status, zone, sent), now, RULES)
    assert (verdict.action, verdict.reason) == (action, reason)
    if action == "defer":
        expected = next_allowed_time(now, DC, window=RULES.window, stored_zone=zone)
        assert verdict.not_before == expected


def test_gate_without_cap_or_house_window():
    rules = gate.Rules(window=None, cap=0, default_zone="America/New_York")
    verdict = gate.decide(gate.Recipient(DC, "subscribed", None, 99), MIDNIGHT_NY, rules)
    assert verdict == gate.SEND


def test_state_law_still_applies_with_house_window_off():
    rules = gate.Rules(window=None, cap=0, default_zone="America/New_York")
    austin = "+15125550123"  # Texas: no texts before noon on Sundays
    sunday_morning = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)  # 10:00 in Austin
    verdict = gate.decide(gate.Recipient(austin, "subscribed"), sunday_morning, rules)
    assert verdict.action == "defer" and verdict.not_before.astimezone(UTC).hour == 18


def test_batch_verdicts_share_work_but_not_answers():
    people = [
        gate.Recipient("+12025550143", "subscribed"),
        gate.Recipient("+12025550144", "subscribed", "Asia/Tokyo"),
        gate.Recipient("+12025550145", "opted_out"),
        gate.Recipient("+12025550146", "subscribed"),
    ]
    verdicts = gate.decide_batch(people, MIDNIGHT_NY, RULES)
    assert [v.action for v in verdicts] == ["defer", "send", "skip", "defer"]
