"""Subscriber administration: tags, one number's record, counts.

Tags pick broadcast audiences (``tag:NAME``); they are written as given (case kept) and
must be a valid audience tag name. Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlmodel import Session

from sms_service.db import dialect_insert
from sms_service.domain.audience import parse_audience
from sms_service.errors import BadRequest, NotFound
from sms_service.models import ConsentEvent, Signature, Subscriber, SubscriberStatus, SubscriberTag

STATUSES = tuple(s.value for s in SubscriberStatus)


def valid_tag(tag: str) -> str:
    """``tag`` as a broadcast audience would read it, or BadRequest."""
    try:
        value = parse_audience(f"tag:{tag}").value
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    assert value is not None
    return value


def _subscriber(session: Session, phone: str) -> Subscriber:
    found = session.execute(
        select(Subscriber).where(Subscriber.phone == phone)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("no subscriber with that number")
    return found


def tag(*, session: Session, phone: str, name: str) -> bool:
    """Put tag ``name`` on the subscriber; False if it was already there."""
    subscriber = _subscriber(session, phone)
    insert = dialect_insert(session)(SubscriberTag.__table__).values(
        subscriber_id=subscriber.id, tag=valid_tag(name)
    )
    added = insert.on_conflict_do_nothing(index_elements=["subscriber_id", "tag"]).returning(
        SubscriberTag.__table__.c.id
    )
    return session.execute(added).first() is not None


def untag(*, session: Session, phone: str, name: str) -> bool:
    """Take tag ``name`` off the subscriber; False if it was not there."""
    subscriber = _subscriber(session, phone)
    removed = session.execute(
        delete(SubscriberTag.__table__)
        .where(SubscriberTag.subscriber_id == subscriber.id, SubscriberTag.tag == valid_tag(name))
        .returning(SubscriberTag.__table__.c.id)
    )
    return removed.first() is not None


@dataclass(frozen=True)
class SubscriberRecord:
    """One number's standing: status and when it last changed, tags, signatures, events."""

    phone: str
    status: str
    name: str | None
    opted_in_at: datetime | None
    opted_out_at: datetime | None
    status_changed_at: datetime | None
    created_at: datetime
    tags: tuple[str, ...]
    signatures: int
    consent_events: int
    last_event: str | None
    last_event_at: datetime | None


def show(*, session: Session, phone: str) -> SubscriberRecord:
    """Everything staff need to answer "where does this number stand?"."""
    s = _subscriber(session, phone)
    tags = tuple(
        session.execute(
            select(SubscriberTag.tag)
            .where(SubscriberTag.subscriber_id == s.id)
            .order_by(SubscriberTag.tag)
        ).scalars()
    )
    signatures = session.execute(
        select(func.count()).select_from(Signature).where(Signature.subscriber_id == s.id)
    ).scalar_one()
    events = session.execute(
        select(func.count()).select_from(ConsentEvent).where(ConsentEvent.phone == phone)
    ).scalar_one()
    last = session.execute(
        select(ConsentEvent.event, ConsentEvent.occurred_at)
        .where(ConsentEvent.phone == phone)
        .order_by(ConsentEvent.occurred_at.desc(), ConsentEvent.id.desc())
        .limit(1)
    ).first()
    changed = s.opted_out_at if s.status == SubscriberStatus.OPTED_OUT else s.opted_in_at
    return SubscriberRecord(
        phone=s.phone, status=s.status, name=s.name, opted_in_at=s.opted_in_at,
        opted_out_at=s.opted_out_at, status_changed_at=changed or s.updated_at,
        created_at=s.created_at, tags=tags, signatures=signatures, consent_events=events,
        last_event=last[0] if last else None, last_event_at=last[1] if last else None,
    )  # fmt: skip


def count(*, session: Session, status: str | None = None, tag: str | None = None) -> int:
    """How many subscribers have ``status`` and/or ``tag`` (all when neither is given)."""
    query = select(func.count(func.distinct(Subscriber.id))).select_from(Subscriber)
    if status is not None:
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        query = query.where(Subscriber.status == status)
    if tag is not None:
        query = query.join(SubscriberTag, SubscriberTag.subscriber_id == Subscriber.id).where(
            SubscriberTag.tag == valid_tag(tag)
        )
    return session.execute(query).scalar_one()
