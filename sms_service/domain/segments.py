"""How many SMS segments a text costs, and how to make it cheaper.

A text goes out as GSM-7 when every character is in the GSM 03.38 alphabet, else as UCS-2.

* GSM-7: 160 septets fit in one SMS. A longer text is split into parts of 153 septets (the
  other seven carry the concatenation header). Characters of the extension table
  (``^ { } \\ [ ~ ] | €`` and form feed) are sent as ESC + character and cost two septets;
  an escape pair is never split across parts.
* UCS-2: 70 UTF-16 code units in one SMS, 67 per part when split. A character outside the
  Basic Multilingual Plane (most emoji) is a surrogate pair, two units, never split.

One curly quote pasted from a word processor turns a 160-character text into three UCS-2
segments, so :func:`gsm_replacements`, :func:`make_gsm_safe` and :func:`ucs2_warning` help
organisers avoid that before a broadcast.

An empty body counts as **0 segments**: Twilio refuses an empty body (error 21602), so
nothing is ever sent or billed for it.

Pure: no Flask, ORM or Twilio imports.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

# GSM 03.38 basic character set, without ESC (0x1B), which only introduces the extension
# table and is not a character a text can contain.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM_ALL = GSM_BASIC | GSM_EXTENSION

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

# What people paste from word processors, phones and web pages, with a GSM-7 stand-in.
# An empty string means the character is invisible and is simply dropped.
_REPLACEMENTS: dict[str, str] = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
    "\u0060": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u2022": "-", "\u00b7": ".",
    "\u2026": "...",
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2004": " ", "\u2005": " ", "\u2006": " ",
    "\u2007": " ", "\u2008": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u205f": " ",
    "\u3000": " ", "\t": " ",
    "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "", "\u00ad": "",
    "\u00a9": "(c)", "\u00ae": "(R)", "\u2122": "TM", "\u00bd": "1/2", "\u00bc": "1/4",
    "\u00be": "3/4", "\u2192": "->", "\u2190": "<-", "\u00d7": "x", "\u2264": "<=",
    "\u2265": ">=", "\u2260": "!=",
}  # fmt: skip


class Encoding(StrEnum):
    """The two SMS alphabets; ``str()`` gives the name stored with a message."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class SegmentInfo:
    """What a body costs: encoding, number of segments, and the units they are counted in.

    ``units`` are septets for GSM-7 and UTF-16 code units for UCS-2. ``per_segment`` is the
    capacity of each segment as sent (160/70 single, 153/67 when concatenated).
    ``non_gsm_chars`` lists, once each and in order of appearance, what forces UCS-2.
    """

    encoding: Encoding
    segments: int
    units: int
    per_segment: int
    non_gsm_chars: tuple[str, ...] = ()

    @property
    def is_gsm(self) -> bool:
        """True when the body fits the cheaper GSM-7 alphabet."""
        return self.encoding is Encoding.GSM7


def is_gsm_char(char: str) -> bool:
    """True when ``char`` can be sent in GSM-7 (basic set or extension table)."""
    return char in GSM_BASIC or char in GSM_EXTENSION


def non_gsm_chars(body: str) -> tuple[str, ...]:
    """The distinct characters of ``body`` that GSM-7 cannot carry, in order of appearance."""
    return tuple(dict.fromkeys(c for c in body if not is_gsm_char(c)))


def _pack(costs: list[int], part: int) -> int:
    """Parts of ``part`` units needed for characters of the given costs, none split."""
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments += 1
            used = 0
        used += cost
    return segments


def count_segments(body: str) -> SegmentInfo:
    """Count the segments ``body`` costs as Twilio and the carriers split it.

    The empty body is 0 segments (Twilio refuses to send it).
    """
    # Fast paths first (the carrier simulator counts every send): with no escape pairs or
    # surrogate pairs nothing can straddle a part boundary, so plain division is exact.
    if GSM_BASIC.issuperset(body):
        return _info(Encoding.GSM7, len(body), None, GSM_SINGLE, GSM_PART, ())
    if _GSM_ALL.issuperset(body):
        costs = [2 if c in GSM_EXTENSION else 1 for c in body]
        return _info(Encoding.GSM7, sum(costs), costs, GSM_SINGLE, GSM_PART, ())
    offenders = non_gsm_chars(body)
    if max(body) <= "\uffff":
        return _info(Encoding.UCS2, len(body), None, UCS2_SINGLE, UCS2_PART, offenders)
    costs = [2 if ord(c) > 0xFFFF else 1 for c in body]
    return _info(Encoding.UCS2, sum(costs), costs, UCS2_SINGLE, UCS2_PART, offenders)


