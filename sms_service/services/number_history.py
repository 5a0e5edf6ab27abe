"""Everything the service holds about one number, for the compliance look-up: consent
events with the exact wording, texts received, replies and broadcast texts sent (once
handed to the carrier), each with its status. Each list is read through an index on the
number and capped at ``LIMIT`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from sms_service.models import (
    Broadcast,
    BroadcastDelivery,
    BroadcastRun,
    ConsentEvent,
    InboundMessage,
    OutboundMessage,
    Subscriber,
)

LIMIT = 500


@dataclass(frozen=True)
class Message:
    """One text in or out, as the look-up lists it."""

    at: datetime
    direction: str  # "in" or "out"
    kind: str  # intent for texts in; reply / broadcast for texts out
    body: str
    status: str
    sid: str | None


@dataclass(frozen=True)
class NumberHistory:
    """The subscriber row (if any), consent events oldest first, messages newest first."""

    phone: str
    subscriber: Subscriber | None
    events: list[ConsentEvent]
    messages: list[Message]


def number_history(*, session: Session, phone: str) -> NumberHistory:
    """Everything about ``phone`` (E.164)."""
    subscriber = session.execute(
        select(Subscriber).where(Subscriber.phone == phone)
    ).scalar_one_or_none()
    events = list(
        session.execute(
            select(ConsentEvent)
            .where(ConsentEvent.phone == phone)
            .order_by(ConsentEvent.occurred_at, ConsentEvent.id)
            .limit(LIMIT)
        ).scalars()
    )
    messages: list[Message] = []
    for m in session.execute(
        select(InboundMessage)
        .where(InboundMessage.from_number == phone)
        .order_by(InboundMessage.received_at.desc())
        .limit(LIMIT)
    ).scalars():
        messages.append(Message(m.received_at, "in", m.intent, m.body, "received", m.message_sid))
    for o in session.execute(
        select(OutboundMessage)
        .where(OutboundMessage.to_number == phone)
        .order_by(OutboundMessage.created_at.desc())
        .limit(LIMIT)
    ).scalars():
        status = o.status + (f" (error {o.error_code})" if o.error_code else "")
        messages.append(Message(o.created_at, "out", o.kind, o.body, status, o.sid))
    if subscriber is not None:
        d = BroadcastDelivery.__table__
        rows = session.execute(
            select(d.c.updated_at, d.c.sent_at, d.c.status, d.c.reason, d.c.sid, Broadcast.body)
            .select_from(d)
            .join(BroadcastRun, BroadcastRun.id == d.c.run_id)
            .join(Broadcast, Broadcast.id == BroadcastRun.broadcast_id)
            # Sent ones only: the partial index on (subscriber_id, sent_at) serves this;
            # every delivery row of a subscriber would mean scanning the whole table.
            .where(d.c.subscriber_id == subscriber.id, d.c.sent_at.is_not(None))
            .order_by(d.c.sent_at.desc())
            .limit(LIMIT)
        ).all()
        for updated_at, sent_at, status, reason, sid, body in rows:
            shown = status + (f" ({reason})" if reason else "")
            messages.append(Message(sent_at or updated_at, "out", "broadcast", body, shown, sid))
    messages.sort(key=lambda m: m.at, reverse=True)
    return NumberHistory(phone, subscriber, events, messages)
