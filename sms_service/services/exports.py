"""CSV exports for compliance staff: consent events, opt-outs and signatures.

Each export is described once, as an :class:`Export`: its columns (header, expression, kind)
and how its query is shaped (joins, filters, order). Two writers read that one description,
so they cannot drift:

* **PostgreSQL**: the cells are formatted and neutralised in SQL and the query runs inside
  ``COPY (SELECT …) TO STDOUT WITH (FORMAT csv)`` through psycopg's copy; the server's CSV
  goes to the output with no Python per cell (compliance asks for tens of millions of rows).
* **SQLite** (and any other database): rows stream from a server-side cursor (``yield_per``)
  and are formatted, neutralised and written by :mod:`csv` in Python.

Both write the same bytes (a test holds them to it): a header row; timestamps in UTC as
Python's ``isoformat`` writes them (``2026-01-01T09:30:00+00:00``, microseconds only when
there are some); dates ``YYYY-MM-DD``; NULL and empty text as an empty, unquoted cell; a
cell quoted only when it holds a comma, a double quote or a line break; rows ended by CRLF.

Cells are spreadsheet-safe by default (:mod:`sms_service.domain.spreadsheet`: a leading
``=``, ``+``, ``-``, ``@``, tab or CR gets a single quote in front, plain numbers excepted);
``raw=True`` (the CLI's ``--raw``) keeps the exact stored text for machine use.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
    null,
    select,
    type_coerce,
)
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Connection, Engine

from sms_service.domain.spreadsheet import (
    FORMULA_STARTS,
    NEUTRALISER,
    PLAIN_NUMBER,
    spreadsheet_safe,
)
from sms_service.models import Campaign, ConsentEvent, ConsentSeal, Signature, Subscriber

BATCH = 2000  # rows per fetch (SQLite path) and per write
# A range of fewer rows than this is not worth a connection of its own (write_export).
MIN_CHUNK_ROWS = 20_000
OPT_OUT_EVENTS = ("opt_out",)
# Set for the COPY's transaction only. An export is one long streaming scan, for which
# PostgreSQL's JIT compiles the per-row expressions for about 2 s (measured on 1M consent
# events, bench/README.md) and wins nothing back. bench/export_rate.py gives its psql
# baseline the same settings.
COPY_SETTINGS = {"jit": "off"}

Kind = Literal["text", "time", "date", "e164"]
# The CHECK constraints that hold a table's phone column to E.164 on PostgreSQL (migration
# 0012). Once validated, every value is "+" and digits, a plain number, which neutralising
# leaves as it is: the COPY path then writes the column as stored (:func:`e164_tables`).
E164_CHECKS = {
    "subscribers": "ck_subscribers_phone_e164",
    "consent_events": "ck_consent_events_phone_e164",
}


@dataclass(frozen=True)
class ExportFilter:
    """Which rows to export: a half-open time range [since, until) and/or one number."""

    since: datetime | None = None
    until: datetime | None = None
    phone: str | None = None

    def __post_init__(self) -> None:
        for value in (self.since, self.until):
            if value is not None and value.tzinfo is None:
                raise ValueError("export bounds must be timezone-aware")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("--since must be before --until")

    def apply(self, query: Select, when: ColumnElement, phone: ColumnElement) -> Select:
        """``query`` limited to this filter, read on its ``when`` and ``phone`` columns."""
        if self.since:
            query = query.where(when >= self.since)
        if self.until:
            query = query.where(when < self.until)
        if self.phone:
            query = query.where(phone == self.phone)
        return query


@dataclass(frozen=True)
class Column:
    """One CSV column: its header, the stored value, and how the value is written.

    ``e164`` is a text column of phone numbers that the schema may hold to E.164
    (:data:`E164_CHECKS`); it is written as text wherever that is not known."""

    header: str
    expr: ColumnElement
    kind: Kind = "text"


@dataclass(frozen=True)
class Export:
    """An export: its columns, ``shape`` adding FROM/JOIN and WHERE to the SELECT of the
    (rendered) columns, and the ``order`` of its rows (ascending).

    ``order_is_key`` says the order's columns are NOT NULL columns of one table that
    together tell every row apart (no two rows tie): the COPY path may then cut the export
    into ranges of them, each written by a statement of its own (:func:`write_export`)."""

    columns: tuple[Column, ...]
    shape: Callable[[Select], Select]
    order: tuple[ColumnElement, ...]
    order_is_key: bool = False

    @property
    def header(self) -> list[str]:
        """The header row."""
        return [c.header for c in self.columns]

    def query(self, render: Callable[[Column], ColumnElement]) -> Select:
        """The export's query, each column rendered by ``render``."""
        selected = select(*(render(c).label(c.header) for c in self.columns))
        return self.shape(selected).order_by(*self.order)


