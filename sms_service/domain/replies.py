"""The wording of every keyword reply, in English or Spanish, built from the program's settings.

Carriers (CTIA) audit these texts: opt-in confirmations and HELP answers must name the
program, state the frequency, say "Msg & data rates may apply" ("Pueden aplicarse tarifas
de mensajes y datos") and tell how to get help and how to stop. The opt-out confirmation
names the program, says nothing more will be sent and carries no marketing. The exact text
sent is stored with each consent event, so wording changes never rewrite what a supporter
was told.

Every function takes ``lang`` ("en", the default, or "es"); any other value is English.
Spanish replies name the Spanish keywords (AYUDA, ALTO, UNIRSE); the English ones still
work in either language. They use "usted" and refer to "su número", which keeps them
free of grammatical gender.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LANGUAGES = ("en", "es")
RATES = "Msg & data rates may apply."
HELP_STOP = "Reply HELP for help, STOP to cancel."
RATES_ES = "Pueden aplicarse tarifas de mensajes y datos."
HELP_STOP_ES = "Responda AYUDA para obtener ayuda, ALTO para cancelar."

_PER = {"mo": "al mes", "month": "al mes", "wk": "a la semana", "week": "a la semana",
        "day": "al día", "d": "al día"}  # fmt: skip
_FREQUENCY = re.compile(
    r"^up to (\d+) (?:msgs?|messages?|texts?)\s*(?:/|per |a |an )\s*(mo|month|wk|week|day|d)\.?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Program:
    """The program's identity as disclosed to supporters; ``frequency_es`` is the Spanish
    frequency text (None: derived from ``frequency`` when it reads "Up to N msgs/mo")."""

    name: str
    help_contact: str
    frequency: str
    terms_url: str | None = None
    frequency_es: str | None = None

    def __post_init__(self) -> None:
        for field in ("name", "help_contact", "frequency"):
            if not getattr(self, field).strip():
                raise ValueError(f"program {field} must not be empty")


def spanish_frequency(frequency: str) -> str | None:
    """The Spanish of "Up to 4 msgs/mo" ("Hasta 4 mensajes al mes"); None when unreadable."""
    match = _FREQUENCY.match(frequency.strip())
    if match is None:
        return None
    count, per = match.groups()
    noun = "mensaje" if count == "1" else "mensajes"
    return f"Hasta {count} {noun} {_PER[per.lower()]}"


def _es(lang: str | None) -> bool:
    return lang == "es"


def _frequency(program: Program, lang: str | None = "en") -> str:
    text = program.frequency.strip()
    if _es(lang):
        # Without a Spanish text the English one is used: the disclosure must be there.
        text = (program.frequency_es or "").strip() or spanish_frequency(text) or text
    return text if text.endswith(".") else text + "."


def _terms(program: Program, lang: str | None = "en") -> str:
    if not program.terms_url:
        return ""
    return f" {'Términos' if _es(lang) else 'Terms'}: {program.terms_url}"


def _disclosure(program: Program, lang: str | None) -> str:
    """Frequency, rates, HELP/STOP and terms: the part every opt-in reply carries."""
    if _es(lang):
        return f"{_frequency(program, lang)} {RATES_ES} {HELP_STOP_ES}{_terms(program, lang)}"
    return f"{_frequency(program)} {RATES} {HELP_STOP}{_terms(program)}"


def _ask_name(ask: bool, lang: str | None) -> str:
    if not ask:
        return ""
    if _es(lang):
        return " Responda con su nombre completo para añadirlo a su firma."
    return " Reply with your full name to add it to your signature."


def opt_in_confirmation(program: Program, lang: str | None = "en") -> str:
    """First message after JOIN/START/UNIRSE: the full CTIA disclosure."""
    if _es(lang):
        return (
            f"{program.name}: Su número está suscrito a alertas recurrentes. "
            f"{_disclosure(program, lang)}"
        )
    return f"{program.name}: You're subscribed to recurring alerts. {_disclosure(program, lang)}"


def signed_and_subscribed(program: Program, title: str, lang: str | None = "en") -> str:
    """After SIGN: thanks, the recurring-message disclosure, and the name question."""
    if _es(lang):
        return (
            f'{program.name}: ¡Gracias por firmar "{title}"!{_ask_name(True, lang)} Recibirá '
            f"alertas recurrentes. {_disclosure(program, lang)}"
        )
    return (
        f'{program.name}: Thanks for signing "{title}"!{_ask_name(True, lang)} You\'ll get '
        f"recurring alerts. {_disclosure(program, lang)}"
    )


def already_signed(program: Program, title: str, ask_name: bool, lang: str | None = "en") -> str:
    """SIGN again for a petition this number already signed: nothing is counted twice."""
    ask = _ask_name(ask_name, lang)
    if _es(lang):
        return f'{program.name}: Ya firmó "{title}". ¡Gracias!{ask} {HELP_STOP_ES}'
    return f'{program.name}: You already signed "{title}" - thank you!{ask} {HELP_STOP}'


def signed_before_and_resubscribed(
    program: Program, title: str, ask_name: bool, lang: str | None = "en"
) -> str:
    """SIGN from an opted-out number that already signed: not counted again, opted back in
    with the full disclosure."""
    ask = _ask_name(ask_name, lang)
    if _es(lang):
        return (
            f'{program.name}: Ya firmó "{title}". ¡Gracias!{ask} Su número está suscrito de '
            f"nuevo a alertas recurrentes. {_disclosure(program, lang)}"
        )
    return (
        f'{program.name}: You already signed "{title}" - thank you!{ask} You\'re subscribed '
        f"to recurring alerts again. {_disclosure(program, lang)}"
    )


def name_thanks(
    program: Program, name: str, title: str, count: int, lang: str | None = "en"
) -> str:
    """Answer to the name reply, with the petition's signature count."""
    first = name.split()[0]
    if _es(lang):
        noun = "firma" if count == 1 else "firmas"
        return (
            f'{program.name}: ¡Gracias, {first}! "{title}" ya tiene {count:,} {noun}. '
            f"Responda ALTO para cancelar."
        )
    noun = "signature" if count == 1 else "signatures"
    return (
        f'{program.name}: Thank you, {first}! "{title}" now has {count:,} {noun}. '
        f"Reply STOP to cancel."
    )


