"""Phone numbers: E.164 for storage, masked for logs."""

from __future__ import annotations

import logging

import pytest

from sms_service import log_masking
from sms_service.domain.phones import (
    InvalidPhoneNumber,
    mask,
    mask_numbers_in,
    normalise_address,
    to_e164,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+12025550123", "+12025550123"),
        ("(202) 555-0123", "+12025550123"),
        (" 202.555.0123 ", "+12025550123"),
        ("+44 20 7946 0000", "+442079460000"),
        ("+1 416 555 0123", "+14165550123"),
    ],
)
def test_to_e164(raw, expected):
    assert to_e164(raw) == expected


@pytest.mark.parametrize("raw", ["", None, "hello", "+1 555 0100", "12345", "+1 202 555 012"])
def test_to_e164_refuses_what_is_not_a_valid_number(raw):
    with pytest.raises(InvalidPhoneNumber):
        to_e164(raw)


def test_refusals_do_not_repeat_the_number_in_clear():
    with pytest.raises(InvalidPhoneNumber) as caught:
        to_e164("+1 202 555 012")
    assert "555 012" not in str(caught.value) and "202" not in str(caught.value)


def test_short_codes_stay_digits():
    assert normalise_address("21333") == "21333"
    assert normalise_address("+1 (202) 555-0123") == "+12025550123"


@pytest.mark.parametrize(
    ("number", "masked"),
    [("+12025550123", "+1********23"), ("+442079460000", "+4*********00"), ("123", "***")],
)
def test_mask(number, masked):
    assert mask(number) == masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("to +12025550123 failed", "to +1********23 failed"),
        ("GET /phone?number=%2B12025550123 HTTP/1.1", "GET /phone?number=%2B1********23 HTTP/1.1"),
        ("%2b442079460000", "%2b4*********00"),
        (
            "2026-11-25 12:00:00 +0000 job 1732550000123",
            "2026-11-25 12:00:00 +0000 job 1732550000123",
        ),
    ],
)
def test_mask_numbers_in_text(text, expected):
    assert mask_numbers_in(text) == expected


def test_installed_masking_covers_every_logger(caplog):
    log_masking.install()
    log_masking.install()  # once is enough; twice changes nothing
    with caplog.at_level(logging.INFO):
        logging.getLogger("werkzeug").info('"%s" %s', "GET /phone?number=%2B12025550123", 200)
        logging.getLogger("any.library").warning("texting +12025550123")
        logging.getLogger("any.library").warning("%d%% done", 50)
    assert [r.getMessage() for r in caplog.records] == [
        '"GET /phone?number=%2B1********23" 200',
        "texting +1********23",
        "50% done",
    ]
