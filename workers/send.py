"""RQ job: send one outbound message (a single text, not a broadcast).

Callers do not enqueue this job themselves: they call
:func:`sms_service.carrier.single_send.enqueue_single_send`, which writes the row and
enqueues ``send_outbound_message(outbound_message_id)`` when their transaction commits.

The job loads the row, returns early if it is already done, waits for the throttle every
sender shares (``SENDER_MPS``), and raises :class:`~sms_service.errors.SendRetryable` for
a transient refusal or a lost answer so RQ's ``Retry`` backs off. Before resending after
a lost answer it asks the carrier (:func:`sms_service.carrier.sender.reconcile_outcome`),
so a message Twilio did accept is recorded, not sent twice.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import get_current_job
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session
from twilio.rest import Client

from config import Settings
from sms_service.broadcasts.tuning import Tuning
from sms_service.carrier import sender
from sms_service.carrier.throttle import Throttle
from sms_service.db import session_scope
from sms_service.domain.carrier_status import MessageStatus, Outcome
from sms_service.errors import SendRetryable
from sms_service.models import OutboundMessage, Subscriber, utcnow
from workers import context

log = logging.getLogger(__name__)


def send_outbound_message(outbound_message_id: int) -> str:
    """Send (or reconcile) one message; return what it came to. The RQ entry point."""
    settings = context.settings()
    job = get_current_job()
    connection = job.connection if job is not None else Redis.from_url(settings.redis_url)
    return send_message(
        engine=context.engine(),
        client=context.twilio_client(),
        settings=settings,
        outbound_message_id=outbound_message_id,
        throttle=Throttle.for_settings(settings, connection=connection),
    )


def send_message(
    *,
    engine: Engine,
    client: Client,
    settings: Settings,
    outbound_message_id: int,
    throttle: Throttle | None = None,
    validity_period: int | None = None,
) -> str:
    """Claim (committed before any call), then check consent, send and record in one
    transaction that holds the subscriber row; a crash mid-call leaves ``sending``, which
    the next attempt reconciles with the carrier once the lease has passed.

    ``throttle``: the shared one (the job always passes it); None sends unpaced (tests).
    The lease after which an attempt in ``sending`` counts as lost is the broadcasts'
    (``BROADCAST_LEASE_SECONDS``).

    Returns the outcome (``accepted``, ``opted_out``, ``invalid_number``, ``failed``,
    ``suppressed``) or ``"done"`` when there was nothing to do. Raises
    :class:`SendRetryable` after recording a retryable or unknown outcome.
    """
    with session_scope(engine) as session:
        lease = Tuning.from_settings(settings).lease
        claim = sender.claim_for_sending(session, outbound_message_id, lease=lease)
        if claim is not None and not claim.reconcile_first and _suppressed(session, claim.message):
            return "suppressed"
    if claim is None:
        return "done"
    message = claim.message
    outcome = None
    if claim.reconcile_first:
        with session_scope(engine) as session:
            taken = sender.known_sids(session, to=message.to_number, since=message.created_at)
        # A failure to ask propagates: retry later rather than resend blind.
        outcome = sender.reconcile_outcome(
            client, to=message.to_number, body=message.body, since=message.created_at, exclude=taken
        )
    if outcome is None:
        if throttle is not None:
            throttle.acquire(message.segments)  # outside any transaction: no lock held
        with session_scope(engine) as session:
            row = session.get(OutboundMessage, outbound_message_id, with_for_update=True)
            # FOR SHARE on the subscriber until the call has returned: a STOP (FOR UPDATE)
            # has committed before this check, or waits for the send to be recorded.
            session.execute(
                select(Subscriber.id)
                .where(Subscriber.phone == row.to_number)
                .with_for_update(read=True)
            ).all()
            if _suppressed(session, row):
                return "suppressed"
            outcome = sender.send_sms(
                client,
                to=row.to_number,
                body=row.body,
                from_=row.from_number,
                messaging_service_sid=row.messaging_service_sid,
                status_callback=sender.status_callback_url(settings),
                validity_period=validity_period,
            )
            sender.record_outcome(session, row, outcome, program=settings.program_name)
    else:
        with session_scope(engine) as session:
            row = session.get(OutboundMessage, outbound_message_id, with_for_update=True)
            sender.record_outcome(session, row, outcome, program=settings.program_name)
    if outcome.should_retry:
        raise SendRetryable(
            f"outbound message {outbound_message_id}: {outcome.kind}"
            f" ({outcome.http_status or ''} {outcome.error_code or ''} {outcome.error_message})"
        )
    return str(outcome.kind)


def _suppressed(session: Session, message: OutboundMessage) -> bool:
    # Consent may have changed since the message was queued: check at the last moment.
    reason = sender.suppression_reason(session, message)
    if reason is None:
        return False
    message.status = MessageStatus.FAILED
    message.error_message = reason
    message.updated_at = utcnow()
    session.add(message)
    log.info("outbound message %s %s", message.id, reason)
    return True


__all__ = ["Outcome", "send_message", "send_outbound_message"]