def consent_export(flt: ExportFilter, *, opt_outs_only: bool = False) -> Export:
    """Consent events (or only opt-outs) in the order they happened."""
    e = ConsentEvent
    columns = (
        Column("occurred_at", e.occurred_at, "time"), Column("phone_number", e.phone, "e164"),
        Column("event", e.event), Column("keyword", e.keyword),
        Column("message_body", e.message_body), Column("message_sid", e.message_sid),
        Column("source", e.source), Column("program", e.program),
        Column("disclosure", e.disclosure), Column("campaign", Campaign.keyword),
        Column("review_by", e.review_by, "date"), Column("note", e.note),
        # The chain link, so a recipient can check each event (README, "Consent log");
        # empty until the worker seals the event.
        Column("event_id", e.id), Column("chain_position", ConsentSeal.position),
        Column("prev_hash", ConsentSeal.prev_hash), Column("hash", ConsentSeal.hash),
    )  # fmt: skip

    def shape(query: Select) -> Select:
        query = (
            query.select_from(e)
            .outerjoin(Campaign, Campaign.id == e.campaign_id)
            .outerjoin(ConsentSeal, ConsentSeal.event_id == e.id)
        )
        if opt_outs_only:
            query = query.where(e.event.in_(OPT_OUT_EVENTS))
        return flt.apply(query, e.occurred_at, e.phone)

    return Export(columns, shape, (e.occurred_at, e.id), order_is_key=True)


def signature_export(flt: ExportFilter, *, campaign: str | None = None) -> Export:
    """Petition signatures (of one campaign's keyword, or all) in the order they came."""
    columns = (
        Column("signed_at", Signature.signed_at, "time"),
        Column("phone_number", Subscriber.phone, "e164"),
        Column("name", Signature.name), Column("campaign", Campaign.keyword),
        Column("campaign_title", Campaign.title), Column("source", Signature.source),
        Column("email", Signature.email),
    )  # fmt: skip

    def shape(query: Select) -> Select:
        # Outer: a web signature may come without a number (and so without a subscriber).
        query = (
            query.select_from(Signature)
            .outerjoin(Subscriber, Subscriber.id == Signature.subscriber_id)
            .join(Campaign, Campaign.id == Signature.campaign_id)
        )
        if campaign:
            query = query.where(Campaign.keyword == campaign.upper())
        return flt.apply(query, Signature.signed_at, Subscriber.phone)

    return Export(columns, shape, (Signature.signed_at, Signature.id), order_is_key=True)


def write_consent(
    engine: Engine,
    out: IO,
    flt: ExportFilter,
    *,
    opt_outs_only: bool = False,
    raw: bool = False,
    chunks: int = 1,
) -> int:
    """Write consent events (or only opt-outs) as CSV; returns the number of rows."""
    export = consent_export(flt, opt_outs_only=opt_outs_only)
    return write_export(engine, out, export, raw=raw, chunks=chunks)


def write_signatures(
    engine: Engine,
    out: IO,
    flt: ExportFilter,
    *,
    campaign: str | None = None,
    raw: bool = False,
    chunks: int = 1,
) -> int:
    """Write signatures as CSV; returns the number of rows."""
    export = signature_export(flt, campaign=campaign)
    return write_export(engine, out, export, raw=raw, chunks=chunks)


def write_export(
    engine: Engine,
    out: IO,
    export: Export,
    *,
    raw: bool = False,
    use_copy: bool | None = None,
    chunks: int = 1,
    min_chunk_rows: int = MIN_CHUNK_ROWS,
) -> int:
    """Write ``export`` as CSV to ``out`` (a binary or text stream; UTF-8 either way) and
    return the number of data rows. ``use_copy`` picks the writer (default: COPY on
    PostgreSQL, the row stream elsewhere); both give the same bytes.

    With COPY, an export whose order is a key is cut into up to ``chunks`` ranges of it,
    of about ``min_chunk_rows`` rows at least (:mod:`sms_service.services.export_ranges`),
    copied at once on connections of their own from one snapshot
    (:mod:`sms_service.services.copy_out`); the bytes are the same."""
    write = _byte_writer(out)
    write(_csv_line(export.header))
    if use_copy is None:
        use_copy = engine.dialect.name == "postgresql"
    if use_copy:
        return _write_with_copy(engine, write, export, raw, chunks, min_chunk_rows)
    return _write_rows(engine, write, export, raw)


# --- PostgreSQL: COPY ---------------------------------------------------------------------


# The first characters that can begin a plain number (the sign of PLAIN_NUMBER): only for
# these does a formula start need the regular expression; the others are always neutralised.
_SIGNS = tuple(c for c in FORMULA_STARTS if re.fullmatch(PLAIN_NUMBER, c + "1"))
_ALWAYS = tuple(c for c in FORMULA_STARTS if c not in _SIGNS)
_HIGHEST_START = max(ord(c) for c in FORMULA_STARTS)


def e164_tables(conn: Connection) -> frozenset[str]:
    """The tables of :data:`E164_CHECKS` whose CHECK PostgreSQL has validated: every row's
    phone is E.164 (a constraint added ``NOT VALID`` and never validated says nothing of
    older rows)."""
    validated = conn.execute(
        sql_text(
            "SELECT conname FROM pg_constraint "
            "WHERE contype = 'c' AND convalidated AND conname = ANY(:names)"
        ),
        {"names": list(E164_CHECKS.values())},
    ).scalars()
    names = set(validated)
    return frozenset(table for table, name in E164_CHECKS.items() if name in names)


