"""Who a broadcast goes to: reading the audience an organiser names, and number lists.

Pure: no Flask, ORM, Twilio or Redis. The audience is written ``all``, ``campaign:KEYWORD``,
``tag:NAME`` or ``file:PATH`` (a list of numbers). A list is read line by line: every
number is normalised to E.164, and a line that is not a number is reported with its line
number and the reason, never dropped without a word.

Whoever the audience names, only subscribers whose status is ``subscribed`` receive a
broadcast; the planner applies that, not this module.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sms_service.domain.phones import InvalidPhoneNumber, to_e164

KINDS = ("all", "campaign", "tag", "file")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,63}$")
_PHONE_HEADERS = ("phone", "phone_number", "number", "mobile", "cell", "msisdn", "e164")


@dataclass(frozen=True)
class AudienceSpec:
    """A parsed audience: ``kind`` is all, campaign, tag or file; ``value`` the rest."""

    kind: str
    value: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"audience kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if (self.kind == "all") != (self.value is None):
            need = "takes no value" if self.kind == "all" else "needs a value"
            raise ValueError(f"audience {self.kind!r} {need}")

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value}"


def parse_audience(text: str) -> AudienceSpec:
    """Read ``all``, ``campaign:KEYWORD``, ``tag:NAME`` or ``file:PATH``; ValueError otherwise.

    Campaign keywords are upper-cased (keywords are matched that way); tags are kept as
    written; a file path is kept as written.
    """
    cleaned = (text or "").strip()
    if cleaned.lower() == "all":
        return AudienceSpec("all")
    kind, sep, value = cleaned.partition(":")
    kind = kind.strip().lower()
    value = value.strip()
    if not sep or kind not in KINDS or kind == "all" or not value:
        raise ValueError(
            f"audience must be all, campaign:KEYWORD, tag:NAME or file:PATH, not {text!r}"
        )
    if kind in ("campaign", "tag") and not _NAME.match(value):
        raise ValueError(f"{kind} name {value!r} has characters a {kind} cannot have")
    if kind == "campaign":
        value = value.upper()
    return AudienceSpec(kind, value)


@dataclass(frozen=True)
class InvalidLine:
    """A line of a number list that is not a phone number, and why."""

    line: int
    raw: str
    reason: str


@dataclass(frozen=True)
class NumberList:
    """A number list read: E.164 numbers in first-seen order, the lines that were not
    numbers, and how many lines repeated a number already listed."""

    numbers: tuple[tuple[int, str, str], ...]  # (line, raw, e164)
    invalid: tuple[InvalidLine, ...]
    duplicates: int = 0

    @property
    def phones(self) -> tuple[str, ...]:
        """The distinct E.164 numbers."""
        return tuple(e164 for _, _, e164 in self.numbers)


def _cells(text: str) -> Iterable[tuple[int, str]]:
    """(line number, cell) pairs: the phone column of a CSV with a header, else each line's
    first field. Blank lines and ``#`` comments are skipped."""
    rows = list(csv.reader(io.StringIO(text)))
    column = 0
    start = 0
    if rows:
        header = [cell.strip().lower() for cell in rows[0]]
        named = [i for i, cell in enumerate(header) if cell in _PHONE_HEADERS]
        if named:
            column, start = named[0], 1
    for index, row in enumerate(rows[start:], start=start + 1):
        if not row or not "".join(row).strip():
            continue
        cell = row[column].strip() if column < len(row) else ""
        if cell.startswith("#"):
            continue
        yield index, cell


def read_number_list(text: str, default_region: str = "US") -> NumberList:
    """Read a list of numbers (one a line, or a CSV with a phone column) into E.164.

    National numbers are read in ``default_region``. Every bad line is reported.
    """
    seen: set[str] = set()
    numbers: list[tuple[int, str, str]] = []
    invalid: list[InvalidLine] = []
    duplicates = 0
    for line, cell in _cells(text.lstrip("\ufeff")):
        raw = cell[:200]
        if not cell:
            invalid.append(InvalidLine(line, raw, "no number in the phone column"))
            continue
        try:
            e164 = to_e164(cell, default_region)
        except InvalidPhoneNumber as exc:
            invalid.append(InvalidLine(line, raw, str(exc)))
            continue
        if e164 in seen:
            duplicates += 1
            continue
        seen.add(e164)
        numbers.append((line, raw, e164))
    return NumberList(tuple(numbers), tuple(invalid), duplicates)
