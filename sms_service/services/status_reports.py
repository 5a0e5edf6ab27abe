"""Status reports (Twilio's status callbacks) and what the carrier tells us about numbers:
the data behind ``POST /sms/status`` and the sender's handling of refusals.

Nothing here commits; the webhook's or the job's transaction holds the event, the status
change and any consent event together. Idempotency is the database's: one
:class:`~sms_service.models.MessageStatusEvent` per (sid, status), inserted with
``ON CONFLICT DO NOTHING``, and status updates guarded so they only move forward.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session

from sms_service.db import dialect_insert
from sms_service.domain import carrier_status
from sms_service.domain.carrier_status import CarrierVerdict
from sms_service.domain.keywords import REVIEW_BUSINESS_DAYS, add_business_days
from sms_service.domain.phones import mask
from sms_service.models import (
    ConsentEvent,
    MessageStatusEvent,
    OutboundMessage,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusReport:
    """One status callback: Twilio's MessageSid, MessageStatus and ErrorCode, and the rest."""

    sid: str
    status: str
    error_code: int | None = None
    to_number: str | None = None
    occurred_at: datetime = field(default_factory=utcnow)
    raw: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sid or not self.status:
            raise ValueError("a status report needs a sid and a status")


@dataclass(frozen=True)
class StatusResult:
    """What recording a report did: ``recorded`` is False for a repeat of a known transition."""

    recorded: bool
    advanced: bool
    message_id: int | None
    verdict: CarrierVerdict = CarrierVerdict.NONE


def record_status(session: Session, report: StatusReport, *, program: str) -> StatusResult:
    """Record one status callback once, move the message forward, act on the error code.

    An unknown sid is recorded all the same (the callback can beat the commit of the send;
    :func:`sms_service.carrier.sender.record_outcome` folds such early events in). The carrier's
    verdict on the number is applied only the first time a transition is recorded.
    """
    status = report.status.strip().lower()
    recorded = insert_status_event(session, report, status)
    advanced = advance_status(session, report.sid, status, report.error_code)
    message = session.execute(
        select(OutboundMessage).where(OutboundMessage.sid == report.sid)
    ).scalar_one_or_none()
    verdict = CarrierVerdict.NONE
    if recorded and status in (
        carrier_status.MessageStatus.FAILED,
        carrier_status.MessageStatus.UNDELIVERED,
    ):
        verdict = carrier_status.classify_delivery_error(report.error_code)
        phone = message.to_number if message is not None else report.to_number
        if phone and verdict is not CarrierVerdict.NONE:
            apply_carrier_verdict(
                session, phone, verdict, program=program, error_code=report.error_code,
                message_sid=report.sid, occurred_at=report.occurred_at,
            )  # fmt: skip
    return StatusResult(
        recorded=recorded,
        advanced=advanced,
        message_id=message.id if message is not None else None,
        verdict=verdict,
    )


def insert_status_event(session: Session, report: StatusReport, status: str) -> bool:
    """Insert the (sid, status) event unless it exists; True when this call inserted it."""
    values = dict(
        sid=report.sid,
        status=status[:16],
        error_code=report.error_code,
        occurred_at=report.occurred_at,
        raw=json.dumps(report.raw, sort_keys=True) if report.raw else None,
    )
    statement = (
        dialect_insert(session)(MessageStatusEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["sid", "status"])
        .returning(MessageStatusEvent.id)
    )
    # RETURNING rather than rowcount: an ORM-enabled INSERT does not report rowcount.
    return session.execute(statement).scalar_one_or_none() is not None


def advance_status(session: Session, sid: str, status: str, error_code: int | None) -> bool:
    """Move the message with ``sid`` to ``status`` if that is forward; True when it moved.

    The guard is in the UPDATE itself, so two callbacks racing cannot move it back.
    """
    lower = carrier_status.lower_statuses(status)
    if not lower:
        return False
    values: dict[str, object] = {"status": status, "updated_at": utcnow()}
    if error_code is not None:
        values["error_code"] = error_code
    result = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.sid == sid, OutboundMessage.status.in_(lower))
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1


def latest_reported_status(session: Session, sid: str) -> MessageStatusEvent | None:
    """The furthest-along status already reported for ``sid`` (callbacks that came early)."""
    events = session.execute(
        select(MessageStatusEvent).where(MessageStatusEvent.sid == sid)
    ).scalars()
    known = [e for e in events if carrier_status.rank(e.status) is not None]
    return max(known, key=lambda e: carrier_status.rank(e.status) or 0, default=None)


