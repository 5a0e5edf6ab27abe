"""Sending texts through Twilio, and keeping the outcome.

Three layers, each usable on its own (the broadcast sender uses all three; a single text
goes through :func:`sms_service.carrier.single_send.enqueue_single_send`):

* :func:`send_sms` makes one API call with a ``twilio.rest.Client`` and classifies what
  happened as a :class:`SendOutcome`. It never touches the database.
* :func:`claim_for_sending` and :func:`record_outcome` (rows are written by
  :func:`sms_service.services.outbox.create_outbound_message`)
  write the caller's session; they never commit.
* :func:`reconcile` asks the carrier whether a send whose answer was lost went through,
  so nothing is sent twice on a guess.

A ``twilio.rest.Client`` must not be shared between threads: twilio 9.13's HTTP client
keeps the last response on the instance. Build one per thread (``workers.context``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import select
from sqlmodel import Session
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from config import Settings
from sms_service.domain import carrier_status
from sms_service.domain.carrier_status import MessageStatus, Outcome
from sms_service.domain.phones import mask
from sms_service.domain.segments import make_gsm_safe
from sms_service.errors import SendInFlight
from sms_service.models import (
    KINDS_AFTER_OPT_OUT,
    OutboundMessage,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from sms_service.services.status_reports import apply_carrier_verdict, latest_reported_status

__all__ = [
    "Outcome",
    "SendOutcome",
    "claim_for_sending",
    "known_sids",
    "reconcile",
    "reconcile_outcome",
    "record_outcome",
    "send_sms",
    "status_callback_url",
    "suppression_reason",
]

log = logging.getLogger(__name__)

# Twilio's clocks and ours differ a little; look this far before the first attempt.
RECONCILE_SKEW = timedelta(minutes=2)
# How many of a number's messages to look through when reconciling (newest first).
RECONCILE_SCAN = 200


@dataclass(frozen=True)
class SendOutcome:
    """What one send came to. ``sid``/``status``/``num_segments`` are set when accepted;
    ``error_code``/``error_message``/``http_status`` when refused or lost."""

    kind: Outcome
    sid: str | None = None
    status: str | None = None
    num_segments: int | None = None
    error_code: int | None = None
    error_message: str | None = None
    http_status: int | None = None

    def __post_init__(self) -> None:
        if self.kind is Outcome.ACCEPTED and not self.sid:
            raise ValueError("an accepted send has a sid")

    @property
    def should_retry(self) -> bool:
        """True for a transient refusal or a lost answer (reconcile before resending)."""
        return self.kind in (Outcome.RETRYABLE, Outcome.UNKNOWN)


def status_callback_url(settings: Settings) -> str | None:
    """PUBLIC_BASE_URL + ``/sms/status``, or None when the service has no public address."""
    if not settings.public_base_url:
        return None
    return settings.public_base_url.rstrip("/") + "/sms/status"


def send_sms(
    client: Client,
    *,
    to: str,
    body: str,
    from_: str | None = None,
    messaging_service_sid: str | None = None,
    status_callback: str | None = None,
    validity_period: int | None = None,
) -> SendOutcome:
    """Ask Twilio to send ``body`` to ``to`` and classify the result; never raises for
    an API or network failure.

    Twilio takes either a Messaging Service or a From number: the service wins when both
    are given. ``validity_period`` (seconds) lets Twilio drop a message it could not send
    in time, which suits time-bound alerts.
    """
    params: dict[str, object] = {"to": to, "body": body}
    if messaging_service_sid:
        params["messaging_service_sid"] = messaging_service_sid
    elif from_:
        params["from_"] = from_
    else:
        raise ValueError("give from_ or messaging_service_sid")
    if status_callback:
        params["status_callback"] = status_callback
    if validity_period is not None:
        params["validity_period"] = validity_period
    try:
        message = client.messages.create(**params)
    except TwilioRestException as exc:
        kind = carrier_status.classify_api_error(exc.status, exc.code)
        return SendOutcome(
            kind=kind, error_code=exc.code, error_message=exc.msg or None, http_status=exc.status
        )
    except requests.RequestException as exc:
        return SendOutcome(
            kind=_classify_transport_error(exc), error_message=f"{type(exc).__name__}: {exc}"
        )
    return SendOutcome(
        kind=Outcome.ACCEPTED,
        sid=message.sid,
        status=message.status or MessageStatus.QUEUED,
        num_segments=_int_or_none(message.num_segments),
    )


def _classify_transport_error(exc: requests.RequestException) -> Outcome:
    # Only a connection that was never made proves nothing was sent (refused, unresolvable,
    # timed out while connecting). A read timeout, a dropped connection or a broken TLS
    # stream may come after the request left, so Twilio may have accepted it.
    if isinstance(exc, requests.ConnectTimeout):
        return Outcome.RETRYABLE
    if isinstance(exc, requests.ConnectionError) and not isinstance(
        exc, requests.exceptions.SSLError
    ):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, NewConnectionError):
            return Outcome.RETRYABLE
    return Outcome.UNKNOWN


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def reconcile_outcome(
    client: Client,
    *,
    to: str,
    body: str,
    since: datetime,
    exclude: Collection[str] = (),
    other_bodies: Collection[str] = (),
) -> SendOutcome | None:
    """The accepted outcome of a message to ``to`` with ``body`` created at or after
    ``since`` (less a little clock skew), if the carrier has one; else None.

    ``exclude``: sids already recorded for other messages, so two identical texts to one
    number are never taken for each other. The body also matches as Twilio's Smart
    Encoding may have rewritten it (curly quotes made straight). Twilio's DateSent filter
    is by day, so candidates are checked here by creation time. A failure to ask raises:
    the caller retries later rather than resending blind. ``other_bodies`` also match (a
    broadcast's Spanish version: whichever the number was sent counts).
    """
    since = since.astimezone(UTC) - RECONCILE_SKEW
    bodies = {text for b in (body, *other_bodies) for text in (b, make_gsm_safe(b))}
    # First by To and DateSent, the cheap and usual case. Twilio leaves DateSent empty
    # while a message is still queued, so a miss is checked again by To alone (newest
    # first), filtering on creation time here: a queued message must never look unsent.
    for filters in ({"date_sent_after": since}, {}):
        for message in client.messages.list(to=to, limit=RECONCILE_SCAN, **filters):
            created = message.date_created or message.date_sent
            if message.body not in bodies or message.sid in exclude:
                continue
            inbound = (message.direction or "").startswith("inbound")
            if inbound or (created is not None and created < since):
                continue
            return SendOutcome(
                kind=Outcome.ACCEPTED,
                sid=message.sid,
                status=message.status or MessageStatus.QUEUED,
                num_segments=_int_or_none(message.num_segments),
            )
    return None


def reconcile(
    client: Client, *, to: str, body: str, since: datetime, exclude: Collection[str] = ()
) -> str | None:
    """The sid of a message to ``to`` with ``body`` that Twilio accepted since ``since``
    (see :func:`reconcile_outcome`), or None: then it is safe to send."""
    found = reconcile_outcome(client, to=to, body=body, since=since, exclude=exclude)
    return found.sid if found is not None else None


def known_sids(session: Session, *, to: str, since: datetime) -> set[str]:
    """Sids already recorded for outbound messages to ``to`` created since ``since`` (less
    the skew): what :func:`reconcile` must not claim for another message."""
    rows = session.execute(
        select(OutboundMessage.sid).where(
            OutboundMessage.to_number == to,
            OutboundMessage.sid.is_not(None),
            OutboundMessage.created_at >= since - RECONCILE_SKEW,
        )
    ).scalars()
    return set(rows)


@dataclass(frozen=True)
class Claim:
    """A message claimed for an attempt; ``reconcile_first`` when an earlier attempt's
    answer was lost (so the carrier must be asked before sending again)."""

    message: OutboundMessage
    reconcile_first: bool


def claim_for_sending(
    session: Session, message_id: int, *, lease: timedelta, now: datetime | None = None
) -> Claim | None:
    """Lock the message and mark an attempt (``sending``); None when there is nothing to do.

    Nothing to do: the message is missing, already has a sid, or has failed for good.
    ``reconcile_first`` when an earlier attempt's answer was lost (``unknown``) or its
    worker died (``sending`` for longer than ``lease``, the broadcasts' lease: longer than
    the Twilio client's timeout, so no call of that attempt can still be in flight). Raises
    :class:`SendInFlight` if another attempt started less than ``lease`` ago.
    Does not commit; commit before calling Twilio, so a crash leaves ``sending``.
    """
    now = now or utcnow()
    message = session.execute(
        select(OutboundMessage).where(OutboundMessage.id == message_id).with_for_update()
    ).scalar_one_or_none()
    if message is None or message.sid is not None:
        return None
    if message.status not in (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.UNKNOWN):
        return None
    in_flight = message.status == MessageStatus.SENDING
    if in_flight and message.attempted_at and now - message.attempted_at < lease:
        raise SendInFlight(f"outbound message {message_id} has an attempt in flight")
    reconcile_first = message.status != MessageStatus.PENDING
    message.status = MessageStatus.SENDING
    message.attempts += 1
    message.attempted_at = now
    message.updated_at = now
    session.add(message)
    session.flush()
    return Claim(message=message, reconcile_first=reconcile_first)


def suppression_reason(session: Session, message: OutboundMessage) -> str | None:
    """Why this message must not be sent at all, or None.

    An invalid number cannot receive anything; an opted-out number may only get the kinds
    in :data:`~sms_service.models.KINDS_AFTER_OPT_OUT` (the reply to its own text, the one
    confirmation of its opt-out), never a broadcast or notice.
    """
    status = session.execute(
        select(Subscriber.status).where(Subscriber.phone == message.to_number)
    ).scalar_one_or_none()
    if status == SubscriberStatus.INVALID:
        return "not sent: the number cannot receive texts"
    if status == SubscriberStatus.OPTED_OUT and message.kind not in KINDS_AFTER_OPT_OUT:
        return "not sent: the number has opted out"
    return None


def record_outcome(
    session: Session,
    message: OutboundMessage,
    outcome: SendOutcome,
    *,
    program: str,
    now: datetime | None = None,
) -> None:
    """Store what a send came to, and what it says about the number. Does not commit.

    accepted → sid and Twilio's status (or a later one already reported by callback);
    opted_out → ``failed`` and the subscriber opted out with a carrier consent event;
    invalid_number → ``failed`` and the subscriber ``invalid``; failed → ``failed`` with
    the code; retryable → back to ``pending``; unknown → ``unknown`` (reconcile before resending).
    """
    now = now or utcnow()
    message.updated_at = now
    if outcome.kind is Outcome.ACCEPTED:
        message.sid = outcome.sid
        message.status = outcome.status or MessageStatus.QUEUED
        if carrier_status.rank(message.status) is None:
            message.status = MessageStatus.QUEUED
        if outcome.num_segments:  # 0 via a Messaging Service until a sender is picked
            message.segments = outcome.num_segments
        message.sent_at = message.sent_at or now
        message.error_code = None
        message.error_message = None
        session.add(message)
        session.flush()
        early = latest_reported_status(session, outcome.sid or "")
        if early is not None and carrier_status.advances(message.status, early.status):
            message.status = early.status
            message.error_code = early.error_code
        session.add(message)
        log.info("sent %s to %s as %s", message.id, mask(message.to_number), message.sid)
        return
    message.error_code = outcome.error_code
    message.error_message = outcome.error_message
    if outcome.kind is Outcome.RETRYABLE:
        message.status = MessageStatus.PENDING
    elif outcome.kind is Outcome.UNKNOWN:
        message.status = MessageStatus.UNKNOWN
    else:
        message.status = MessageStatus.FAILED
    session.add(message)
    verdict = carrier_status.verdict_of_refusal(outcome.kind)
    apply_carrier_verdict(
        session, message.to_number, verdict, program=program,
        error_code=outcome.error_code, occurred_at=now,
    )  # fmt: skip
    session.flush()
    log.info(
        "send %s to %s: %s %s",
        message.id,
        mask(message.to_number),
        outcome.kind,
        outcome.error_code or "",
    )
