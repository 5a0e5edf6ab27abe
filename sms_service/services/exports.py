"""CSV exports for compliance staff: consent events, opt-outs and signatures.

Rows are streamed from a server-side cursor (``yield_per``) straight into the CSV writer,
so memory stays flat whether the export holds ten rows or ten million.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.engine import Engine

from sms_service.models import Campaign, ConsentEvent, Signature, Subscriber

BATCH = 2000

CONSENT_HEADER = [
    "occurred_at", "phone_number", "event", "keyword", "message_body", "message_sid",
    "source", "program", "disclosure", "campaign", "review_by", "note",
]  # fmt: skip
SIGNATURE_HEADER = ["signed_at", "phone_number", "name", "campaign", "campaign_title", "source"]
OPT_OUT_EVENTS = ("opt_out",)


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


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _consent_query(flt: ExportFilter, events: tuple[str, ...] | None) -> Select:
    query = select(
        ConsentEvent.occurred_at, ConsentEvent.phone, ConsentEvent.event, ConsentEvent.keyword,
        ConsentEvent.message_body, ConsentEvent.message_sid, ConsentEvent.source,
        ConsentEvent.program, ConsentEvent.disclosure, Campaign.keyword, ConsentEvent.review_by,
        ConsentEvent.note,
    ).outerjoin(Campaign, Campaign.id == ConsentEvent.campaign_id)  # fmt: skip
    if events:
        query = query.where(ConsentEvent.event.in_(events))
    query = flt.apply(query, ConsentEvent.occurred_at, ConsentEvent.phone)
    return query.order_by(ConsentEvent.occurred_at, ConsentEvent.id)


def _signature_query(flt: ExportFilter, campaign: str | None) -> Select:
    query = (
        select(
            Signature.signed_at,
            Subscriber.phone,
            Signature.name,
            Campaign.keyword,
            Campaign.title,
            Signature.source,
        )  # fmt: skip
        .join(Subscriber, Subscriber.id == Signature.subscriber_id)
        .join(Campaign, Campaign.id == Signature.campaign_id)
    )
    if campaign:
        query = query.where(Campaign.keyword == campaign.upper())
    query = flt.apply(query, Signature.signed_at, Subscriber.phone)
    return query.order_by(Signature.signed_at, Signature.id)


def _stream(engine: Engine, query: Select) -> Iterator[tuple]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for partition in result.partitions():
            yield from partition


def write_consent(
    engine: Engine, out: TextIO, flt: ExportFilter, *, opt_outs_only: bool = False
) -> int:
    """Write consent events (or only opt-outs) as CSV; returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(CONSENT_HEADER)
    count = 0
    query = _consent_query(flt, OPT_OUT_EVENTS if opt_outs_only else None)
    for row in _stream(engine, query):
        occurred, *middle, review_by, note = row
        writer.writerow([_iso(occurred), *middle, review_by or "", note or ""])
        count += 1
    return count


def write_signatures(
    engine: Engine, out: TextIO, flt: ExportFilter, *, campaign: str | None = None
) -> int:
    """Write signatures as CSV; returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(SIGNATURE_HEADER)
    count = 0
    for signed_at, *rest in _stream(engine, _signature_query(flt, campaign)):
        writer.writerow([_iso(signed_at), *rest])
        count += 1
    return count
