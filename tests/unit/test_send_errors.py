"""Delivery rules, pure: how API errors and callback error codes are classified, and the
forward-only status order."""

from __future__ import annotations

import pytest

from sms_service.carrier.sender import SendOutcome
from sms_service.domain.carrier_status import (
    CarrierVerdict,
    Outcome,
    advances,
    classify_api_error,
    classify_delivery_error,
    lower_statuses,
    parse_error_code,
    rank,
    verdict_of_refusal,
)


@pytest.mark.parametrize(
    ("http_status", "code", "expected"),
    [
        (400, 21610, Outcome.OPTED_OUT),
        (400, 21211, Outcome.INVALID_NUMBER),
        (400, 21614, Outcome.INVALID_NUMBER),
        (429, 20429, Outcome.RETRYABLE),
        (429, None, Outcome.RETRYABLE),
        (400, 21611, Outcome.RETRYABLE),
        (500, None, Outcome.RETRYABLE),
        (503, 20500, Outcome.RETRYABLE),
        (504, None, Outcome.UNKNOWN),
        (400, 21602, Outcome.FAILED),  # body required
        (401, 20003, Outcome.FAILED),  # authentication
        (400, 21408, Outcome.FAILED),  # region not enabled
        (None, None, Outcome.FAILED),
    ],
)
def test_api_errors(http_status, code, expected):
    assert classify_api_error(http_status, code) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (21610, CarrierVerdict.OPTED_OUT),
        (30004, CarrierVerdict.POSSIBLE_OPT_OUT),
        (30005, CarrierVerdict.INVALID_NUMBER),
        (30006, CarrierVerdict.INVALID_NUMBER),
        (30003, CarrierVerdict.NONE),  # handset off: try another day
        (30007, CarrierVerdict.NONE),  # filtered: a content problem, not the number's
        (None, CarrierVerdict.NONE),
    ],
)
def test_delivery_error_verdicts(code, expected):
    assert classify_delivery_error(code) is expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (Outcome.OPTED_OUT, CarrierVerdict.OPTED_OUT),
        (Outcome.INVALID_NUMBER, CarrierVerdict.INVALID_NUMBER),
        (Outcome.ACCEPTED, CarrierVerdict.NONE),
        (Outcome.RETRYABLE, CarrierVerdict.NONE),
        (Outcome.UNKNOWN, CarrierVerdict.NONE),
        (Outcome.FAILED, CarrierVerdict.NONE),
    ],
)
def test_what_a_refused_send_says_about_the_number(kind, expected):
    assert verdict_of_refusal(kind) is expected


@pytest.mark.parametrize(
    ("current", "new", "moves"),
    [
        ("pending", "sending", True),
        ("sending", "queued", True),
        ("accepted", "queued", True),
        ("queued", "sent", True),
        ("sent", "delivered", True),
        ("sent", "undelivered", True),
        ("undelivered", "delivered", True),
        ("delivered", "sent", False),
        ("delivered", "undelivered", False),
        ("queued", "sending", False),  # Twilio's "sending" is recorded, never a step back
        ("sent", "sent", False),
        ("failed", "undelivered", False),
        ("queued", "unheard-of", False),
        (None, "queued", False),
        ("something-new", "sent", False),
    ],
)
def test_status_only_moves_forward(current, new, moves):
    assert advances(current, new) is moves


def test_lower_statuses_are_those_a_message_may_leave():
    assert set(lower_statuses("sent")) == {
        "pending",
        "sending",
        "unknown",
        "scheduled",
        "accepted",
        "queued",
    }
    assert lower_statuses("unheard-of") == []
    assert rank(" Delivered ") == rank("delivered")


@pytest.mark.parametrize(("raw", "expected"), [("30003", 30003), (" 21610 ", 21610), ("", None),
                                              (None, None), ("abc", None)])  # fmt: skip
def test_parse_error_code(raw, expected):
    assert parse_error_code(raw) == expected


def test_send_outcome_retry_and_validation():
    assert SendOutcome(kind=Outcome.RETRYABLE).should_retry
    assert SendOutcome(kind=Outcome.UNKNOWN).should_retry
    assert not SendOutcome(kind=Outcome.FAILED, error_code=21602).should_retry
    with pytest.raises(ValueError):
        SendOutcome(kind=Outcome.ACCEPTED)
