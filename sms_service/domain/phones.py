"""Phone numbers: parse to E.164 for storage, mask for logs.

Numbers are stored in E.164 everywhere. Short codes (the program's own "21333") are not
E.164 and are kept as their digits, since carriers address them that way.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

_SHORT_CODE = re.compile(r"^\d{3,8}$")


class InvalidPhoneNumber(ValueError):
    """A text that is not a diallable phone number."""


def to_e164(raw: str | None, default_region: str = "US") -> str:
    """Return ``raw`` in E.164 (``+12025550123``) or raise :class:`InvalidPhoneNumber`.

    A bare national number is read in ``default_region``. Possible-but-unassigned ranges
    are rejected, so a typo never becomes a stored subscriber.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("phone number is missing")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {mask(text)}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"not a valid phone number: {mask(text)}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=256)
def normalise_address(raw: str | None, default_region: str = "US") -> str:
    """E.164 for a phone number, the bare digits for a short code (the ``To`` of inbound texts)."""
    text = (raw or "").strip()
    if _SHORT_CODE.match(text):
        return text
    return to_e164(text, default_region)


def mask(number: str | None) -> str:
    """Mask a number for logs: keep the leading ``+`` and country digit(s) and the last two.

    ``+12025550123`` → ``+1********23``. Short strings are masked whole.
    """
    text = (number or "").strip()
    if len(text) <= 4:
        return "*" * len(text)
    head = 2 if text.startswith("+") else 0
    return text[:head] + "*" * (len(text) - head - 2) + text[-2:]


# E.164 numbers as they appear in log text: "+12025550123", or URL-encoded "%2B12025550123".
_NUMBER_IN_TEXT = re.compile(r"(\+|%2[bB])(\d{7,15})(?!\d)")


def mask_numbers_in(text: str) -> str:
    """Mask every E.164 number in ``text`` (plain or URL-encoded), as :func:`mask` does."""
    return _NUMBER_IN_TEXT.sub(lambda m: m.group(1) + mask("+" + m.group(2))[1:], text)
