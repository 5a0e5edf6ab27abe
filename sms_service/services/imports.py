"""Importing subscriber lists (opt-ins) and suppression lists (opt-outs).

Both read a file as a stream and write it in batches of :data:`BATCH` lines, one committed
transaction per batch, so a million-line file keeps memory flat and never holds row locks
that a supporter's STOP would wait on for long. Because every batch is idempotent (a
number already in the state the list asks for is left alone, and no event is recorded for
it), an import that stopped half-way is finished by running it again.

Rules, in order of precedence:

* an opted-out number is never re-subscribed by an import (only the supporter can, by
  texting START); it is counted as ``kept_opted_out``;
* a suppression list opts out every number on it, subscribed or not, and sends nothing
  (a number never seen before gets an ``opted_out`` row, so nothing is ever sent to it);
* each change is one consent event with source ``import``: for opt-ins the consent wording
  given as proof is kept as the event's ``disclosure`` and the consent source in its note.

The service functions take the engine (not a session) because they own their batches;
:func:`import_subscribers` and :func:`import_suppression` are what the CLI and the web
console call, with ``progress(done_bytes, total_bytes)`` for a progress bar.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from sms_service.db import dialect_insert, session_scope
from sms_service.domain.audience import parse_audience
from sms_service.domain.import_rows import Rejection, Row, read_rows
from sms_service.errors import BadRequest
from sms_service.models import (
    ConsentEvent,
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    utcnow,
)

BATCH = 1000
REPORTED = 1000  # rejections kept in the report (all are counted)

SUBS = Subscriber.__table__
EVENTS = ConsentEvent.__table__
TAGS = SubscriberTag.__table__
Progress = Callable[[int, int | None], None]


@dataclass
class ImportReport:
    """What an import did. ``rejections`` holds the first :data:`REPORTED` (line, reason)."""

    lines: int = 0
    changed: int = 0
    already: int = 0
    kept_opted_out: int = 0
    skipped_invalid: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    def reject(self, rejection: Rejection) -> None:
        """Count a rejected line; keep its number and reason while the report has room."""
        self.rejected += 1
        if len(self.rejections) < REPORTED:
            self.rejections.append(rejection)

    def summary(self, verb: str) -> str:
        """One line for people: ``12 subscribed, 3 already, ...``."""
        return (
            f"{self.lines} lines: {self.changed} {verb}, {self.already} already, "
            f"{self.kept_opted_out} opted out (kept), {self.skipped_invalid} invalid numbers "
            f"(kept), {self.rejected} rejected"
        )


def _lines(source: BinaryIO, counter: list[int]) -> Iterator[str]:
    # Bytes are decoded per line, so a file that is not UTF-8 yields rejected lines, not a
    # crash; the byte count drives the progress bar.
    first = True
    for raw in source:
        counter[0] += len(raw)
        if first:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a BOM from spreadsheet exports
            first = False
        yield raw.decode("utf-8", errors="replace")


def _batches(
    source: BinaryIO, total: int | None, report: ImportReport, progress: Progress | None
) -> Iterator[list[Row]]:
    counter = [0]
    batch: list[Row] = []
    for item in read_rows(_lines(source, counter)):
        report.lines += 1
        if isinstance(item, Rejection):
            report.reject(item)
            continue
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
            if progress:
                progress(counter[0], total)
    if batch:
        yield batch
    if progress:
        progress(counter[0], total)


def _open(source: str | os.PathLike | BinaryIO) -> tuple[BinaryIO, int | None, bool]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return path.open("rb"), path.stat().st_size, True
    return source, None, False


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# On PostgreSQL a batch's numbers travel as one array parameter, and its rows as one array
# per column (unnest): a statement with a placeholder per value (an IN of a thousand, a
# multi-row INSERT of six thousand) cost more to build, for SQLAlchemy and psycopg both,
# than to run.
_PG_EXISTING = text(
    "SELECT phone, id, status FROM subscribers WHERE phone = ANY(CAST(:phones AS text[])) "
    "FOR UPDATE"
)


def _existing(session: Session, phones: list[str]) -> dict[str, tuple[int, str]]:
    if _postgres(session):
        rows = session.execute(_PG_EXISTING, {"phones": phones})
    else:
        rows = session.execute(
            select(SUBS.c.phone, SUBS.c.id, SUBS.c.status)
            .where(SUBS.c.phone.in_(phones))
            .with_for_update()
        )
    return {phone: (sid, status) for phone, sid, status in rows}


def _pg_insert_rows(
    session: Session, table, values: list[dict], *, conflict: str = "", returning: str = ""
):
    """``values`` (dicts with the same keys) inserted in their order by one statement over
    one array per column, on PostgreSQL."""
    keys = list(values[0])
    dialect = session.get_bind().dialect
    names = ", ".join(f'"{k}"' for k in keys)
    arrays = ", ".join(f"CAST(:{k} AS {table.c[k].type.compile(dialect=dialect)}[])" for k in keys)
    sql = (
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM unnest({arrays}) "
        f"WITH ORDINALITY AS v({names}, ord) ORDER BY ord"
    )
    if conflict:
        sql += f" ON CONFLICT ({conflict}) DO NOTHING"
    if returning:
        sql += f" RETURNING {returning}"
    columns = {k: [_plain(v[k]) for v in values] for k in keys}
    return session.execute(text(sql), columns)


def _plain(value):
    return value.value if isinstance(value, Enum) else value


def _insert_rows(session: Session, table, values: list[dict]) -> None:
    if not values:
        return
    if _postgres(session):
        _pg_insert_rows(session, table, values)
    else:
        session.execute(table.insert(), values)


def _insert_new(session: Session, values: list[dict]) -> dict[str, int]:
    """Insert subscribers that do not exist yet; the ids of those actually inserted, by
    phone."""
    if not values:
        return {}
    if _postgres(session):
        inserted = _pg_insert_rows(session, SUBS, values, conflict="phone", returning="phone, id")
    else:
        # executemany (SQLAlchemy batches it into multi-row statements, compiled once).
        insert = dialect_insert(session)(SUBS).on_conflict_do_nothing(index_elements=["phone"])
        inserted = session.execute(insert.returning(SUBS.c.phone, SUBS.c.id), values)
    return {phone: sub_id for phone, sub_id in inserted}


def import_subscribers(
    engine: Engine,
    source: str | os.PathLike | BinaryIO,
    *,
    consent_source: str,
    program: str,
    tag: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Subscribe every valid number of a list (except opted-out ones) with an ``opt_in``
    event (source ``import``); tag them when ``tag`` is given. Commits per batch."""
    consent_source = (consent_source or "").strip()
    if not consent_source:
        raise BadRequest("say where the consent was collected (--consent-source)")
    if tag is not None:
        try:
            tag = parse_audience(f"tag:{tag}").value
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
    report = ImportReport()
    stream, total, owned = _open(source)
    try:
        for batch in _batches(stream, total, report, progress):
            with session_scope(engine) as session:
                _subscribe_batch(session, batch, consent_source, program, tag, report)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    finally:
        if owned:
            stream.close()
    return report


