"""Reading Twilio's webhook forms defensively: every field is attacker-controlled until the
signature says otherwise, and even a signed form may carry what the database refuses.

The rules, shared by ``/sms/inbound`` and ``/sms/status``:

* text is kept, minus control characters (NUL, ESC, …), which PostgreSQL refuses (NUL) or
  XML cannot carry; line breaks and tabs stay, CR LF becomes LF;
* identifiers (``MessageSid``, ``AccountSid``) longer than the 64 characters we store, or
  holding anything but visible ASCII, are refused with 400 (Twilio's are 34 characters);
* fields Twilio documents as short (``OptOutType``: STOP, START, HELP) are truncated;
* numbers are read only from ASCII digits and clamped to their documented range.
"""

from __future__ import annotations

import re
import unicodedata

from flask import abort

IDENTIFIER_MAX = 64
_IDENTIFIER = re.compile(rf"[\x21-\x7e]{{1,{IDENTIFIER_MAX}}}")


def clean_text(value: str | None) -> str:
    """``value`` without control characters other than LF and tab (CR LF and CR become LF)."""
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n")
    if text.isprintable():  # the common case, no allocation
        return text
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def identifier(form, *names: str, required: bool = True) -> str | None:
    """The first of ``names`` present in ``form``, validated as a Twilio sid; 400 if bad."""
    raw = next((form.get(n) for n in names if form.get(n)), "")
    value = raw.strip()
    if not value:
        if required:
            abort(400, description=f"{names[0]} is missing")
        return None
    if not _IDENTIFIER.fullmatch(value):
        abort(
            400,
            description=f"{names[0]} must be 1 to {IDENTIFIER_MAX} visible ASCII characters",
        )
    return value


def short_text(value: str | None, limit: int) -> str:
    """A field Twilio documents as short: cleaned, stripped and cut to ``limit`` characters."""
    return clean_text(value).strip()[:limit]


def bounded_int(value: str | None, *, low: int, high: int, default: int) -> int:
    """An integer from ASCII digits only, clamped to ``low..high``; ``default`` otherwise.

    ``str.isdigit`` alone accepts "²" and other digits ``int`` refuses.
    """
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()):
        return default
    text = text.lstrip("0") or "0"
    if len(text) > len(str(high)):  # never parse 5,000 digits
        return high
    return max(low, min(high, int(text)))
