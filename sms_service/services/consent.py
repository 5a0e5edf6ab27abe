"""Consent administration: the staff review of possible opt-outs, and a number's history.

Nothing here updates a consent event. A review decision is itself a new event
(``possible_opt_out_resolved``, plus ``opt_out`` when staff decide the text meant STOP),
so the log shows what was received, what staff decided, who decided and when.
"""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from sms_service.errors import BadRequest, NotFound
from sms_service.models import ConsentEvent, Subscriber, SubscriberStatus, utcnow

RESOLVED = "possible_opt_out_resolved"


def pending_reviews(*, session: Session, message_sid: str | None = None) -> list[ConsentEvent]:
    """Possible opt-outs with no resolution yet, the most urgent (earliest review_by) first;
    only the one for ``message_sid`` when given."""
    resolution = aliased(ConsentEvent)
    query = (
        select(ConsentEvent)
        .outerjoin(
            resolution,
            and_(
                resolution.message_sid == ConsentEvent.message_sid,
                resolution.event == RESOLVED,
            ),
        )
        .where(ConsentEvent.event == "possible_opt_out", resolution.id.is_(None))
        .order_by(ConsentEvent.review_by, ConsentEvent.id)
    )
    if message_sid is not None:
        query = query.where(ConsentEvent.message_sid == message_sid)
    return list(session.execute(query).scalars())


def resolve_review(
    *, session: Session, message_sid: str, opt_out: bool, reviewer: str, program: str
) -> list[ConsentEvent]:
    """Record staff's decision on a possible opt-out; opt the number out if they say so."""
    if not reviewer.strip():
        raise BadRequest("say who decided (--by)")
    pending = pending_reviews(session=session, message_sid=message_sid)
    if not pending:
        raise NotFound(f"no unresolved possible opt-out for message {message_sid}")
    original = pending[0]
    now = utcnow()
    decision = "opt-out" if opt_out else "not an opt-out"
    events = [
        ConsentEvent(
            occurred_at=now, phone=original.phone, event=RESOLVED, message_sid=message_sid,
            message_body=original.message_body, source="admin", program=program,
            note=f"reviewed by {reviewer.strip()}: {decision}",
        )
    ]  # fmt: skip
    if opt_out:
        events.append(
            ConsentEvent(
                occurred_at=now, phone=original.phone, event="opt_out", message_sid=message_sid,
                message_body=original.message_body, source="admin", program=program,
                note=f"possible opt-out confirmed by {reviewer.strip()}",
            )
        )  # fmt: skip
        subscriber = session.execute(
            select(Subscriber).where(Subscriber.phone == original.phone).with_for_update()
        ).scalar_one_or_none()
        if subscriber is not None and subscriber.status != SubscriberStatus.OPTED_OUT:
            subscriber.status = SubscriberStatus.OPTED_OUT
            subscriber.opted_out_at = now
            subscriber.updated_at = now
            session.add(subscriber)
    session.add_all(events)
    session.flush()
    return events


def history(*, session: Session, phone: str) -> list[ConsentEvent]:
    """Every consent event for one number, oldest first: the proof of who agreed to what."""
    query = select(ConsentEvent).where(ConsentEvent.phone == phone)
    return list(
        session.execute(query.order_by(ConsentEvent.occurred_at, ConsentEvent.id)).scalars()
    )