def _unique(batch: list[Row], report: ImportReport) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for row in batch:
        if row.phone in rows:
            report.already += 1  # the same number twice in a file is one subscriber
        else:
            rows[row.phone] = row
    return rows


def _subscribe_batch(
    session: Session, batch: list[Row], source: str, program: str, tag: str | None,
    report: ImportReport,
) -> None:  # fmt: skip
    now = utcnow()
    rows = _unique(batch, report)
    existing = _existing(session, list(rows))
    fresh = [
        dict(phone=r.phone, status=SubscriberStatus.SUBSCRIBED, name=r.name,
             opted_in_at=r.opted_in_at or now, created_at=now, updated_at=now)
        for phone, r in rows.items() if phone not in existing
    ]  # fmt: skip
    inserted = _insert_new(session, fresh)
    existing.update(_raced(session, fresh, inserted))
    subscribed = set(inserted)
    keep_tagged = set(subscribed)
    for phone, (sub_id, status) in existing.items():
        if status == SubscriberStatus.SUBSCRIBED:
            report.already += 1
            keep_tagged.add(phone)
        elif status == SubscriberStatus.OPTED_OUT:
            report.kept_opted_out += 1
        elif status == SubscriberStatus.INVALID:
            report.skipped_invalid += 1
        else:
            row = rows[phone]
            session.execute(
                update(SUBS).where(SUBS.c.id == sub_id, SUBS.c.status == status).values(
                    status=SubscriberStatus.SUBSCRIBED, opted_in_at=row.opted_in_at or now,
                    updated_at=now, name=SUBS.c.name if row.name is None else row.name,
                )
            )  # fmt: skip
            subscribed.add(phone)
            keep_tagged.add(phone)
    report.changed += len(subscribed)
    if subscribed:
        events = [_opt_in_event(rows[p], source, program, now) for p in sorted(subscribed)]
        _insert_rows(session, EVENTS, events)
    if tag:
        # Every number's id is known by now: inserted, or read (and locked) above.
        ids = inserted | {phone: sub_id for phone, (sub_id, _) in existing.items()}
        _tag(session, sorted(ids[phone] for phone in keep_tagged), tag)


