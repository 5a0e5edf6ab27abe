"""Handing work to the RQ workers from the console, after the request's commit.

The queue connection is the app's own when ``sms-service dev`` runs an in-process queue
(``app.extensions["rq_connection"]``), else Redis at ``REDIS_URL``. When no Redis answers
nothing is lost: broadcasts are started by the worker sweeper from the database.
"""

from __future__ import annotations

import logging

import redis
from flask import current_app
from rq import Queue

from sms_service.carrier.single_send import enqueue_send_job
from sms_service.services.outbox import create_outbound_message
from sms_service.web.console.common import log_action, settings, transaction

log = logging.getLogger(__name__)


def connection() -> redis.Redis:
    """The queue's Redis connection (the app's in-process one in dev mode)."""
    return _connection()


def _connection() -> redis.Redis:
    connection = current_app.extensions.get("rq_connection")
    if connection is None:
        connection = redis.Redis.from_url(
            settings().redis_url, socket_connect_timeout=1, socket_timeout=5
        )
        current_app.extensions["rq_connection"] = connection
    return connection


def enqueue_broadcast_start(run) -> bool:
    """Enqueue the run's start job; False when no queue answered (the sweeper will)."""
    from workers import QUEUE_BROADCASTS
    from workers.broadcast import enqueue_start

    try:
        enqueue_start(Queue(QUEUE_BROADCASTS, connection=_connection()), run)
    except redis.RedisError as exc:
        log.warning("broadcast %s not enqueued: %s", run.broadcast_id, exc)
        return False
    return True


def enqueue_message(message_id: int) -> bool:
    """Enqueue the send of an outbound message already committed; False if no queue."""
    from workers import QUEUE_DEFAULT

    try:
        enqueue_send_job(Queue(QUEUE_DEFAULT, connection=_connection()), message_id)
    except redis.RedisError as exc:
        log.warning("outbound message %s not enqueued: %s", message_id, exc)
        return False
    return True


def enqueue_text(to: str, body: str, *, kind: str, audit_target: str) -> int | None:
    """Write one outbound text (audited) and enqueue its send; the id, or None if no queue
    answered (the text then stays pending)."""
    from workers import QUEUE_DEFAULT

    with transaction() as session:
        message = create_outbound_message(session, settings=settings(), to=to, body=body, kind=kind)
        log_action(session, f"text.{kind}", audit_target, outbound_message_id=message.id)
        message_id = message.id
    try:
        enqueue_send_job(Queue(QUEUE_DEFAULT, connection=_connection()), message_id)
    except redis.RedisError as exc:
        log.warning("outbound message %s not enqueued: %s", message_id, exc)
        return None
    return message_id
