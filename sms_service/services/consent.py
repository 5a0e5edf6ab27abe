"""Consent administration: the staff review of possible opt-outs, opt-outs staff record
(made by phone, email, in person), and a number's history.

Nothing here updates a consent event. A review decision is itself a new event
(``possible_opt_out_resolved``, plus ``opt_out`` when staff decide the text meant STOP),
so the log shows what was received, what staff decided, who decided and when.

An opt-out staff record or confirm gets the single opt-out confirmation text
(47 CFR 64.1200(a)(12)): the ``opt_out`` event's ``disclosure`` is its exact wording and an
outbound message with that body is written in the same transaction (dedupe key
``opt-out-confirmation:<event id>``, so it can never be queued twice); the caller enqueues
it after commit (:func:`sms_service.carrier.sender` / ``workers.send``). A number that was
already opted out is not texted again: the event is recorded, with no disclosure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from config import Settings
from sms_service.domain.replies import opt_out_confirmation
from sms_service.errors import BadRequest, NotFound
from sms_service.models import ConsentEvent, OutboundMessage, Subscriber, SubscriberStatus, utcnow
from sms_service.program import program_from

RESOLVED = "possible_opt_out_resolved"
CHANNELS = ("phone", "email", "in_person", "web")
CONFIRMATION_KIND = "optout_confirm"  # outbound_messages.kind holds 16 characters


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
    *,
    session: Session,
    message_sid: str,
    opt_out: bool,
    reviewer: str,
    settings: Settings | None = None,
    program: str | None = None,
) -> list[ConsentEvent]:
    """Record staff's decision on a possible opt-out; opt the number out if they say so,
    with the single confirmation text (see the module docstring). Does not commit.

    ``settings`` is needed for an opt-out (the confirmation's wording and sender); a
    decision to keep the subscriber needs only the ``program`` name (or the settings).
    """
    if settings is not None:
        program = settings.program_name
    if opt_out and settings is None:
        raise ValueError("an opt-out sends the confirmation text: pass settings")
    if program is None:
        raise ValueError("pass settings or program")
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
    session.add_all(events)
    if opt_out and settings is not None:
        optout = _opt_out(
            session, settings, original.phone, now, message_sid=message_sid,
            message_body=original.message_body,
            note=f"possible opt-out confirmed by {reviewer.strip()}",
        )  # fmt: skip
        events.append(optout.event)
    session.flush()
    return events


@dataclass(frozen=True)
class StaffOptOut:
    """An opt-out recorded by staff: its event, and the confirmation message queued (None
    when the number was already opted out and so is not texted again)."""

    event: ConsentEvent
    confirmation: OutboundMessage | None


def record_opt_out(
    *, session: Session, settings: Settings, phone: str, by: str, channel: str,
    note: str | None = None,
) -> StaffOptOut:  # fmt: skip
    """Record an opt-out a supporter made by phone call, email, in person or on the web,
    with source ``admin``, who recorded it and how it came; writes the single confirmation
    text for the caller to enqueue after commit. Does not commit."""
    by = (by or "").strip()
    if not by:
        raise BadRequest("say who recorded the opt-out (--by)")
    if channel not in CHANNELS:
        raise BadRequest(f"channel must be one of {', '.join(CHANNELS)}")
    detail = f": {note.strip()}" if note and note.strip() else ""
    text = f"opt-out received by {channel.replace('_', ' ')}, recorded by {by}{detail}"
    return _opt_out(session, settings, phone, utcnow(), note=text)


def _opt_out(
    session: Session, settings: Settings, phone: str, now: datetime, *, note: str,
    message_sid: str | None = None, message_body: str | None = None,
) -> StaffOptOut:  # fmt: skip
    subscriber = session.execute(
        select(Subscriber).where(Subscriber.phone == phone).with_for_update()
    ).scalar_one_or_none()
    if subscriber is None:
        subscriber = Subscriber(phone=phone, created_at=now)
    already = subscriber.status == SubscriberStatus.OPTED_OUT
    wording = None if already else opt_out_confirmation(program_from(settings))
    if not already:
        subscriber.status = SubscriberStatus.OPTED_OUT
        subscriber.opted_out_at = now
    subscriber.updated_at = now
    session.add(subscriber)
    event = ConsentEvent(
        occurred_at=now, phone=phone, event="opt_out", message_sid=message_sid,
        message_body=message_body, source="admin", program=settings.program_name,
        disclosure=wording,
        note=note if not already else f"{note} (already opted out: no confirmation sent)",
    )  # fmt: skip
    session.add(event)
    session.flush()
    confirmation = None
    if wording is not None:
        from sms_service.services.outbox import create_outbound_message

        confirmation = create_outbound_message(
            session, settings=settings, to=phone, body=wording, kind=CONFIRMATION_KIND,
            dedupe_key=f"opt-out-confirmation:{event.id}",
        )  # fmt: skip
    return StaffOptOut(event=event, confirmation=confirmation)


def confirmation_of(session: Session, event: ConsentEvent) -> OutboundMessage | None:
    """The confirmation text written for an opt-out event, if one was."""
    return session.execute(
        select(OutboundMessage).where(
            OutboundMessage.dedupe_key == f"opt-out-confirmation:{event.id}"
        )
    ).scalar_one_or_none()


def history(*, session: Session, phone: str) -> list[ConsentEvent]:
    """Every consent event for one number, oldest first: the proof of who agreed to what."""
    query = select(ConsentEvent).where(ConsentEvent.phone == phone)
    return list(
        session.execute(query.order_by(ConsentEvent.occurred_at, ConsentEvent.id)).scalars()
    )