def _info(
    encoding: Encoding,
    units: int,
    costs: list[int] | None,
    single: int,
    part: int,
    offenders: tuple[str, ...],
) -> SegmentInfo:
    if units == 0:
        segments = 0
    elif units <= single:
        segments = 1
    elif costs is None:
        segments = -(-units // part)
    else:
        segments = _pack(costs, part)
    return SegmentInfo(
        encoding=encoding,
        segments=segments,
        units=units,
        per_segment=part if segments > 1 else single,
        non_gsm_chars=offenders,
    )


def _replacement(char: str) -> str | None:
    if char in _REPLACEMENTS:
        return _REPLACEMENTS[char]
    # Accented letters outside GSM (á, ç, ō), ligatures and full-width forms decompose to
    # plain letters; keep the result only if all of it is GSM.
    plain = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if plain and plain != char and all(is_gsm_char(c) for c in plain):
        return plain
    return None


def gsm_replacements(body: str) -> dict[str, str]:
    """GSM-7 stand-ins for the non-GSM characters of ``body`` that have one.

    Characters with no sensible stand-in (emoji, most non-Latin scripts) are left out:
    :func:`ucs2_warning` names them. An empty stand-in means an invisible character that
    can simply be dropped.
    """
    found: dict[str, str] = {}
    for char in non_gsm_chars(body):
        replacement = _replacement(char)
        if replacement is not None:
            found[char] = replacement
    return found


def make_gsm_safe(body: str) -> str:
    """``body`` with every replaceable character replaced; the rest (e.g. emoji) is kept."""
    replacements = gsm_replacements(body)
    if not replacements:
        return body
    return "".join(replacements.get(c, c) for c in body)


def estimate_cost(
    segments: int, recipients: int, cost_per_segment: Decimal | float | str
) -> Decimal:
    """What sending ``segments`` segments to each of ``recipients`` costs.

    A float price is read through ``str`` so 0.0083 stays 0.0083, not its binary neighbour.
    """
    if segments < 0 or recipients < 0:
        raise ValueError("segments and recipients must not be negative")
    price = Decimal(str(cost_per_segment))
    if price < 0:
        raise ValueError("cost_per_segment must not be negative")
    return price * segments * recipients


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    shown = char if char.isprintable() and not char.isspace() else ""
    label = f"{shown} ({code} {name})" if shown else f"{code} {name}".strip()
    return label.replace("  ", " ")


def ucs2_warning(body: str) -> str | None:
    """A sentence for organisers when ``body`` would go out as UCS-2, else None.

    Names each character that forces UCS-2 with the replacement offered (or says there is
    none) and what the text would cost with the replacements applied.
    """
    info = count_segments(body)
    if info.is_gsm:
        return None
    replacements = gsm_replacements(body)
    parts = []
    for char in info.non_gsm_chars:
        if char in replacements:
            stand_in = replacements[char]
            offer = f"replace with {stand_in!r}" if stand_in else "remove it"
        else:
            offer = "no GSM-7 replacement"
        parts.append(f"{_describe(char)}: {offer}")
    plural = "s" if info.segments != 1 else ""
    text = (
        f"Sent as UCS-2 ({info.segments} segment{plural}, {UCS2_SINGLE} characters per SMS "
        f"instead of {GSM_SINGLE}) because of: " + "; ".join(parts) + "."
    )
    safe = count_segments(make_gsm_safe(body))
    if safe.is_gsm:
        plural = "s" if safe.segments != 1 else ""
        text += f" With the replacements it would be {safe.segments} GSM-7 segment{plural}."
    return text