def _sql_cell(column: Column, *, raw: bool, e164: frozenset[str] = frozenset()) -> ColumnElement:
    """The column as the CSV cell's value, formatted (and neutralised) by PostgreSQL.

    Per row this is the export's main cost, so each cell costs as few function calls as the
    exact formatting allows: one ``to_char`` per timestamp; integers as PostgreSQL writes
    them (an integer's text is never neutralised: it starts with a digit or is a signed
    plain number); text looked at through the code of its first character (``ascii``, an
    integer, 0 for an empty string), so most cells take one comparison and only a ``+`` or
    ``-`` start pays for the plain-number pattern; a phone column of a table in ``e164``
    (:func:`e164_tables`) as stored."""
    expr = column.expr
    if column.kind == "e164" and expr.table.name in e164:
        # "+" and digits or NULL (never empty): COPY writes it as csv.writer would, and a
        # plain number is never neutralised. This spares the plain-number pattern that
        # every phone (a "+" start) would otherwise pay.
        return expr
    if column.kind == "time":
        # isoformat writes microseconds only when there are some; only the fraction can hold
        # a dot, so dropping ".000000" is exactly that.
        utc = func.timezone("UTC", expr)
        iso = func.replace(func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.US'), ".000000", "")
        return type_coerce(iso, Text) + literal("+00:00", Text)
    if column.kind == "date":
        return func.to_char(expr, "YYYY-MM-DD")
    if expr.type._type_affinity is Integer:
        return expr
    text = expr if expr.type._type_affinity is String else cast(expr, Text)
    first = func.ascii(text)
    # COPY writes an empty string as "" and NULL as nothing; csv.writer writes both as
    # nothing. ascii('') is 0, and no text holds a NUL character.
    whens = [(first > _HIGHEST_START, text), (first == 0, null())]
    if not raw:
        neutralised = literal(NEUTRALISER, Text) + text
        whens += [
            (first.in_([ord(c) for c in _ALWAYS]), neutralised),
            (and_(first.in_([ord(c) for c in _SIGNS]), not_(text.regexp_match(PLAIN_NUMBER))),
             neutralised),
        ]  # fmt: skip
    return case(*whens, else_=text)


def copy_query(export: Export, *, raw: bool = False, e164: frozenset[str] = frozenset()) -> Select:
    """The SELECT the COPY path runs: every cell already CSV-ready text; ``e164``: the
    tables whose phone column the schema holds to E.164 (:func:`e164_tables`)."""
    return export.query(lambda column: _sql_cell(column, raw=raw, e164=e164))


def _write_with_copy(
    engine: Engine,
    write: Callable[[bytes], object],
    export: Export,
    raw: bool,
    chunks: int,
    min_chunk_rows: int,
) -> int:
    from sms_service.services.copy_out import copy_out
    from sms_service.services.export_ranges import boundaries, in_range

    def statement(ranged: Select) -> tuple[str, dict]:
        compiled = ranged.compile(
            dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        return f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)", compiled.params

    def plan(conn: Connection) -> list[tuple[str, dict]]:
        query = copy_query(export, raw=raw, e164=e164_tables(conn))
        if chunks < 2 or not export.order_is_key:
            return [statement(query)]
        bounds = boundaries(conn, export, chunks, min_chunk_rows)
        ranges = zip([None, *bounds], [*bounds, None], strict=True)
        return [statement(query.where(*in_range(export.order, *r))) for r in ranges]

    return copy_out(engine, write, plan, settings=COPY_SETTINGS)


# --- Other databases: rows through csv.writer -----------------------------------------------


def _text_cell(value: object) -> str:
    return "" if value is None else str(value)


def _safe_cell(value: object) -> str:
    return "" if value is None else spreadsheet_safe(str(value))


def _time_cell(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _date_cell(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def _write_rows(engine: Engine, write: Callable[[bytes], object], export: Export, raw: bool) -> int:
    text = _text_cell if raw else _safe_cell
    cells = [{"time": _time_cell, "date": _date_cell}.get(c.kind, text) for c in export.columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    count = 0
    for row in _stream(engine, export.query(lambda column: column.expr)):
        writer.writerow([cell(value) for cell, value in zip(cells, row, strict=True)])
        count += 1
        if count % BATCH == 0:
            write(buffer.getvalue().encode("utf-8"))
            buffer.seek(0)
            buffer.truncate()
    write(buffer.getvalue().encode("utf-8"))
    return count


def _stream(engine: Engine, query: Select) -> Iterator[tuple]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for partition in result.partitions():
            yield from partition


def _csv_line(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue().encode("utf-8")


def _byte_writer(out: IO) -> Callable[[bytes], object]:
    """A function writing UTF-8 bytes to ``out``: a binary stream, a text stream with a
    binary buffer (a file, stdout) or an in-memory text stream."""
    if isinstance(out, io.TextIOBase):
        buffer = getattr(out, "buffer", None)
        if buffer is None:
            return lambda data: out.write(data.decode("utf-8"))
        out.flush()
        return buffer.write
    return out.write
