"""The keyword state machine as a table: (text, status) → (intent, new status, reply parts)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from sms_service.domain.keywords import (
    Campaign,
    Catalogue,
    ConsentKind,
    Conversation,
    Intent,
    Status,
    add_business_days,
    clean_name,
    decide,
    normalise,
)
from sms_service.domain.replies import Program

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday
PROGRAM = Program("Rights Alerts", "help@rights.example", "Up to 4 msgs/mo", "https://r.example/t")
HK = Campaign(1, "HK64", "Release the 64")
CLIMATE = Campaign(2, "CLIMATE", "Climate now")
CATALOGUE = Catalogue(by_keyword={"HK64": HK, "CLIMATE": CLIMATE}, default=HK)

NONE, SUB, OUT = Status.NONE, Status.SUBSCRIBED, Status.OPTED_OUT
DISCLOSURE = ("Rights Alerts", "Up to 4 msgs/mo", "Msg & data rates may apply",
              "Reply HELP for help, STOP to cancel", "https://r.example/t")  # fmt: skip
OPT_OUT_CONFIRM = ("Rights Alerts", "no more messages")
HELP = ("Rights Alerts", "help@rights.example", "Up to 4 msgs/mo", "Msg & data rates may apply",
        "STOP")  # fmt: skip
FALLBACK = ("Rights Alerts", "HELP", "STOP")
RATES_ES = "Pueden aplicarse tarifas de mensajes y datos"
DISCLOSURE_ES = ("Rights Alerts", "Hasta 4 mensajes al mes", RATES_ES, "AYUDA", "ALTO",
                 "https://r.example/t")  # fmt: skip
HELP_ES = ("Rights Alerts", "help@rights.example", "Hasta 4 mensajes al mes", RATES_ES, "ALTO")
HELP_OPTED_OUT = ("Rights Alerts", "help@rights.example", "Reply START to resubscribe")
HELP_OPTED_OUT_ES = ("Rights Alerts", "help@rights.example", "Responda UNIRSE")
SILENT = None

OPT_OUT_WORDS = ["STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT", "revoke", "OPTOUT",
                 "opt out", "Opt-Out", "  Stop. ", "STOP!!"]  # fmt: skip
SPANISH_OPT_OUT_WORDS = ["ALTO", "parar", "Cancelar", "baja"]
OPT_OUT_CONFIRM_ES = ("Rights Alerts", "no recibirá más mensajes", "UNIRSE")
PLAIN_OPT_OUTS = ["please stop texting me", "Remove me", "wrong number", "unsubscribe me",
                  "don't text me", "Don’t text me anymore", "Please remove me from this "
                  "list"]  # fmt: skip
HOW_TO_STOP = ("Rights Alerts", "Reply STOP to stop all texts")

TABLE = [
    # text, status, intent, new status, reply must contain (None = no reply), events
    *[(w, SUB, Intent.OPT_OUT, OUT, OPT_OUT_CONFIRM, ("opt_out",)) for w in OPT_OUT_WORDS],
    *[(w, NONE, Intent.OPT_OUT, OUT, OPT_OUT_CONFIRM, ("opt_out",)) for w in OPT_OUT_WORDS[:3]],
    *[(w, SUB, Intent.OPT_OUT, OUT, OPT_OUT_CONFIRM, ("opt_out",)) for w in PLAIN_OPT_OUTS],
    *[
        (w, SUB, Intent.OPT_OUT, OUT, OPT_OUT_CONFIRM_ES, ("opt_out",))
        for w in SPANISH_OPT_OUT_WORDS
    ],  # fmt: skip
    ("Leave me alone!", SUB, Intent.POSSIBLE_OPT_OUT, SUB, HOW_TO_STOP, ("possible_opt_out",)),
    ("STOP", OUT, Intent.OPT_OUT, OUT, SILENT, ("opt_out",)),  # one confirmation, then silence
    (
        "We've got to STOP this bill!",
        SUB,
        Intent.POSSIBLE_OPT_OUT,
        SUB,
        HOW_TO_STOP,
        ("possible_opt_out",),
    ),
    ("Cancel the march?", NONE, Intent.POSSIBLE_OPT_OUT, NONE, SILENT, ("possible_opt_out",)),
    ("Don't cancel the march", SUB, Intent.FALLBACK, SUB, FALLBACK, ()),  # plainly negated
    ("HELP", SUB, Intent.HELP, SUB, HELP, ("help",)),
    ("info", NONE, Intent.HELP, NONE, HELP, ("help",)),
    (" Ayuda ", SUB, Intent.HELP, SUB, HELP_ES, ("help",)),
    ("HELP", OUT, Intent.HELP, OUT, HELP_OPTED_OUT, ("help",)),
    ("¿ayuda?", OUT, Intent.HELP, OUT, HELP_OPTED_OUT_ES, ("help",)),
    ("UNIRSE", NONE, Intent.OPT_IN, SUB, DISCLOSURE_ES, ("opt_in",)),
    ("unirme", OUT, Intent.OPT_IN, SUB, DISCLOSURE_ES, ("opt_in",)),
    ("Unirse", SUB, Intent.ALREADY_SUBSCRIBED, SUB, ("ya está suscrito",), ()),
    (
        "FIRMAR",
        NONE,
        Intent.SIGN,
        SUB,
        ("Release the 64", "nombre completo", *DISCLOSURE_ES),
        ("signature", "opt_in"),
    ),  # fmt: skip
    ("J\u200bOIN", NONE, Intent.OPT_IN, SUB, DISCLOSURE, ("opt_in",)),
    ("JOIN", NONE, Intent.OPT_IN, SUB, DISCLOSURE, ("opt_in",)),
    ("join!", OUT, Intent.OPT_IN, SUB, DISCLOSURE, ("opt_in",)),
    ("JOIN", SUB, Intent.ALREADY_SUBSCRIBED, SUB, ("already subscribed",), ()),
    ("START", OUT, Intent.OPT_IN, SUB, DISCLOSURE, ("opt_in",)),
    ("unstop", OUT, Intent.OPT_IN, SUB, DISCLOSURE, ("opt_in",)),
    ("Yes", OUT, Intent.OPT_IN, SUB, DISCLOSURE, ("opt_in",)),
    ("START", NONE, Intent.OPT_IN, SUB, DISCLOSURE, ("opt_in",)),
    ("YES", NONE, Intent.IGNORED, NONE, SILENT, ()),
    ("START", SUB, Intent.ALREADY_SUBSCRIBED, SUB, ("already subscribed",), ()),
    ("hi", NONE, Intent.IGNORED, NONE, SILENT, ()),
    ("hi", OUT, Intent.IGNORED, OUT, SILENT, ()),
    ("hi", SUB, Intent.FALLBACK, SUB, FALLBACK, ()),
    ("join me please", OUT, Intent.IGNORED, OUT, SILENT, ()),  # keyword must be the whole text
    (
        "SIGN",
        NONE,
        Intent.SIGN,
        SUB,
        ("Release the 64", "full name", *DISCLOSURE),
        ("signature", "opt_in"),
    ),
    ("sign", SUB, Intent.SIGN, SUB, ("Release the 64", "full name"), ("signature",)),
    ("climate", OUT, Intent.SIGN, SUB, ("Climate now", *DISCLOSURE), ("signature", "opt_in")),
]


@pytest.mark.parametrize(("text", "status", "intent", "new_status", "reply", "events"), TABLE)
def test_keyword_table(text, status, intent, new_status, reply, events):
    decision = decide(text, Conversation(status=status), CATALOGUE, PROGRAM, received_at=NOW)
    assert decision.intent is intent
    assert decision.status is new_status
    assert tuple(decision.events) == tuple(ConsentKind(e) for e in events)
    if reply is None:
        assert decision.reply is None
    else:
        for part in reply:
            assert part in decision.reply


def test_opt_out_confirmation_carries_no_marketing():
    reply = decide("STOP", Conversation(SUB), CATALOGUE, PROGRAM, received_at=NOW).reply
    assert "sign" not in reply.lower() and "petition" not in reply.lower()
    assert "http" not in reply


@pytest.mark.parametrize("opt_out_type", ["STOP", "START", "HELP"])
def test_advanced_opt_out_records_without_reply(opt_out_type):
    decision = decide(
        opt_out_type, Conversation(SUB if opt_out_type != "START" else OUT), CATALOGUE, PROGRAM,
        received_at=NOW, carrier_opt_out_type=opt_out_type,
    )  # fmt: skip
    assert decision.reply is None and decision.events


@pytest.mark.parametrize("text", ["ARRET", "stpo", "Stop the war"])
def test_a_carrier_opt_out_is_an_opt_out_whatever_the_wording(text):
    d = decide(text, Conversation(SUB), CATALOGUE, PROGRAM, received_at=NOW,
               carrier_opt_out_type="STOP")  # fmt: skip
    assert d.intent is Intent.OPT_OUT and d.status is OUT and d.reply is None


def pending(asked_ago: timedelta, signed_named=False) -> Conversation:
    return Conversation(
        status=SUB, signed={HK.id: signed_named}, pending_name=HK,
        pending_name_asked_at=NOW - asked_ago, pending_signature_count=1234,
    )  # fmt: skip


def test_name_reply_within_24h_is_saved_with_count():
    d = decide(
        "  Ada   Lovelace ", pending(timedelta(hours=2)), CATALOGUE, PROGRAM, received_at=NOW
    )
    assert d.intent is Intent.NAME and d.name == "Ada Lovelace" and d.sign == HK
    assert "Thank you, Ada" in d.reply and "1,234 signatures" in d.reply
    assert d.clear_pending_name and d.events == ()


def test_name_reply_after_24h_is_a_fallback():
    d = decide("Ada Lovelace", pending(timedelta(hours=25)), CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is Intent.FALLBACK and d.name is None


@pytest.mark.parametrize("text", ["STOP", "help", "JOIN", "sign", "HK64"])
def test_keywords_win_over_pending_name(text):
    d = decide(text, pending(timedelta(minutes=5)), CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is not Intent.NAME and d.name is None


def test_signing_again_never_counts_twice():
    conv = Conversation(status=SUB, signed={HK.id: True})
    d = decide("SIGN", conv, CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is Intent.ALREADY_SIGNED and d.sign is None and d.events == ()


@pytest.mark.parametrize("has_name", [True, False])
def test_an_opted_out_signer_signing_again_is_resubscribed_not_counted(has_name):
    conv = Conversation(status=OUT, signed={HK.id: has_name})
    d = decide("SIGN", conv, CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is Intent.OPT_IN and d.status is SUB
    assert d.sign is None and d.events == (ConsentKind.OPT_IN,)
    assert "already signed" in d.reply and "Thanks for signing" not in d.reply
    assert all(part in d.reply for part in DISCLOSURE)
    assert ("full name" in d.reply) is (not has_name)
    assert (d.ask_name == HK) is (not has_name)


def test_sign_without_open_petition():
    d = decide("SIGN", Conversation(SUB), Catalogue(), PROGRAM, received_at=NOW)
    assert d.intent is Intent.NO_PETITION and "no open petition" in d.reply


def test_possible_opt_out_review_date_is_ten_business_days():
    d = decide("stop the war", Conversation(SUB), CATALOGUE, PROGRAM, received_at=NOW)
    assert d.review_by == date(2026, 12, 9)  # Wed 25 Nov + 10 working days


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [(date(2026, 11, 27), 1, date(2026, 11, 30)), (date(2026, 11, 28), 5, date(2026, 12, 4))],
)
def test_add_business_days_skips_weekends(start, days, expected):
    assert add_business_days(start, days) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("  stop. ", "STOP"), ("Opt   out!", "OPT OUT"), ("ｓｔｏｐ", "STOP")]
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        decide("JOIN", Conversation(NONE), CATALOGUE, PROGRAM, received_at=datetime(2026, 1, 1))


# -- web double opt-in: YES/Y answers a pending confirmation text -----------------------------

WINDOW_OPEN = NOW + timedelta(hours=1)
WINDOW_CLOSED = NOW - timedelta(seconds=1)

WEB_TABLE = [
    # text, status, window ends, intent, new status, confirms, closes, events
    ("YES", NONE, WINDOW_OPEN, Intent.WEB_CONFIRMED, SUB, True, False, ("opt_in",)),
    (" y. ", NONE, WINDOW_OPEN, Intent.WEB_CONFIRMED, SUB, True, False, ("opt_in",)),
    ("Yes!", SUB, WINDOW_OPEN, Intent.WEB_CONFIRMED, SUB, True, False, ("opt_in",)),
    ("YES", NONE, WINDOW_CLOSED, Intent.IGNORED, NONE, False, False, ()),  # too late
    ("Y", NONE, WINDOW_CLOSED, Intent.IGNORED, NONE, False, False, ()),
    ("Y", NONE, None, Intent.IGNORED, NONE, False, False, ()),  # no confirmation pending
    ("STOP", NONE, WINDOW_OPEN, Intent.OPT_OUT, OUT, False, True, ("opt_out",)),
    ("wrong number", NONE, WINDOW_OPEN, Intent.OPT_OUT, OUT, False, True, ("opt_out",)),
    ("STOP", NONE, WINDOW_CLOSED, Intent.OPT_OUT, OUT, False, False, ("opt_out",)),
    ("HELP", NONE, WINDOW_OPEN, Intent.HELP, NONE, False, False, ("help",)),
    ("yes please", NONE, WINDOW_OPEN, Intent.IGNORED, NONE, False, False, ()),  # whole text only
    ("no", NONE, WINDOW_OPEN, Intent.IGNORED, NONE, False, False, ()),
]


@pytest.mark.parametrize(
    ("text", "status", "until", "intent", "new_status", "confirms", "closes", "events"), WEB_TABLE
)
def test_web_confirmation_table(text, status, until, intent, new_status, confirms, closes, events):
    conv = Conversation(status=status, web_confirmation_until=until)
    d = decide(text, conv, CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is intent and d.status is new_status
    assert d.confirms_web is confirms and d.closes_web_confirmation is closes
    assert tuple(d.events) == tuple(ConsentKind(e) for e in events)


def test_web_confirmation_reply_is_the_full_opt_in_disclosure():
    conv = Conversation(status=NONE, web_confirmation_until=WINDOW_OPEN)
    d = decide("YES", conv, CATALOGUE, PROGRAM, received_at=NOW)
    assert all(part in d.reply for part in DISCLOSURE)


def test_window_end_is_inclusive():
    conv = Conversation(status=NONE, web_confirmation_until=NOW)
    assert decide("Y", conv, CATALOGUE, PROGRAM, received_at=NOW).confirms_web


def test_help_to_an_opted_out_number_says_how_to_rejoin_not_how_to_stop():
    for text in ("HELP", "AYUDA", "info"):
        reply = decide(text, Conversation(OUT), CATALOGUE, PROGRAM, received_at=NOW).reply
        assert "STOP" not in reply and "ALTO" not in reply
        assert "START" in reply or "UNIRSE" in reply


@pytest.mark.parametrize(
    ("text", "language"),
    [("AYUDA", "es"), ("ALTO", "es"), ("UNIRSE", "es"), ("FIRMAR", "es"), ("bórrame", "es"),
     ("HELP", "en"), ("JOIN", "en"), ("remove me", "en"), ("STOP", None), ("INFO", None),
     ("hk64", None), ("hi", None)],
)  # fmt: skip
def test_the_language_of_the_wording_is_remembered(text, language):
    d = decide(text, Conversation(SUB, language="es"), CATALOGUE, PROGRAM, received_at=NOW)
    assert d.language == language


@pytest.mark.parametrize(
    ("text", "status", "spanish"),
    [("STOP", SUB, "no recibirá más mensajes"), ("INFO", SUB, RATES_ES),
     ("hi", SUB, "no entendimos"), ("START", OUT, "está suscrito"),  # START is English
     ("hk64", NONE, "Gracias por firmar"), ("stpo", SUB, "Responda ALTO para dejar")],
)  # fmt: skip
def test_replies_follow_the_remembered_language(text, status, spanish):
    d = decide(text, Conversation(status, language="es"), CATALOGUE, PROGRAM, received_at=NOW)
    assert (spanish in d.reply) is (text != "START")


def test_spanish_name_thanks():
    conv = replace(pending(timedelta(hours=1)), language="es")
    d = decide("María José Pérez", conv, CATALOGUE, PROGRAM, received_at=NOW)
    assert d.name == "María José Pérez" and "¡Gracias, María!" in d.reply
    assert "1,234 firmas" in d.reply and "ALTO" in d.reply


def test_a_number_under_review_gets_no_fallback_and_no_second_how_to_stop():
    conv = Conversation(SUB, under_review=True)
    d = decide("hi", conv, CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is Intent.IGNORED and d.reply is None and d.events == ()
    d = decide("stpo", conv, CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is Intent.POSSIBLE_OPT_OUT and d.reply is None
    assert d.events == (ConsentKind.POSSIBLE_OPT_OUT,)
    d = decide("HELP", conv, CATALOGUE, PROGRAM, received_at=NOW)  # HELP is answered always
    assert "help@rights.example" in d.reply
    d = decide("STOP", conv, CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is Intent.OPT_OUT and "no more messages" in d.reply


def test_possible_opt_out_reply_is_short_and_has_no_sorry():
    d = decide("S T O P", Conversation(SUB), CATALOGUE, PROGRAM, received_at=NOW)
    assert d.reply == "Rights Alerts: Reply STOP to stop all texts."
    assert d.note == "possible opt-out: spaced-out letters"


def test_a_possible_opt_out_is_never_saved_as_a_name():
    for text in ("Leave me alone", "stpo", "not interested"):
        d = decide(text, pending(timedelta(minutes=5)), CATALOGUE, PROGRAM, received_at=NOW)
        assert d.intent is Intent.POSSIBLE_OPT_OUT and d.name is None


def test_a_clear_opt_out_during_name_capture_opts_out():
    d = decide("remove me", pending(timedelta(minutes=5)), CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is Intent.OPT_OUT and d.clear_pending_name and d.name is None


NOT_NAMES = [
    "no", "No.", "nope", "thanks", "Thank you!", "ok", "OK thanks", "yes", "sure", "hi",
    "lol", "gracias", "no gracias", "https://evil.example/x", "www.evil.example",
    "evil.example", "bit.ly", "ada@example.org", "=cmd|' /C calc'!A0", "=HYPERLINK(\"x\")",
    "+1 555 0100", "-2+3", "@SUM(A1)", "12345", "Ada 2", "A", "x" * 71,
    "one two three four five six seven eight nine", "😀😀", "!!!", "", "   ", "Don't stop",
    "<script>alert(1)</script>", "Ada\tLovelace\t=1+1", "Anonymous", "my name is", "prefer not",
]  # fmt: skip


@pytest.mark.parametrize("text", NOT_NAMES)
def test_name_capture_refuses_replies_that_are_not_names(text):
    assert clean_name(text) is None
    d = decide(text, pending(timedelta(minutes=5)), CATALOGUE, PROGRAM, received_at=NOW)
    assert d.intent is not Intent.NAME and d.name is None and not d.clear_pending_name


@pytest.mark.parametrize(
    ("text", "name"),
    [("Ada Lovelace", "Ada Lovelace"), ("  ada   lovelace. ", "ada lovelace"),
     ("Seán O'Brien", "Seán O'Brien"), ("Jean-Luc Picard", "Jean-Luc Picard"),
     ("J. R. R. Tolkien", "J. R. R. Tolkien"),
     ("Martin Luther King, Jr.", "Martin Luther King, Jr"),
     ("María de los Ángeles García", "María de los Ángeles García"), ("李小龍", "李小龍"),
     ("My name is Ada Lovelace", "Ada Lovelace"), ("me llamo Ana Ruiz", "Ana Ruiz"),
     ("Ada Lovelace 😊", "Ada Lovelace"), ("Ada\u200b Lovelace", "Ada Lovelace"),
     ("Ada\x1bLovelace", "AdaLovelace"), ("O’Neil", "O'Neil")],
)  # fmt: skip
def test_name_capture_keeps_real_names(text, name):
    assert clean_name(text) == name
