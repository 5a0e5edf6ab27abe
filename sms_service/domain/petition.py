"""Web signing, pure: what a petition form may contain, and what the supporter is told.

No Flask, ORM or Twilio. The page and the API both hand the raw fields to
:func:`clean_signature`, which returns a :class:`CleanSignature` or raises
:class:`FormErrors` with one message per field, so the two cannot drift apart.

The wording follows the CTIA Short Code Monitoring Handbook: beside the number field the
page shows the program name, the short code, the frequency, "Msg & data rates may apply",
HELP and STOP, and the terms and privacy links; ticking the box is never a condition of
signing. The confirmation text names the program, asks for YES and carries the same
disclosure, because entering a number on a form is not by itself consent.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

import phonenumbers

from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.domain.reach import Reach
from sms_service.domain.replies import RATES, Program

MAX_NAME = 100
MAX_EMAIL = 254
# Deliberately loose: one @, a dot in the domain, no spaces. Deliverability is not ours to
# judge, and a strict pattern refuses real addresses.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_NOT_MOBILE = {phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.TOLL_FREE,
               phonenumbers.PhoneNumberType.PREMIUM_RATE, phonenumbers.PhoneNumberType.SHARED_COST,
               phonenumbers.PhoneNumberType.PAGER}  # fmt: skip


class FormErrors(ValueError):
    """The form cannot be accepted; ``errors`` maps each field to one message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class CleanSignature:
    """A signature ready to store: name cleaned, e-mail lower-cased, number in E.164."""

    name: str
    email: str | None
    phone: str | None
    sms_consent: bool


def clean_text(value: object) -> str:
    """``value`` as one line of text: NFKC, without control characters (NUL, CR, LF...),
    whitespace collapsed."""
    text = unicodedata.normalize("NFKC", str(value or ""))
    # Control characters (and CR/LF) never belong in a name or an address.
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    return " ".join(text.split())


def clean_phone(raw: str, *, reach: Reach) -> str:
    """``raw`` as an E.164 mobile number the sender can reach, or :class:`FormErrors`."""
    try:
        number = to_e164(raw)
    except InvalidPhoneNumber:
        message = "That is not a phone number we recognise: use 202-555-0123 or +1 202 555 0123."
        raise FormErrors({"phone": message}) from None
    if phonenumbers.number_type(phonenumbers.parse(number, None)) in _NOT_MOBILE:
        raise FormErrors({"phone": "That number cannot receive texts: give a mobile number."})
    refusal = reach.refusal(number)  # a short code reaches only its own countries
    if refusal is not None:
        raise FormErrors({"phone": f"Sorry: {refusal}."})
    return number


def clean_signature(
    *, name: object, email: object = None, phone: object = None, sms_consent: bool = False,
    reach: Reach,
) -> CleanSignature:  # fmt: skip
    """Check the form's fields; raise :class:`FormErrors` naming every bad field at once."""
    errors: dict[str, str] = {}
    clean_name = clean_text(name)
    if not clean_name:
        errors["name"] = "Enter your name."
    elif len(clean_name) > MAX_NAME:
        errors["name"] = f"Names are at most {MAX_NAME} characters."
    elif not any(ch.isalpha() for ch in clean_name):
        errors["name"] = "Enter your name in letters."
    clean_email = clean_text(email).lower() or None
    if clean_email and (len(clean_email) > MAX_EMAIL or not _EMAIL.match(clean_email)):
        errors["email"] = "Enter an e-mail address like name@example.org, or leave it empty."
    number = None
    raw_phone = clean_text(phone)
    if raw_phone:
        try:
            number = clean_phone(raw_phone, reach=reach)
        except FormErrors as exc:
            errors.update(exc.errors)
    elif sms_consent:
        errors["phone"] = "Enter your mobile number to get texts, or untick the box."
    if errors:
        raise FormErrors(errors)
    return CleanSignature(clean_name, clean_email, number, bool(sms_consent and number))


def fingerprint(name: str, ip: str | None) -> str:
    """What recognises a repeat web signature that gave neither number nor e-mail."""
    return hashlib.sha256(f"{name.casefold()}\x00{ip or ''}".encode()).hexdigest()


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else text + "."


def web_disclosure(program: Program, *, sender: str, privacy_url: str | None = None) -> str:
    """The text shown beside the number field, and stored with each web signature."""
    links = []
    if program.terms_url:
        links.append(f"Terms: {program.terms_url}")
    if privacy_url:
        links.append(f"Privacy: {privacy_url}")
    return " ".join(
        [
            f"By ticking the box you agree to receive recurring text messages from "
            f"{program.name} at {sender}. We will text you once to confirm: reply YES.",
            _sentence(program.frequency),
            RATES,
            "Reply HELP for help, STOP to cancel.",
            "Consent is not a condition of signing.",
            *links,
        ]
    )


def confirmation_text(program: Program, title: str) -> str:
    """The one text sent after a web sign-up: name the program, ask for YES, disclose."""
    terms = f" Terms: {program.terms_url}" if program.terms_url else ""
    short_title = title if len(title) <= 60 else title[:57].rstrip() + "..."
    return (
        f'{program.name}: Thanks for signing "{short_title}". Reply YES to get recurring '
        f"alerts. {_sentence(program.frequency)} {RATES} Reply HELP for help, STOP to cancel."
        f"{terms}"
    )
