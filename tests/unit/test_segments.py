"""Segment counting as carriers split texts, and the GSM-7 helpers for organisers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sms_service.domain.segments import (
    Encoding,
    count_segments,
    estimate_cost,
    gsm_replacements,
    make_gsm_safe,
    ucs2_warning,
)

GSM, UCS2 = Encoding.GSM7, Encoding.UCS2
EMOJI = "\U0001f600"  # outside the BMP: a surrogate pair, two UTF-16 units
CYRILLIC = "д"  # in the BMP, not in GSM: one unit


@pytest.mark.parametrize(
    ("body", "encoding", "segments", "units", "per_segment"),
    [
        pytest.param("", GSM, 0, 0, 160, id="empty is 0 segments (Twilio refuses it)"),
        pytest.param("JOIN", GSM, 1, 4, 160, id="keyword"),
        pytest.param("a" * 160, GSM, 1, 160, 160, id="160 GSM fits one"),
        pytest.param("a" * 161, GSM, 2, 161, 153, id="161 GSM needs two"),
        pytest.param("a" * 306, GSM, 2, 306, 153, id="153*2 fits two"),
        pytest.param("a" * 307, GSM, 3, 307, 153, id="153*2+1 needs three"),
        pytest.param("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", GSM, 1, 42, 160, id="accents"),
        pytest.param("line\r\nbreak", GSM, 1, 11, 160, id="CR and LF are GSM"),
        pytest.param("€" * 80, GSM, 1, 160, 160, id="80 euro signs are 160 septets"),
        pytest.param("€" * 80 + "a", GSM, 2, 161, 153, id="one more septet splits"),
        pytest.param("{}[]~|^\\\f", GSM, 1, 18, 160, id="every extension char costs two"),
        pytest.param("a" * 159 + "€", GSM, 2, 161, 153, id="escape pair at the 160 edge"),
        pytest.param(
            "a" * 152 + "€" + "a" * 151, GSM, 2, 305, 153, id="escape moved to part 2, still 2"
        ),
        pytest.param(
            "a" * 152 + "€" + "a" * 152, GSM, 3, 306, 153, id="escape never split: 306 is 3"
        ),
        pytest.param("a" * 153 + "€" + "a" * 151, GSM, 2, 306, 153, id="escape opens part 2"),
        pytest.param(CYRILLIC * 70, UCS2, 1, 70, 70, id="70 UCS-2 fits one"),
        pytest.param(CYRILLIC * 71, UCS2, 2, 71, 67, id="71 UCS-2 needs two"),
        pytest.param(CYRILLIC * 134, UCS2, 2, 134, 67, id="67*2 fits two"),
        pytest.param(CYRILLIC * 135, UCS2, 3, 135, 67, id="67*2+1 needs three"),
        pytest.param("a" * 159 + "\u2019", UCS2, 3, 160, 67, id="one curly quote: 1 -> 3"),
        pytest.param("Sign now " + EMOJI, UCS2, 1, 11, 70, id="emoji is two units"),
        pytest.param(EMOJI * 35, UCS2, 1, 70, 70, id="35 emoji fill one"),
        pytest.param(EMOJI * 35 + "a", UCS2, 2, 71, 67, id="35 emoji and a letter"),
        pytest.param(
            "a" * 66 + EMOJI + "a" * 65, UCS2, 2, 133, 67, id="pair moved to part 2, still 2"
        ),
        pytest.param("a" * 66 + EMOJI + "a" * 66, UCS2, 3, 134, 67, id="pair never split"),
        pytest.param("€" + CYRILLIC, UCS2, 1, 2, 70, id="euro is one unit in UCS-2"),
        pytest.param("\x1b", UCS2, 1, 1, 70, id="a bare ESC is not a GSM character"),
    ],
)
def test_count_segments(body, encoding, segments, units, per_segment):
    info = count_segments(body)
    assert (info.encoding, info.segments, info.units, info.per_segment) == (
        encoding,
        segments,
        units,
        per_segment,
    )
    assert info.is_gsm is (encoding is GSM)


def test_encoding_is_stored_by_name():
    assert str(count_segments("hi").encoding) == "GSM-7"
    assert str(count_segments(EMOJI).encoding) == "UCS-2"


def test_non_gsm_chars_are_listed_once_in_order():
    info = count_segments("“Sign” " + EMOJI + " “now” " + EMOJI)
    assert info.non_gsm_chars == ("“", "”", EMOJI)
    assert count_segments("plain {GSM} €").non_gsm_chars == ()


def test_segment_info_is_frozen():
    info = count_segments("hi")
    with pytest.raises(AttributeError):
        info.segments = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("char", "replacement"),
    [
        ("\u2018", "'"),
        ("\u2019", "'"),
        ("\u201c", '"'),
        ("\u201d", '"'),
        ("\u2013", "-"),
        ("\u2014", "-"),
        ("\u2026", "..."),
        ("\u00a0", " "),
        ("\u200b", ""),
        ("\t", " "),
        ("\u2122", "TM"),
        ("á", "a"),
        ("ç", "c"),
        ("ﬁ", "fi"),
        ("Ａ", "A"),
    ],
)
def test_gsm_replacements_offer_a_stand_in(char, replacement):
    assert gsm_replacements(f"x{char}y") == {char: replacement}


@pytest.mark.parametrize("char", [EMOJI, "\u2764", CYRILLIC, "中", "\x1b"])
def test_no_replacement_for_emoji_and_other_scripts(char):
    assert gsm_replacements(f"a{char}b") == {}


def test_gsm_text_needs_no_replacements():
    assert gsm_replacements("Text JOIN to 21333 {now} €5") == {}


@pytest.mark.parametrize(
    ("body", "safe"),
    [
        ("Don’t wait — sign “now”…", 'Don\'t wait - sign "now"...'),
        ("Rally\u00a0at\u00a06pm", "Rally at 6pm"),
        ("zero\u200bwidth", "zerowidth"),
        ("Thanks " + EMOJI + " – see you", "Thanks " + EMOJI + " - see you"),
        ("already GSM", "already GSM"),
    ],
)
def test_make_gsm_safe(body, safe):
    assert make_gsm_safe(body) == safe


def test_make_gsm_safe_brings_a_long_text_back_to_gsm():
    body = "a" * 159 + "\u2019"
    assert count_segments(body).segments == 3
    assert count_segments(make_gsm_safe(body)).segments == 1


def test_ucs2_warning_is_none_for_gsm():
    assert ucs2_warning("Text STOP to end. {€}") is None
    assert ucs2_warning("") is None


def test_ucs2_warning_names_characters_and_offers():
    warning = ucs2_warning("a" * 150 + " “hi”")
    assert warning is not None
    assert "UCS-2" in warning
    assert "“" in warning and "U+201C" in warning and "”" in warning
    assert "replace with '\"'" in warning
    assert "3 segments" in warning
    assert "1 GSM-7 segment." in warning


def test_ucs2_warning_says_emoji_have_no_replacement():
    warning = ucs2_warning("Thanks! " + EMOJI)
    assert warning is not None
    assert EMOJI in warning and "no GSM-7 replacement" in warning
    assert "With the replacements" not in warning  # it would still be UCS-2


def test_ucs2_warning_names_invisible_characters():
    warning = ucs2_warning("6pm\u00a0today")
    assert warning is not None and "U+00A0 NO-BREAK SPACE" in warning


@pytest.mark.parametrize(
    ("segments", "recipients", "price", "expected"),
    [
        (1, 1, 0.0083, Decimal("0.0083")),
        (3, 1000, 0.0083, Decimal("24.9000")),
        (2, 250, "0.0079", Decimal("3.9500")),
        (1, 0, Decimal("0.01"), Decimal("0")),
        (0, 10, 0.0083, Decimal("0")),
    ],
)
def test_estimate_cost(segments, recipients, price, expected):
    cost = estimate_cost(segments, recipients, price)
    assert isinstance(cost, Decimal)
    assert cost == expected


@pytest.mark.parametrize(
    ("segments", "recipients", "price"), [(-1, 1, 0.1), (1, -1, 0.1), (1, 1, -0.1)]
)
def test_estimate_cost_refuses_negatives(segments, recipients, price):
    with pytest.raises(ValueError):
        estimate_cost(segments, recipients, price)
