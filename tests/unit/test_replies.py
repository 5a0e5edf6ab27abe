"""Reply wording in English and Spanish: the CTIA content is in both, in every reply that
needs it."""

from __future__ import annotations

import pytest

from config import Settings
from sms_service.domain import replies
from sms_service.domain.replies import Program, spanish_frequency
from sms_service.program import program_from

PROGRAM = Program("Rights Alerts", "help@rights.example", "Up to 4 msgs/mo", "https://r.example/t")
CTIA = {
    "en": ("Rights Alerts", "Up to 4 msgs/mo.", "Msg & data rates may apply.", "HELP", "STOP",
           "https://r.example/t"),
    "es": ("Rights Alerts", "Hasta 4 mensajes al mes.",
           "Pueden aplicarse tarifas de mensajes y datos.", "AYUDA", "ALTO",
           "https://r.example/t"),
}  # fmt: skip
DISCLOSING = [
    lambda lang: replies.opt_in_confirmation(PROGRAM, lang),
    lambda lang: replies.signed_and_subscribed(PROGRAM, "Release the 64", lang),
    lambda lang: replies.signed_before_and_resubscribed(PROGRAM, "Release the 64", True, lang),
]


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("build", DISCLOSING)
def test_every_opt_in_reply_carries_the_full_disclosure(lang, build):
    text = build(lang)
    assert all(part in text for part in CTIA[lang]), text


@pytest.mark.parametrize("lang", ["en", "es"])
def test_help_names_program_contact_frequency_rates_and_how_to_stop(lang):
    text = replies.help_reply(PROGRAM, lang)
    assert "help@rights.example" in text
    assert all(part in text for part in CTIA[lang] if part not in ("HELP", "AYUDA")), text


@pytest.mark.parametrize("lang", ["en", "es"])
def test_help_when_opted_out_tells_how_to_rejoin(lang):
    text = replies.help_reply(PROGRAM, lang, opted_out=True)
    assert "help@rights.example" in text and ("START" in text or "UNIRSE" in text)
    assert "STOP" not in text and "ALTO" not in text


@pytest.mark.parametrize("lang", ["en", "es"])
def test_opt_out_confirmation_names_the_program_and_carries_no_marketing(lang):
    text = replies.opt_out_confirmation(PROGRAM, lang)
    assert text.startswith("Rights Alerts: ")
    assert "http" not in text and "firm" not in text.lower() and "sign" not in text.lower()


def test_other_languages_fall_back_to_english():
    assert replies.fallback(PROGRAM, "fr") == replies.fallback(PROGRAM)
    assert replies.how_to_stop(PROGRAM, None) == "Rights Alerts: Reply STOP to stop all texts."


@pytest.mark.parametrize(
    ("english", "spanish"),
    [("Up to 4 msgs/mo", "Hasta 4 mensajes al mes"),
     ("up to 1 msg/month", "Hasta 1 mensaje al mes"),
     ("Up to 2 messages per week", "Hasta 2 mensajes a la semana"),
     ("Up to 3 texts/day.", "Hasta 3 mensajes al día"), ("Recurring msgs", None)],
)  # fmt: skip
def test_spanish_frequency(english, spanish):
    assert spanish_frequency(english) == spanish


def test_spanish_frequency_setting_wins_and_unreadable_wording_is_kept():
    own = Settings(program_frequency="Weekly alerts", program_frequency_es="Alertas semanales")
    assert "Alertas semanales." in replies.opt_in_confirmation(program_from(own), "es")
    plain = Settings(program_frequency="Weekly alerts")
    assert "Weekly alerts." in replies.opt_in_confirmation(program_from(plain), "es")