def _raced(
    session: Session, fresh: list[dict], inserted: Collection[str]
) -> dict[str, tuple[int, str]]:
    # A number that texted in between our read and our insert exists now: read it again.
    missed = [v["phone"] for v in fresh if v["phone"] not in inserted]
    return _existing(session, missed) if missed else {}


def _opt_in_event(row: Row, source: str, program: str, now: datetime) -> dict:
    when = f"; opted in {row.opted_in_at.isoformat()}" if row.opted_in_at else ""
    return dict(
        occurred_at=now, phone=row.phone, event="opt_in", source="import", program=program,
        disclosure=row.consent_wording, note=f"imported; consent source: {source}{when}",
    )  # fmt: skip


def _tag(session: Session, ids: list[int], tag: str) -> None:
    """Tag the subscribers ``ids`` (those tagged already stay as they are)."""
    values = [{"subscriber_id": i, "tag": tag} for i in ids]
    if values and _postgres(session):
        _pg_insert_rows(session, TAGS, values, conflict="subscriber_id, tag")
    elif values:
        insert = dialect_insert(session)(TAGS)
        session.execute(
            insert.on_conflict_do_nothing(index_elements=["subscriber_id", "tag"]), values
        )


def import_suppression(
    engine: Engine,
    source: str | os.PathLike | BinaryIO,
    *,
    program: str,
    list_name: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Opt out every valid number of a list (source ``import``), sending nothing; numbers
    never seen get an ``opted_out`` row. Commits per batch."""
    label = (list_name or "").strip() or (
        Path(source).name if isinstance(source, str | os.PathLike) else "upload"
    )
    report = ImportReport()
    stream, total, owned = _open(source)
    try:
        for batch in _batches(stream, total, report, progress):
            with session_scope(engine) as session:
                _suppress_batch(session, batch, program, label, report)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    finally:
        if owned:
            stream.close()
    return report


def _suppress_batch(
    session: Session, batch: list[Row], program: str, label: str, report: ImportReport
) -> None:
    now = utcnow()
    rows = _unique(batch, report)
    existing = _existing(session, list(rows))
    fresh = [
        dict(phone=p, status=SubscriberStatus.OPTED_OUT, opted_out_at=now, created_at=now,
             updated_at=now)
        for p in rows if p not in existing
    ]  # fmt: skip
    changed = set(_insert_new(session, fresh))
    existing.update(_raced(session, fresh, changed))
    for phone, (sub_id, status) in existing.items():
        if status == SubscriberStatus.OPTED_OUT:
            report.already += 1
            continue
        session.execute(
            update(SUBS).where(SUBS.c.id == sub_id)
            .values(status=SubscriberStatus.OPTED_OUT, opted_out_at=now, updated_at=now)
        )  # fmt: skip
        changed.add(phone)
    report.changed += len(changed)
    if changed:
        events = [
            dict(occurred_at=now, phone=p, event="opt_out", source="import", program=program,
                 note=f"suppression list: {label}")
            for p in sorted(changed)
        ]  # fmt: skip
        _insert_rows(session, EVENTS, events)
