"""Reading subscriber and suppression lists, line by line. Pure: no ORM, no I/O of its own.

A list is CSV with a header naming a phone column (``phone``, ``phone_number``, ``number``,
``mobile``, ``cell``, ``msisdn`` or ``e164``) and, for subscriber imports, optionally
``name``, ``opted_in_at`` (ISO date or time; UTC when it has no offset) and
``consent_wording`` (the text the supporter agreed to). A file of bare numbers, one per line
and no header, is read as a phone column too.

Each line yields a :class:`Row` or a :class:`Rejection` (its line number and the reason).
A rejection never carries the line's content: lists come from elsewhere and may hold
anything, and the report is shown and kept.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sms_service.domain.phones import InvalidPhoneNumber, to_e164

PHONE_HEADERS = ("phone", "phone_number", "number", "mobile", "cell", "msisdn", "e164")
NAME_MAX = 100
WORDING_MAX = 2000


@dataclass(frozen=True)
class Row:
    """One accepted line: the number in E.164 and what came with it."""

    line: int
    phone: str
    name: str | None = None
    opted_in_at: datetime | None = None
    consent_wording: str | None = None


@dataclass(frozen=True)
class Rejection:
    """One line left out, by line number, and why (never the line's content)."""

    line: int
    reason: str


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    # Control characters (NUL, ESC...) never reach the database or a terminal.
    text = "".join(ch for ch in value if ch.isprintable() or ch == " ").strip()
    return text or None


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_rows(lines: Iterable[str], *, default_region: str = "US") -> Iterator[Row | Rejection]:
    """Parse a list given as text lines (newlines kept); yields rows and rejections in order.

    Raises ValueError when the header names no phone column (the whole file is refused).
    """
    reader = csv.reader(lines)
    try:
        first = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ValueError("the first line is not CSV") from exc
    header = [(_clean(h) or "").lower().replace(" ", "_") for h in first]
    columns = {name: i for i, name in enumerate(header)}
    phone_at = next((columns[h] for h in PHONE_HEADERS if h in columns), None)
    pending: list[str] | None = None
    if phone_at is None:
        if len(first) != 1:
            raise ValueError(f"no phone column: the header needs one of {', '.join(PHONE_HEADERS)}")
        phone_at, columns, pending = 0, {}, first  # a bare list: the first line is a number
    name_at = columns.get("name")
    when_at = columns.get("opted_in_at")
    wording_at = columns.get("consent_wording")
    while True:
        try:
            fields = pending if pending is not None else next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield Rejection(reader.line_num, "not readable as CSV")
            continue
        pending = None
        if not any(f.strip() for f in fields):
            continue  # blank lines are not data
        yield _row(reader.line_num, fields, phone_at, name_at, when_at, wording_at, default_region)


def _row(line, fields, phone_at, name_at, when_at, wording_at, region) -> Row | Rejection:
    def get(i: int | None) -> str | None:
        return _clean(fields[i]) if i is not None and i < len(fields) else None

    raw = get(phone_at)
    if not raw:
        return Rejection(line, "no phone number")
    try:
        phone = to_e164(raw, region)
    except InvalidPhoneNumber:
        return Rejection(line, "not a valid phone number")
    name = get(name_at)
    if name and len(name) > NAME_MAX:
        return Rejection(line, f"name longer than {NAME_MAX} characters")
    wording = get(wording_at)
    if wording and len(wording) > WORDING_MAX:
        return Rejection(line, f"consent_wording longer than {WORDING_MAX} characters")
    try:
        when = _when(get(when_at))
    except ValueError:
        return Rejection(line, "opted_in_at is not an ISO date or time")
    return Row(line=line, phone=phone, name=name, opted_in_at=when, consent_wording=wording)
