"""Reading a text for a request to stop: an opt-out at once, one held for review, or none.

Pure: no Flask, ORM or Twilio. Since April 2025 consent may be revoked "by any reasonable
means" (47 CFR 64.1200(a)(10)), so a bare keyword is not the only way to say STOP. A
false opt-out harms too (a supporter silently lost), so every reading is one of three:

``CLEAR``
    an opt-out keyword (STOP, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPT OUT, ALTO,
    PARAR, CANCELAR, BAJA…) with nothing but politeness, emphasis, repetition, emoji or
    "all"/"now"/"it" around it ("Stop please", "STOP STOP", "*STOP*", "S\\u200bTOP"), or a
    plain-language request, in English or Spanish, to be removed, to stop being texted
    or contacted, to delete or lose the number, "wrong number", "opt me out",
    "no me envíen más mensajes". Acted on at once.
``POSSIBLE``
    likely but uncertain: a misspelt keyword ("stpo"), spaced-out letters ("S T O P"),
    look-alike letters ("5TOP", Cyrillic), "leave me alone", "not interested", a request
    negated or made conditional ("if you don't stop texting me…"), or any sentence that
    uses an opt-out word ("We've got to STOP this bill!"). Never ignored: held for staff.
``NONE``
    nothing suggests a wish to stop, including an opt-out word that is plainly negated
    ("don't stop fighting", "Can't stop won't stop").

How a text is read: :func:`clean` (NFKC; format characters such as zero-width spaces and
control characters removed; whitespace collapsed), then folded (case, accents,
apostrophes, letters stretched three times or more) and cut into words, so emoji and
punctuation around words are ignored. Plain-language patterns are matched per clause
(split at sentence punctuation and commas), and a request is not taken as one when one of
the two words before it negates or questions it ("please don't stop texting me").

Known limits: only English and Spanish wording is understood; anything else that contains
no opt-out word reads as NONE. The lists below are the policy; the table tests in
``tests/unit/test_opt_out.py`` pin it in both directions.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from sms_service.domain.opt_out_wording import (
    CLEAR_PATTERNS,
    CONDITIONALS,
    FILLERS,
    GUARD_WINDOW,
    INTENSIFIERS,
    KEYWORDS,
    LOOK_ALIKES,
    NEAR,
    NEGATORS,
    POLITENESS,
    POSSIBLE_PATTERNS,
    QUESTIONS,
    SPANISH_KEYWORDS,
    STOP_EMOJI,
)


class Reading(StrEnum):
    """How sure the engine is that a text asks to stop."""

    CLEAR = "clear"
    POSSIBLE = "possible"
    NONE = "none"


@dataclass(frozen=True)
class OptOutReading:
    """The reading of one text: ``why`` says what matched (kept on the consent event for
    the staff who review it), ``keyword`` the opt-out keyword for the log, ``language``
    "en" or "es" when the wording says which (None when it does not, as for STOP)."""

    reading: Reading
    why: str | None = None
    keyword: str | None = None
    language: str | None = None


NOT_ONE = OptOutReading(Reading.NONE)

_CLEAR = tuple((lang, why, re.compile(p)) for lang, why, p in CLEAR_PATTERNS)
_POSSIBLE = tuple((lang, why, re.compile(p)) for lang, why, p in POSSIBLE_PATTERNS)
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_SPACES = re.compile(r"\s+")
_CLAUSE_BREAK = re.compile(r"[.!?;,:¡¿\n]+|\s[-–—]+\s|[()]")
_WORD = re.compile(r"[^\W_]+")
_STRETCHED = re.compile(r"(\w)\1{2,}")
_DOUBLED = re.compile(r"(\w)\1+")
_APOSTROPHES = str.maketrans("", "", "'’ʼ`´")


def clean(body: str) -> str:
    """NFKC, without control and format characters (zero-width spaces, BOMs, bidi marks),
    whitespace collapsed and trimmed: the text as a reader would see it."""
    text = unicodedata.normalize("NFKC", body or "")
    kept = []
    for ch in text:
        if ch.isspace():
            kept.append(" ")
        elif unicodedata.category(ch) not in _DROPPED_CATEGORIES:
            kept.append(ch)
    return _SPACES.sub(" ", "".join(kept)).strip()


def fold(text: str) -> str:
    """Lower case without accents or apostrophes, letters stretched 3+ times shrunk to one
    ("Stooop" → "stop"), for matching."""
    decomposed = unicodedata.normalize("NFD", text.casefold())
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _STRETCHED.sub(r"\1", unicodedata.normalize("NFC", bare).translate(_APOSTROPHES))


def words(folded: str) -> list[str]:
    """The words of a folded text; emoji and punctuation separate words and are dropped."""
    return _WORD.findall(folded)


def _join_phrases(tokens: list[str]) -> list[str]:
    """Join the two-word keywords: "opt out" → optout, "dar/darme de baja" → baja."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        pair = tokens[i : i + 2]
        if pair == ["opt", "out"]:
            out.append("optout")
            i += 2
        elif tokens[i] in ("dar", "darme", "darse", "dame", "denme") and tokens[i + 1 : i + 3] == [
            "de",
            "baja",
        ]:
            out.append("baja")
            i += 3
        else:
            out.append(tokens[i])
            i += 1
    return out