def apply_carrier_verdict(
    session: Session,
    phone: str,
    verdict: CarrierVerdict,
    *,
    program: str,
    error_code: int | None,
    message_sid: str | None = None,
    occurred_at: datetime | None = None,
) -> None:
    """Act on what the carrier said about ``phone``: opt-out, possible opt-out, invalid."""
    if verdict is CarrierVerdict.OPTED_OUT:
        apply_carrier_opt_out(
            session, phone, program=program, error_code=error_code,
            message_sid=message_sid, occurred_at=occurred_at,
        )  # fmt: skip
    elif verdict is CarrierVerdict.POSSIBLE_OPT_OUT:
        flag_possible_opt_out(
            session, phone, program=program, error_code=error_code,
            message_sid=message_sid, occurred_at=occurred_at,
        )  # fmt: skip
    elif verdict is CarrierVerdict.INVALID_NUMBER:
        mark_number_invalid(session, phone, error_code=error_code, occurred_at=occurred_at)


def _subscriber_for_update(session: Session, phone: str, when: datetime) -> Subscriber:
    """The number's row, created if missing, locked until the transaction ends.

    ``ON CONFLICT DO NOTHING`` rather than a plain insert: when an inbound text from the same
    number is creating the row right now, this waits for it and then locks what it
    committed, so the verdict is applied after the text, on its result (commit order).
    """
    session.execute(
        dialect_insert(session)(Subscriber)
        .values(phone=phone, status=SubscriberStatus.NONE.value, created_at=when, updated_at=when)
        .on_conflict_do_nothing(index_elements=["phone"])
    )
    return session.execute(
        select(Subscriber)
        .where(Subscriber.phone == phone)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def apply_carrier_opt_out(
    session: Session,
    phone: str,
    *,
    program: str,
    error_code: int | None = 21610,
    message_sid: str | None = None,
    occurred_at: datetime | None = None,
) -> Subscriber:
    """The carrier says ``phone`` opted out (21610): opt the subscriber out, log consent.

    Creates the subscriber row if missing. Appends one ``opt_out`` event (source
    ``carrier``) unless the number is already opted out, so a broadcast that meets the
    same refusal twice does not repeat it.
    """
    when = occurred_at or utcnow()
    subscriber = _subscriber_for_update(session, phone, when)
    if subscriber.status == SubscriberStatus.OPTED_OUT and subscriber.id is not None:
        return subscriber
    subscriber.status = SubscriberStatus.OPTED_OUT
    subscriber.opted_out_at = when
    subscriber.updated_at = when
    session.add(subscriber)
    session.add(
        ConsentEvent(
            occurred_at=when, phone=phone, event="opt_out", message_sid=message_sid,
            source="carrier", program=program,
            note=f"carrier refused delivery: Twilio error {error_code} (recipient opted out)",
        )
    )  # fmt: skip
    session.flush()
    return subscriber


def flag_possible_opt_out(
    session: Session,
    phone: str,
    *,
    program: str,
    error_code: int | None,
    message_sid: str | None,
    occurred_at: datetime | None = None,
) -> ConsentEvent:
    """A delivery blocked for a reason that may be an opt-out (30004): ask staff to review.

    The subscriber is left as is; the event joins the review queue of
    :func:`sms_service.services.consent.pending_reviews` with the usual deadline.
    """
    when = occurred_at or utcnow()
    event = ConsentEvent(
        occurred_at=when, phone=phone, event="possible_opt_out", message_sid=message_sid,
        source="carrier", program=program,
        review_by=add_business_days(when.date(), REVIEW_BUSINESS_DAYS),
        note=f"carrier blocked delivery: Twilio error {error_code} (may be an opt-out)",
    )  # fmt: skip
    session.add(event)
    session.flush()
    return event


def mark_number_invalid(
    session: Session, phone: str, *, error_code: int | None, occurred_at: datetime | None = None
) -> Subscriber:
    """The carrier says ``phone`` cannot receive texts: status ``invalid``, never retried.

    An opted-out number stays opted out: the opt-out is the stronger fact about consent.
    """
    when = occurred_at or utcnow()
    subscriber = _subscriber_for_update(session, phone, when)
    if subscriber.status != SubscriberStatus.OPTED_OUT:
        subscriber.status = SubscriberStatus.INVALID
        subscriber.updated_at = when
        session.add(subscriber)
        session.flush()
        log.info("%s marked invalid (Twilio error %s)", mask(phone), error_code)
    return subscriber
