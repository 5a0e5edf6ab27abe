"""One text outside a broadcast (a confirmation, a notice): the one way to send it.

::

    from sms_service.carrier.single_send import enqueue_single_send
    from sms_service.models import MessageKind

    with session_scope(engine) as session:
        ...  # the change the text is about, in the same transaction
        enqueue_single_send(session, settings=settings, to=phone, body=text,
                            kind=MessageKind.OPT_OUT_CONFIRMATION)
    # committed: the send job is on the ``default`` queue

:func:`enqueue_single_send` writes a ``pending`` row in ``outbound_messages`` in the
caller's transaction (it never commits) and, once that transaction commits, enqueues the
RQ job :func:`workers.send.send_outbound_message` with job id ``send-<id>``; a rollback
enqueues nothing. The job then claims the row, waits for the shared throttle (the
``SENDER_MPS`` bucket the broadcasts use), checks consent at the last moment, sends and
records. An answer lost on the way is reconciled with the carrier before any resend; an
attempt older than ``BROADCAST_LEASE_SECONDS`` (the broadcasts' lease) counts as lost.

If Redis does not answer when the transaction commits, the row stays ``pending`` and the
broadcast sweeper (:func:`workers.broadcast_worker.sweep`) enqueues it once it is older
than the lease. ``dedupe_key`` is unique: it makes "one text per X" a database rule (an
``IntegrityError`` at flush for the second one).

This module names the job by its import path, so the package never imports ``workers``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.job import Job
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

from sms_service.models import MessageKind, OutboundMessage
from sms_service.services.outbox import create_outbound_message

if TYPE_CHECKING:
    from sqlmodel import Session

    from config import Settings

log = logging.getLogger(__name__)

QUEUE = "default"  # workers.QUEUE_DEFAULT
SEND_JOB = "workers.send.send_outbound_message"
# Backoff for transient refusals (seconds); RQ's scheduler re-enqueues after each wait.
DEFAULT_RETRY = Retry(max=5, interval=[10, 30, 60, 300, 900])
_PENDING = "sms_service.single_send.pending"  # Session.info key: (message id, Redis URL)


def send_job_id(message_id: int) -> str:
    """The RQ job id of a message's send: one per message, so it is never queued twice."""
    return f"send-{message_id}"


def enqueue_single_send(
    session: Session,
    *,
    settings: Settings,
    to: str,
    body: str,
    kind: MessageKind,
    dedupe_key: str | None = None,
) -> OutboundMessage:
    """Queue one text to ``to`` (E.164): a ``pending`` row now, its send job on commit.

    Does not commit: the caller's transaction decides whether the text exists. See the
    module docstring for what the job does and what happens when Redis is down.
    """
    message = create_outbound_message(
        session, settings=settings, to=to, body=body, kind=kind, dedupe_key=dedupe_key
    )
    session.info.setdefault(_PENDING, []).append((message.id, settings.redis_url))
    return message


def enqueue_send_job(queue: Queue, message_id: int, *, retry: Retry | None = None) -> Job | None:
    """Enqueue the send job of one committed message; None if it is already queued."""
    try:
        return queue.enqueue(
            SEND_JOB,
            message_id,
            job_id=send_job_id(message_id),
            unique=True,
            retry=retry or DEFAULT_RETRY,
            description=f"send outbound message {message_id}",
        )
    except DuplicateJobError:
        return None


@event.listens_for(OrmSession, "after_commit")
def _enqueue_committed(session: OrmSession) -> None:
    pending = session.info.pop(_PENDING, None)
    for message_id, url in pending or ():
        connection = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        try:
            enqueue_send_job(Queue(QUEUE, connection=connection), message_id)
        except redis.RedisError:
            # Committed all the same: the sweeper enqueues rows left pending.
            log.warning("outbound message %s: Redis did not answer; the sweeper will send it",
                        message_id)  # fmt: skip
        finally:
            connection.close()


@event.listens_for(OrmSession, "after_rollback")
def _forget_rolled_back(session: OrmSession) -> None:
    session.info.pop(_PENDING, None)