def _core(tokens: list[str]) -> list[str]:
    return [t for t in _join_phrases(tokens) if t not in FILLERS]


def _keyword_reading(core: list[str], why: str) -> OptOutReading:
    first = core[0]
    keyword = {"optout": "OPT OUT", "unsub": "UNSUBSCRIBE"}.get(first, first.upper())
    spanish = any(t in SPANISH_KEYWORDS for t in core)
    return OptOutReading(Reading.CLEAR, why, keyword, "es" if spanish else None)


def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps
    of neighbouring letters each cost one."""
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        rows[i][0] = i
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


def _near_keyword(token: str) -> str | None:
    """The keyword ``token`` is a likely misspelling of, if any."""
    squashed = _DOUBLED.sub(r"\1", token)
    for keyword, allowed in NEAR.items():
        if abs(len(squashed) - len(keyword)) > max(allowed, 1):
            continue
        distance = _distance(squashed, _DOUBLED.sub(r"\1", keyword))
        swapped = distance == 1 and sorted(squashed) == sorted(keyword)
        if distance <= allowed or (allowed == 0 and swapped):
            return keyword
    return None


def _guard(before: list[str], language: str) -> str | None:
    """Returns "question" when the words before a request make it a question or condition,
    "negated" when they turn it around, None when nothing does."""
    window = before[-GUARD_WINDOW:]
    if any(w in QUESTIONS[language] for w in window) or any(
        w in CONDITIONALS[language] for w in before
    ):
        return "question"
    if any(w in NEGATORS[language] for w in window):
        return "negated"
    return None


def _clauses(folded: str) -> list[str]:
    """Each clause as words joined by single spaces, intensifiers dropped and politeness
    trimmed from both ends (so "stop texting please" ends where the request ends)."""
    found = []
    for part in _CLAUSE_BREAK.split(folded):
        tokens = [t for t in words(part) if t not in INTENSIFIERS]
        while tokens and (
            tokens[-1] in POLITENESS or (tokens[-1] == "you" and tokens[-2:-1] == ["thank"])
        ):
            tokens.pop()
        while tokens and tokens[0] in POLITENESS:
            tokens.pop(0)
        if tokens:
            found.append(" ".join(tokens))
    return found


def _match(patterns, clauses: list[str], reading: Reading) -> OptOutReading | None:
    """The first of ``patterns`` found in a clause, read as ``reading``; a match in a
    question or condition is only POSSIBLE; a negated one does not count."""
    for clause in clauses:
        for language, why, pattern in patterns:
            for match in pattern.finditer(clause):
                guard = _guard(clause[: match.start()].split(), language)
                if guard == "question":
                    why = f"{why}, in a question or condition"
                    return OptOutReading(Reading.POSSIBLE, why, None, language)
                if guard is None:
                    why = f"plain request ({why})" if reading is Reading.CLEAR else why
                    return OptOutReading(reading, why, None, language)
    return None


def _mentions(folded: str) -> bool:
    """An opt-out word used in a sentence, unless every use is plainly negated in its
    clause ("don't stop fighting", "no cancelar la marcha")."""
    for part in _CLAUSE_BREAK.split(folded):
        joined = _join_phrases(words(part))
        for index, token in enumerate(joined):
            if token in KEYWORDS:
                language = "es" if token in SPANISH_KEYWORDS else "en"
                if _guard(joined[:index], language) != "negated":
                    return True
    return False


# A burst repeats a handful of short texts ("JOIN", "STOP", "Stop please") thousands of
# times, and a reading depends on the text alone: the readings of short texts (one SMS
# segment at most) are worked out once and kept; a longer text is read every time.
READINGS_KEPT = 4096
KEPT_LENGTH = 160


def read(body: str) -> OptOutReading:
    """How ``body`` reads as a request to stop; see the module docstring for the rules."""
    return _read_kept(body) if len(body) <= KEPT_LENGTH else _read(body)


def _read(body: str) -> OptOutReading:
    text = clean(body)
    folded = fold(text)
    tokens = words(folded)
    if not tokens:
        if any(ch in STOP_EMOJI for ch in text):
            return OptOutReading(Reading.POSSIBLE, "a stop-sign emoji alone")
        return NOT_ONE
    core = _core(tokens)
    if core and all(t in KEYWORDS for t in core):
        return _keyword_reading(core, "opt-out keyword")
    clear = _match(_CLEAR, _clauses(folded), Reading.CLEAR)
    if clear is not None:
        return clear
    return _uncertain(text, folded, tokens, core)


_read_kept = lru_cache(maxsize=READINGS_KEPT)(_read)


def _uncertain(text: str, folded: str, tokens: list[str], core: list[str]) -> OptOutReading:
    alike = words(fold(_look_alike(text)))  # the look-alike letters read as Latin
    alike_core = _core(alike)
    if alike != tokens and alike_core and all(t in KEYWORDS for t in alike_core):
        return _possible("look-alike letters", alike_core[0])
    if core and all(t in KEYWORDS or _near_keyword(t) for t in core):
        near = next(_near_keyword(t) for t in core if t not in KEYWORDS)
        return _possible(f"misspelling of {near.upper()}", near)
    if len(tokens) > 1:
        candidates = ("".join(tokens), "".join(core), "".join(alike), "".join(alike_core))
        for candidate in candidates:
            if candidate in KEYWORDS:
                return _possible("spaced-out letters", candidate)
    possible = _match(_POSSIBLE, _clauses(folded), Reading.POSSIBLE)
    if possible is not None:
        return possible
    if _mentions(folded) or _mentions(fold(_look_alike(text))):
        return OptOutReading(Reading.POSSIBLE, "uses an opt-out word")
    return NOT_ONE


def _possible(why: str, keyword: str) -> OptOutReading:
    language = "es" if keyword in SPANISH_KEYWORDS else None
    return OptOutReading(Reading.POSSIBLE, why, None, language)


def _look_alike(text: str) -> str:
    """``text`` with look-alike characters replaced by the Latin letters they imitate;
    ``$`` and ``@`` only when touching a letter, so "STOP @ 5" is not "STOPa".."""
    marked = re.sub(r"(?<=\w)[$@]|[$@](?=\w)", lambda m: m.group().translate(LOOK_ALIKES), text)
    return marked.casefold().translate(LOOK_ALIKES)
