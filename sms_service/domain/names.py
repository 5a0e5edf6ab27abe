"""Is a reply a name? Name capture after SIGN saves the next reply as the signer's name.

Pure. The reply is hostile input that ends up in exports, spreadsheets and TwiML, so only
what looks like a person's name is kept: letters (any script), spaces and ' - . , and
nothing else. Everything refused is simply not saved; the text is still handled as an
ordinary message.
"""

from __future__ import annotations

import re
import unicodedata

from sms_service.domain import opt_out

MAX_NAME_LENGTH = 70
MAX_NAME_WORDS = 8

# Replies to "what is your full name?" that are not names.
NOT_NAMES = frozenset(
    {
        "no", "nope", "nah", "not", "yes", "yeah", "yep", "yup", "si", "ok", "okay", "k", "kk",
        "thanks", "thank", "you", "thx", "ty", "tysm", "gracias", "sure", "hi", "hello", "hey",
        "hola", "lol", "cool", "great", "nice", "good", "fine", "done", "maybe", "later", "why",
        "what", "who", "how", "anonymous", "anon", "none", "nothing", "na", "prefer", "rather",
        "skip", "pass", "test", "http", "https", "www", "com", "org", "name", "my", "is", "me",
        "nombre", "prefiero", "de", "nada", "bien", "vale",
    }
)  # fmt: skip
_NAME_CHARS = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ '’.,-])*$")
_DOMAIN = re.compile(r"[^\W\d_]\.[^\W\d_]{2,}")
_NAME_EDGES = " .!?,;:"
_SPACES = re.compile(r"\s+")


_NAME_INTRO = re.compile(
    r"^(?:my name is|my names|name is|names|i am|im|i'm|it's|its|this is|me llamo|mi nombre es"
    r"|soy)\s+",
    re.IGNORECASE,
)


def clean_name(body: str) -> str | None:
    """The name in a reply to "what is your full name?", or None when it is not a name.

    Refused: no letters or fewer than two; digits; anything but letters, spaces and
    ' - . , (so no URL, email address or spreadsheet formula); a web address; more than
    ``MAX_NAME_WORDS`` words or ``MAX_NAME_LENGTH`` characters; a reply made only of
    words like "no", "thanks", "ok"; anything with an opt-out word. "My name is" and
    "me llamo" in front are dropped.
    """
    text = _NAME_INTRO.sub("", opt_out.clean(body).replace("’", "'"))
    start, end = 0, len(text)
    while start < end and (text[start] in _NAME_EDGES or not _is_name_char(text[start])):
        start += 1
    while end > start and (text[end - 1] in _NAME_EDGES or not _is_name_char(text[end - 1])):
        end -= 1
    name = text[start:end]
    if not name or len(name) > MAX_NAME_LENGTH or not _NAME_CHARS.match(name):
        return None
    parts = opt_out.words(opt_out.fold(name))
    if (
        sum(ch.isalpha() for ch in name) < 2
        or len(name.split()) > MAX_NAME_WORDS
        or _DOMAIN.search(name)
        or all(part in NOT_NAMES for part in parts)
        or any(part in opt_out.KEYWORDS for part in parts)
    ):
        return None
    return name


def _is_name_char(ch: str) -> bool:
    # Emoji and symbols at the ends ("Ada Lovelace 😊") are dropped; "=" or "+" is not
    # dropped, so a formula is refused rather than trimmed into a name.
    return unicodedata.category(ch)[0] not in ("S", "C", "Z") or ch in "=+-@|"
