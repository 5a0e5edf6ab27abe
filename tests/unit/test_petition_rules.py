"""The petition form's rules as a table, and the wording the supporter is shown and sent."""

from __future__ import annotations

import pytest

from sms_service.domain.keywords import could_be_campaign_keyword
from sms_service.domain.petition import (
    CleanSignature,
    FormErrors,
    clean_signature,
    confirmation_text,
    fingerprint,
    web_disclosure,
)
from sms_service.domain.reach import reach_of
from sms_service.domain.replies import Program

SHORT_CODE = reach_of("21333")  # reaches the US and Canada
PROGRAM = Program("Rights Alerts", "help@rights.example", "Up to 4 msgs/mo", "https://r.example/t")

ACCEPTED = [
    # fields, what is stored
    (dict(name="  Ada   Lovelace "), CleanSignature("Ada Lovelace", None, None, False)),
    (dict(name="Zoë", email=" Zoe@Example.ORG "),
     CleanSignature("Zoë", "zoe@example.org", None, False)),
    (dict(name="Li", phone="(202) 555-0123"), CleanSignature("Li", None, "+12025550123", False)),
    (dict(name="Li", phone="+1 202 555 0123", sms_consent=True),
     CleanSignature("Li", None, "+12025550123", True)),
    (dict(name="O'Brien\u0000\r\n"), CleanSignature("O'Brien", None, None, False)),
]  # fmt: skip

REFUSED = [
    # fields, the fields named in the errors
    (dict(name=""), {"name"}),
    (dict(name="   "), {"name"}),
    (dict(name="1234"), {"name"}),
    (dict(name="x" * 101), {"name"}),
    (dict(name="Ada", email="ada@"), {"email"}),
    (dict(name="Ada", email="ada@example"), {"email"}),
    (dict(name="Ada", phone="12"), {"phone"}),
    (dict(name="Ada", phone="+1 123 456 7890"), {"phone"}),  # no such area code
    (dict(name="Ada", phone="+44 7911 123456", sms_consent=True), {"phone"}),  # not US
    (dict(name="Ada", phone="+44 20 7946 0958"), {"phone"}),  # a landline
    (dict(name="Ada", phone="+1 800 555 0199"), {"phone"}),  # toll-free
    (dict(name="Ada", sms_consent=True), {"phone"}),  # texts need a number
    (dict(name="", email="bad", phone="12"), {"name", "email", "phone"}),  # all at once
]


@pytest.mark.parametrize(("fields", "stored"), ACCEPTED)
def test_accepted(fields, stored):
    assert clean_signature(reach=SHORT_CODE, **fields) == stored


@pytest.mark.parametrize(("fields", "bad"), REFUSED)
def test_refused_with_one_message_per_field(fields, bad):
    with pytest.raises(FormErrors) as caught:
        clean_signature(reach=SHORT_CODE, **fields)
    assert set(caught.value.errors) == bad and all(caught.value.errors.values())


def test_error_messages_never_repeat_the_number():
    with pytest.raises(FormErrors) as caught:
        clean_signature(name="Ada", phone="+44 7911 123456", reach=SHORT_CODE)
    assert "7911" not in str(caught.value)


def test_a_long_number_is_left_to_the_carrier():
    stored = clean_signature(name="Ada", phone="+44 7911 123456", reach=reach_of("+12025550100"))
    assert stored.phone == "+447911123456"


def test_fingerprint_ignores_case_but_not_the_address():
    assert fingerprint("Grace", "192.0.2.1") == fingerprint("GRACE", "192.0.2.1")
    assert fingerprint("Grace", "192.0.2.1") != fingerprint("Grace", "192.0.2.2")


def test_disclosure_names_what_ctia_asks_for():
    text = web_disclosure(PROGRAM, sender="21333", privacy_url="https://r.example/p")
    for part in ("Rights Alerts", "21333", "Up to 4 msgs/mo.", "Msg & data rates may apply.",
                 "Reply HELP for help, STOP to cancel.", "not a condition of signing",
                 "Terms: https://r.example/t", "Privacy: https://r.example/p",
                 "reply YES"):  # fmt: skip
        assert part in text


def test_confirmation_text_asks_for_yes_and_discloses():
    text = confirmation_text(PROGRAM, "Release the 64 charged under the National Security Law")
    for part in ("Rights Alerts", "Reply YES", "Up to 4 msgs/mo.", "Msg & data rates may apply.",
                 "STOP to cancel", "https://r.example/t"):  # fmt: skip
        assert part in text
    long = confirmation_text(PROGRAM, "x" * 200)
    assert "x" * 61 not in long and "..." in long


KEYWORD_SHAPES = [
    ("HK64", True), ("hk64", True), ("Hk", True), ("A" * 20, True),
    ("H", False), ("A" * 21, False), ("", False), ("HK64\n", False), (" HK64", False),
    ("HK\x0064", False), ("HK-64", False), ("ＨＫ64", False), ("HK64%00", False),
    ("İK64", False),  # upper-cases to a dotted capital, not ASCII
]  # fmt: skip


@pytest.mark.parametrize(("text", "could"), KEYWORD_SHAPES)
def test_only_a_campaign_keywords_shape_is_looked_up(text, could):
    assert could_be_campaign_keyword(text) is could
