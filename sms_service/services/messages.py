"""One message log: every text to or from a number, in time order.

Messages live in four places, each the source of truth for its kind: ``inbound_messages``
(what supporters sent, and the keyword reply the service answered with in TwiML),
``outbound_messages`` (single sends and notices sent through the API) and
``broadcast_deliveries`` (one row per recipient of a broadcast run; its text is the run's).
:func:`message_log_query` reads them as one ``UNION ALL`` with the same columns, so the log
cannot drift from what was stored, and :func:`write_messages` writes it as CSV through the
exports' writers (:mod:`sms_service.services.exports`: COPY on PostgreSQL, spreadsheet-safe
cells unless ``raw``).

``status`` is the last delivery status known: for API sends it is the message's own
(status callbacks move it forward); for broadcasts the furthest-along status reported for
the delivery's sid, else the delivery's (``sent``/``failed``). Keyword replies have no sid
(Twilio sends the TwiML answer itself), so their status is ``replied``.
"""

from __future__ import annotations

from typing import IO

from sqlalchemy import Select, case, cast, func, literal, null, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.types import Integer, String

from sms_service.domain.carrier_status import STATUS_RANK
from sms_service.models import (
    BroadcastDelivery,
    BroadcastRun,
    InboundMessage,
    MessageStatusEvent,
    OutboundMessage,
    Subscriber,
)
from sms_service.services.exports import Column, Export, ExportFilter, write_export

MESSAGE_HEADER = [
    "at", "phone_number", "direction", "kind", "body", "sid", "status", "error_code", "reference",
]  # fmt: skip

IN = InboundMessage.__table__
OUT = OutboundMessage.__table__
D = BroadcastDelivery.__table__
R = BroadcastRun.__table__
SUBS = Subscriber.__table__
MSE = MessageStatusEvent.__table__


def _text(value: str):
    return literal(value, String())


def _last_broadcast_status():
    rank = case(*((MSE.c.status == name, value) for name, value in STATUS_RANK.items()), else_=-1)
    reported = (
        select(MSE.c.status)
        .where(MSE.c.sid == D.c.sid)
        .order_by(rank.desc(), MSE.c.occurred_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(reported, D.c.status)


def _union(flt: ExportFilter) -> Select:
    """The four sources as one UNION ALL, each filtered on its own time and number."""
    inbound = flt.apply(
        select(
            IN.c.received_at.label("at"), IN.c.from_number.label("phone"),
            _text("in").label("direction"), _text("inbound").label("kind"),
            IN.c.body.label("body"), IN.c.message_sid.label("sid"),
            _text("received").label("status"), cast(null(), Integer).label("error_code"),
            (_text("inbound:") + cast(IN.c.id, String)).label("reference"),
        ),
        IN.c.received_at, IN.c.from_number,
    )  # fmt: skip
    replies = flt.apply(
        select(
            IN.c.received_at, IN.c.from_number, _text("out"), _text("keyword_reply"),
            IN.c.reply, cast(null(), String), _text("replied"), cast(null(), Integer),
            _text("reply to inbound:") + cast(IN.c.id, String),
        ).where(IN.c.reply.is_not(None)),
        IN.c.received_at, IN.c.from_number,
    )  # fmt: skip
    outbound = flt.apply(
        select(
            OUT.c.created_at, OUT.c.to_number, _text("out"), OUT.c.kind, OUT.c.body, OUT.c.sid,
            OUT.c.status, OUT.c.error_code, _text("outbound:") + cast(OUT.c.id, String),
        ),
        OUT.c.created_at, OUT.c.to_number,
    )  # fmt: skip
    sent_at = case((D.c.sent_at.is_not(None), D.c.sent_at), else_=D.c.updated_at)
    broadcasts = flt.apply(
        select(
            sent_at, SUBS.c.phone, _text("out"), _text("broadcast"), R.c.body, D.c.sid,
            _last_broadcast_status(), D.c.error_code,
            _text("broadcast ") + cast(R.c.broadcast_id, String) + _text(" run ")
            + cast(R.c.id, String),
        )
        .select_from(D.join(R, R.c.id == D.c.run_id).join(SUBS, SUBS.c.id == D.c.subscriber_id))
        .where(D.c.sid.is_not(None) | (D.c.status == "failed")),
        sent_at, SUBS.c.phone,
    )  # fmt: skip
    return union_all(inbound, replies, outbound, broadcasts)


def message_export(flt: ExportFilter) -> Export:
    """The message log as an :class:`~sms_service.services.exports.Export`: the COPY path
    on PostgreSQL and the row stream elsewhere both read it."""
    log = _union(flt).subquery("message_log")
    kinds = {"at": "time"}
    columns = tuple(
        Column(header, log.c[name], kinds.get(name, "text"))
        for header, name in zip(MESSAGE_HEADER, [
            "at", "phone", "direction", "kind", "body", "sid", "status", "error_code", "reference",
        ], strict=True)
    )  # fmt: skip

    def shape(query: Select) -> Select:
        return query.select_from(log)

    # Within one instant, what came in comes before the answer to it. Not a key: the texts
    # of one broadcast run share a reference, and can share a time.
    return Export(columns, shape, (log.c.at, log.c.direction, log.c.reference))


def message_log_query(flt: ExportFilter) -> Select:
    """Every message matching ``flt`` (time range, number), oldest first, as stored values."""
    return message_export(flt).query(lambda column: column.expr)


def write_messages(engine: Engine, out: IO, flt: ExportFilter, *, raw: bool = False) -> int:
    """Write the message log as CSV (spreadsheet-safe unless ``raw``); the number of rows."""
    return write_export(engine, out, message_export(flt), raw=raw)
