"""Which numbers the sender can text: a North American short code reaches only the US and
Canada; a long number or a Messaging Service is not limited."""

from __future__ import annotations

import pytest

from sms_service.domain.reach import reach_of, region_of

SHORT_CODE = reach_of("21333")


@pytest.mark.parametrize("phone", ["+12025550123", "+14165550123", "+16135550123"])
def test_a_short_code_reaches_us_and_canadian_numbers(phone):
    assert SHORT_CODE.reaches(phone)


@pytest.mark.parametrize(
    "phone, country",
    [("+447400123456", "the UK"), ("+33612345678", "FR"), ("+18765550123", "JM")],
)
def test_a_short_code_refuses_other_countries_and_says_which(phone, country):
    refusal = SHORT_CODE.refusal(phone)
    assert refusal == (
        f"texts from short code 21333 reach only numbers in Canada or the US, not {country}"
    )


def test_a_long_number_or_messaging_service_has_no_limit_here():
    assert reach_of("+12025550100").reaches("+447400123456")
    assert reach_of("21333", messaging_service=True).reaches("+447400123456")


def test_the_regions_a_short_code_reaches_can_be_set():
    uk_short_code = reach_of("60060", short_code_regions="GB")
    assert uk_short_code.reaches("+447400123456")
    assert not uk_short_code.reaches("+12025550123")


def test_the_answer_is_the_same_from_the_prefix_cache():
    reach = reach_of("21333")
    assert [reach.reaches(p) for p in ("+447400123456", "+447400123999", "+12025550123")] == [
        False, False, True,
    ]  # fmt: skip
    assert region_of("+447400123456") == "GB" and region_of("+999") is None


def test_the_broadcast_gate_skips_an_unreachable_number_before_anything_else():
    from datetime import UTC, datetime

    from sms_service.domain.broadcast_gate import Recipient, Rules, decide

    rules = Rules(window=None, cap=4, default_zone="UTC", reach=reach_of("21333"))
    now = datetime(2026, 7, 1, 15, tzinfo=UTC)
    uk = decide(Recipient("+447400123456", "subscribed", sent_recently=9), now, rules)
    assert (uk.action, uk.reason) == ("skip", "unreachable")
    stopped = decide(Recipient("+447400123456", "opted_out"), now, rules)
    assert stopped.reason == "opted_out"  # consent is still the first answer
    assert decide(Recipient("+12025550123", "subscribed"), now, rules).action == "send"
