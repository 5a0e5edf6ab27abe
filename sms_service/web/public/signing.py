"""The one way the page and the API sign: one transaction, then the confirmation queued.

Views parse and render; this joins the petition service (which must not import the
carrier package) to the single-send path (the pending outbound message written in the
request's transaction, its send job enqueued after it commits), so a text is never sent
inside a request and never queued for a signature that rolled back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from flask import current_app
from rq import Queue
from sqlalchemy import Row

from sms_service.carrier.single_send import enqueue_send_job
from sms_service.domain.petition import CleanSignature
from sms_service.services import petition
from sms_service.services.petition import WebSignatureResult
from workers import QUEUE_DEFAULT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signed:
    """What the caller shows: the campaign and the outcome."""

    campaign: Row  # the campaigns row: id, keyword, title…
    result: WebSignatureResult


def send_queue() -> Queue:
    """The queue single texts go to, on the app's queue connection (``rq_connection``, the
    in-process one in dev mode; the console shares it), else Redis at ``REDIS_URL``."""
    connection = current_app.extensions.get("rq_connection")
    if connection is None:
        settings = current_app.config["SETTINGS"]
        connection = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=5
        )
        current_app.extensions["rq_connection"] = connection
    return Queue(QUEUE_DEFAULT, connection=connection)


def sign(
    keyword: str, form: CleanSignature, *, ip: str | None, user_agent: str | None
) -> Signed | None:
    """Store the signature (and any confirmation text) in one transaction, then enqueue.

    None when no open petition has ``keyword``.
    """
    signed = petition.sign_on_web(
        current_app.extensions["sms_engine"], keyword=keyword, form=form,
        settings=current_app.config["SETTINGS"], program=current_app.extensions["sms_program"],
        ip=ip, user_agent=user_agent,
    )  # fmt: skip
    if signed is None:
        return None
    campaign, result = signed
    if result.outbound_message_id is not None:
        # After commit, so the job finds the row. The signature stands if Redis is down;
        # the message stays ``pending`` and the worker's sweeper sends it later.
        try:
            enqueue_send_job(send_queue(), result.outbound_message_id)
        except redis.RedisError:
            log.exception("confirmation text %s not queued", result.outbound_message_id)
    return Signed(campaign, result)