def already_subscribed(program: Program, lang: str | None = "en") -> str:
    """JOIN or START from a number that is already in."""
    if _es(lang):
        return f"{program.name}: Su número ya está suscrito. {HELP_STOP_ES}"
    return f"{program.name}: You're already subscribed. {HELP_STOP}"


def opt_out_confirmation(program: Program, lang: str | None = "en") -> str:
    """The single confirmation after STOP; nothing follows it."""
    if _es(lang):
        return (
            f"{program.name}: Su número se ha dado de baja y no recibirá más mensajes. "
            f"Responda UNIRSE para volver a suscribirse."
        )
    return (
        f"{program.name}: You're unsubscribed and will receive no more messages. "
        f"Reply START to resubscribe."
    )


def help_reply(program: Program, lang: str | None = "en", *, opted_out: bool = False) -> str:
    """HELP / INFO / AYUDA, in every state. An opted-out number is told how to rejoin
    (it has nothing to stop); everyone else how to stop."""
    if _es(lang):
        how = (
            "Su número está dado de baja y no recibe mensajes. Responda UNIRSE para volver "
            "a suscribirse."
            if opted_out
            else "Responda ALTO para cancelar."
        )
        return (
            f"{program.name}: Ayuda en {program.help_contact}. {_frequency(program, lang)} "
            f"{RATES_ES} {how}{_terms(program, lang)}"
        )
    how = (
        "You're unsubscribed and get no messages. Reply START to resubscribe."
        if opted_out
        else "Reply STOP to cancel."
    )
    return (
        f"{program.name}: Help at {program.help_contact}. {_frequency(program)} {RATES} "
        f"{how}{_terms(program)}"
    )


def fallback(program: Program, lang: str | None = "en") -> str:
    """One short answer to a text no keyword matched, for subscribers only."""
    if _es(lang):
        return f"{program.name}: Lo sentimos, no entendimos su mensaje. {HELP_STOP_ES}"
    return f"{program.name}: Sorry, we didn't get that. {HELP_STOP}"


def how_to_stop(program: Program, lang: str | None = "en") -> str:
    """The one short answer to a possible opt-out held for review: how to stop for sure."""
    if _es(lang):
        return f"{program.name}: Responda ALTO para dejar de recibir todos los mensajes."
    return f"{program.name}: Reply STOP to stop all texts."


def no_open_petition(program: Program, lang: str | None = "en") -> str:
    """SIGN while no campaign is active."""
    if _es(lang):
        return f"{program.name}: No hay ninguna petición abierta ahora. {HELP_STOP_ES}"
    return f"{program.name}: There's no open petition right now. {HELP_STOP}"
