"""RQ job: send one outbound message.

``send_outbound_message(outbound_message_id)`` loads the row, returns early if it is
already done, and raises :class:`~sms_service.errors.SendRetryable` for a transient
refusal or a lost answer so RQ's ``Retry`` backs off. Before resending after a lost
answer it asks the carrier (:func:`sms_service.carrier.sender.reconcile_outcome`), so a message
Twilio did accept is recorded, not sent twice.
"""

from __future__ import annotations

import logging

from rq import Queue, Retry
from rq.job import Job
from sqlalchemy.engine import Engine
from sqlmodel import Session
from twilio.rest import Client

from config import Settings
from sms_service.carrier import sender
from sms_service.db import session_scope
from sms_service.domain.delivery import Outcome
from sms_service.errors import SendRetryable
from sms_service.models import OutboundMessage, utcnow
from workers import QUEUE_DEFAULT, context

log = logging.getLogger(__name__)

# Backoff for transient refusals (seconds); RQ's scheduler re-enqueues after each wait.
DEFAULT_RETRY = Retry(max=5, interval=[10, 30, 60, 300, 900])


def send_outbound_message(outbound_message_id: int) -> str:
    """Send (or reconcile) one message; return what it came to. The RQ entry point."""
    return deliver(
        engine=context.engine(),
        client=context.twilio_client(),
        settings=context.settings(),
        outbound_message_id=outbound_message_id,
    )


def deliver(
    *,
    engine: Engine,
    client: Client,
    settings: Settings,
    outbound_message_id: int,
    validity_period: int | None = None,
) -> str:
    """Claim, send, record, in separate transactions around the API call.

    Returns the outcome (``accepted``, ``opted_out``, ``invalid_number``, ``failed``,
    ``suppressed``) or ``"done"`` when there was nothing to do. Raises
    :class:`SendRetryable` after recording a retryable or unknown outcome.
    """
    with session_scope(engine) as session:
        claim = sender.claim_for_sending(session, outbound_message_id)
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
            with session_scope(engine) as session:
                row = session.get(OutboundMessage, outbound_message_id, with_for_update=True)
                if _suppressed(session, row):
                    return "suppressed"
    if outcome is None:
        outcome = sender.send_sms(
            client,
            to=message.to_number,
            body=message.body,
            from_=message.from_number,
            messaging_service_sid=message.messaging_service_sid,
            status_callback=sender.status_callback_url(settings),
            validity_period=validity_period,
        )
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
    message.status = "failed"
    message.error_message = reason
    message.updated_at = utcnow()
    session.add(message)
    log.info("outbound message %s %s", message.id, reason)
    return True


def enqueue_send(queue: Queue, outbound_message_id: int, *, retry: Retry | None = None) -> Job:
    """Enqueue :func:`send_outbound_message` for one id with a retry policy."""
    return queue.enqueue(
        send_outbound_message,
        outbound_message_id,
        retry=retry or DEFAULT_RETRY,
        description=f"send outbound message {outbound_message_id}",
    )


__all__ = ["DEFAULT_RETRY", "Outcome", "QUEUE_DEFAULT", "deliver", "enqueue_send"]
