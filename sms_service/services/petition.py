"""Signing a petition on the web (the page and the API), and the double opt-in it starts.

The protocol, across transactions:

1. **The request** (one transaction, :func:`sign_on_web`): the signature is stored with
   source ``web``, the disclosure shown, IP and user agent; a repeat signer (same number,
   same e-mail, or same name from the same address when neither was given) is found
   instead, so nothing counts twice. With a number and the SMS box ticked, the number's
   subscriber row is locked (so two requests for one number queue behind each other) and,
   unless the number is opted out, invalid, already subscribed or was sent a confirmation
   within ``PETITION_CONFIRM_INTERVAL_HOURS``, a :class:`~sms_service.models.WebConfirmation`
   and a ``pending`` outbound message are written. Nothing is sent inside the request.
2. **After commit** the caller enqueues the outbound message for the single-send job
   (:func:`workers.send.enqueue_send`), which checks consent again just before sending.
3. **The reply** (the inbound webhook's transaction): the keyword engine sees the pending
   confirmation (:data:`PENDING_WEB_CONFIRMATION`); YES or Y within the window subscribes
   the number and :func:`web_reply` logs the opt-in with source ``web``, the page's disclosure,
   the confirmation text and the reply's MessageSid. STOP opts out as usual and closes it.
   No reply: the confirmation lapses and nobody is subscribed.

Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Row, bindparam, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from config import Settings
from sms_service.db import RaceLost, for_each_dialect, with_retries
from sms_service.db.pipeline import Batches, batches
from sms_service.domain import petition
from sms_service.domain.keywords import Decision, could_be_campaign_keyword
from sms_service.domain.petition import CleanSignature
from sms_service.domain.replies import Program
from sms_service.models import (
    Campaign,
    ConsentEvent,
    MessageKind,
    OutboundMessage,
    Signature,
    Subscriber,
    SubscriberStatus,
    WebConfirmation,
    utcnow,
)
from sms_service.services.outbox import outbound_values

CONFIRMATION_KIND = MessageKind.CONFIRMATION  # never sent once the number opted out


class Confirmation(StrEnum):
    """What became of the SMS part of a web signature."""

    NOT_ASKED = "not_asked"  # no number, or the box was not ticked
    QUEUED = "queued"  # a confirmation text is on its way; YES subscribes
    ALREADY_SUBSCRIBED = "already_subscribed"  # consent already on record: no text
    OPTED_OUT = "opted_out"  # the number said STOP before: never texted from a form
    UNREACHABLE = "unreachable"  # the carrier said the number cannot receive texts
    RECENTLY_SENT = "recently_sent"  # one confirmation per number per interval


@dataclass(frozen=True)
class WebSignatureResult:
    """The outcome of one web signature."""

    signature_id: int
    counted: bool  # False when this supporter had signed already
    confirmation: Confirmation
    outbound_message_id: int | None = None


def find_campaign(session: Session, keyword: str) -> Campaign | None:
    """The active campaign with this keyword (any case), or None."""
    if not could_be_campaign_keyword(keyword):
        return None
    return session.execute(
        select(Campaign).where(Campaign.keyword == keyword.upper(), Campaign.active.is_(True))
    ).scalar_one_or_none()


def active_campaigns(session: Session) -> list[Campaign]:
    """Active campaigns, newest first."""
    query = select(Campaign).where(Campaign.active.is_(True)).order_by(Campaign.id.desc())
    return list(session.execute(query).scalars())


def signature_count(session: Session, campaign_id: int) -> int:
    """How many supporters signed, by text and on the web."""
    return session.execute(
        select(func.count()).select_from(Signature).where(Signature.campaign_id == campaign_id)
    ).scalar_one()


def sign_on_web(
    engine: Engine, *, keyword: str, form: CleanSignature, settings: Settings, program: Program,
    ip: str | None, user_agent: str | None, now: datetime | None = None,
) -> tuple[Row, WebSignatureResult] | None:  # fmt: skip
    """Store a web signature and, with consent, a pending confirmation text (step 1 above),
    in one committed transaction; the campaign's row and the outcome, or None when no open
    petition has ``keyword``. The caller enqueues ``outbound_message_id`` when it is set.

    Two round trips for a new signer (:mod:`sms_service.db.pipeline`): BEGIN and the first
    batch (the campaign, the number's row created if missing and locked, the signature
    inserted unless the supporter signed already, any recent confirmation), then the writes
    with COMMIT. Whether the supporter signed already is the signature's unique constraints'
    answer (``ON CONFLICT DO NOTHING``), not a search: a search's plan, made once per
    connection while a new petition's table is nearly empty, kept reading every signature
    of the campaign as it grew. A concurrent twin's insert waits for this one's commit and
    then finds it. Only a repeat reads its earlier signature, in a round trip of its own.
    """
    if not could_be_campaign_keyword(keyword):
        return None
    now = now or utcnow()
    disclosure = petition.web_disclosure(
        program, sender=settings.twilio_from, privacy_url=settings.program_privacy_url
    )
    fingerprint = None if (form.phone or form.email) else petition.fingerprint(form.name, ip)
    since = now - timedelta(hours=settings.petition_confirm_interval_hours)
    signature = {
        "keyword": keyword.upper(), "phone": form.phone, "name": form.name, "signed_at": now,
        "email": form.email, "fingerprint": fingerprint, "disclosure": disclosure, "ip": ip,
        "user_agent": petition.clean_text(user_agent)[:300] or None, "source": "web",
    }  # fmt: skip
    signer = {key: signature[key] for key in ("keyword", "phone", "email", "fingerprint")}

    def once():
        with batches(engine) as db:
            steps = [(_OPEN_CAMPAIGN, {"keyword": keyword.upper()})]
            if form.phone:
                # Created if missing and locked (the no-op update takes the row lock), before
                # the signature: concurrent requests for one number queue behind each other.
                row = {"phone": form.phone, "status": SubscriberStatus.NONE.value,
                       "created_at": now, "updated_at": now}  # fmt: skip
                steps.append((_LOCK_NUMBER[db.dialect_name], row))
            steps.append((_SIGN[db.dialect_name], signature))
            if form.phone:
                steps.append((_RECENT_CONFIRMATION, {"phone": form.phone, "since": since}))
            results = iter(db.run(steps))  # in the order of the steps
            campaigns = next(results)
            if not campaigns:
                return None
            campaign = campaigns[0]
            subscriber = next(results)[0] if form.phone else None
            signed = next(results)
            recent = bool(next(results)) if form.phone else False
            earlier = None
            if not signed:  # signed already: by number, e-mail or fingerprint
                earlier = _earlier(db.run([(_EARLIER, signer)])[0], subscriber)
                if earlier is None:  # cannot happen while signatures are never deleted
                    db.rollback()
                    raise RaceLost
            result = _write(
                db, campaign=campaign, form=form, subscriber=subscriber,
                signature_id=signed[0].id if signed else earlier.id, earlier=earlier,
                recent=recent, disclosure=disclosure, settings=settings, program=program,
                ip=ip, now=now,
            )  # fmt: skip
            return campaign, result

    return with_retries(once)


def _earlier(rows, subscriber) -> Row | None:
    """The supporter's earlier signature, if any: the number first, the strongest identity."""
    ranked = sorted(rows, key=lambda s: subscriber is None or s.subscriber_id != subscriber.id)
    return ranked[0] if ranked else None


def _confirmation_outcome(subscriber, *, recent: bool) -> Confirmation | None:
    """Why no confirmation text goes to this number, or None when one does."""
    if subscriber.status == SubscriberStatus.OPTED_OUT:
        return Confirmation.OPTED_OUT
    if subscriber.status == SubscriberStatus.INVALID:
        return Confirmation.UNREACHABLE
    if subscriber.status == SubscriberStatus.SUBSCRIBED:
        return Confirmation.ALREADY_SUBSCRIBED
    return Confirmation.RECENTLY_SENT if recent else None


def _write(
    db: Batches, *, campaign, form: CleanSignature, subscriber, signature_id: int, earlier,
    recent: bool, disclosure: str, settings: Settings, program: Program, ip: str | None,
    now: datetime,
) -> WebSignatureResult:  # fmt: skip
    """The writes and COMMIT, in one batch: a repeat's completion, the confirmation text and
    its row (which names the text it just inserted), the consent log's signature event."""
    steps = []
    if earlier is not None:
        # A repeat: complete what the first signature lacked, never count it again.
        steps.append((_COMPLETE, {
            "signature_id": earlier.id, "subscriber_id": subscriber.id if subscriber else None,
            "email": form.email, "name": form.name,
        }))  # fmt: skip
    outcome, text = Confirmation.NOT_ASKED, None
    if subscriber is not None and form.sms_consent:
        outcome = _confirmation_outcome(subscriber, recent=recent) or Confirmation.QUEUED
        if outcome is Confirmation.QUEUED:
            text = petition.confirmation_text(program, campaign.title)
            steps.append((_NEW_TEXT, outbound_values(
                settings, to=subscriber.phone, body=text, kind=CONFIRMATION_KIND
            )))  # fmt: skip
            # Right after the text's insert: its id is this connection's last one.
            steps.append((_NEW_CONFIRMATION[db.dialect_name], {
                "phone": subscriber.phone, "campaign_id": campaign.id,
                "signature_id": signature_id, "status": "pending", "disclosure": disclosure,
                "confirmation_text": text, "ip": ip, "created_at": now,
                "expires_at": now + timedelta(hours=settings.petition_confirm_window_hours),
            }))  # fmt: skip
    counted = earlier is None
    if subscriber is not None and counted:
        steps.append((_EVENT, {
            "occurred_at": now, "phone": subscriber.phone, "event": "signature",
            "keyword": None, "message_body": None, "message_sid": None, "source": "web",
            "program": program.name, "disclosure": disclosure, "campaign_id": campaign.id,
            "review_by": None,
            "note": f"web form from {ip or 'unknown address'}; SMS box "
            f"{'ticked' if form.sms_consent else 'not ticked'}; confirmation: {outcome}",
        }))  # fmt: skip
    results = db.run(steps, commit=True)
    message_id = None
    if text is not None:
        message_id = results[1 if earlier is not None else 0][0].id
    return WebSignatureResult(signature_id, counted, outcome, message_id)


_SUBSCRIBERS = Subscriber.__table__
_SIGNATURES = Signature.__table__
_OPEN_CAMPAIGN = select(Campaign.__table__).where(
    Campaign.keyword == bindparam("keyword"), Campaign.active.is_(True)
)
# Any earlier signature by this supporter: by number, e-mail or (neither given) fingerprint;
# a missing one is NULL and matches nothing.
_EARLIER = (
    select(_SIGNATURES.c.id, _SIGNATURES.c.subscriber_id)
    .where(
        _SIGNATURES.c.campaign_id
        == select(Campaign.id).where(Campaign.keyword == bindparam("keyword")).scalar_subquery(),
        or_(
            _SIGNATURES.c.subscriber_id
            == select(_SUBSCRIBERS.c.id)
            .where(_SUBSCRIBERS.c.phone == bindparam("phone"))
            .scalar_subquery(),
            _SIGNATURES.c.email == bindparam("email", type_=_SIGNATURES.c.email.type),
            _SIGNATURES.c.fingerprint
            == bindparam("fingerprint", type_=_SIGNATURES.c.fingerprint.type),
        ),
    )
    .limit(3)
)
_RECENT_CONFIRMATION = (
    select(WebConfirmation.id)
    .where(
        WebConfirmation.phone == bindparam("phone"), WebConfirmation.created_at > bindparam("since")
    )
    .limit(1)
)
_COMPLETE = (
    update(_SIGNATURES)
    .where(_SIGNATURES.c.id == bindparam("signature_id"))
    .values(
        subscriber_id=func.coalesce(
            _SIGNATURES.c.subscriber_id,
            bindparam("subscriber_id", type_=_SIGNATURES.c.subscriber_id.type),
        ),
        email=func.coalesce(
            _SIGNATURES.c.email, bindparam("email", type_=_SIGNATURES.c.email.type)
        ),
        name=func.coalesce(_SIGNATURES.c.name, bindparam("name", type_=_SIGNATURES.c.name.type)),
    )
)
_NEW_TEXT = OutboundMessage.__table__.insert().returning(OutboundMessage.__table__.c.id)
_EVENT = ConsentEvent.__table__.insert()


def _lock_number(insert):
    statement = insert(_SUBSCRIBERS)
    return statement.on_conflict_do_update(
        index_elements=["phone"], set_={"phone": statement.excluded.phone}
    ).returning(_SUBSCRIBERS.c.id, _SUBSCRIBERS.c.phone, _SUBSCRIBERS.c.status)


def _sign(insert):
    """The web signature, unless the supporter signed already (any of the unique constraints:
    campaign and number, campaign and e-mail, campaign and fingerprint); nothing when no
    open petition has the keyword. Its number's row is found by the batch's earlier lock."""
    column = _SIGNATURES.c
    values = select(
        Campaign.id,
        select(_SUBSCRIBERS.c.id).where(_SUBSCRIBERS.c.phone == bindparam("phone"))
        .scalar_subquery(),
        *(bindparam(name, type_=column[name].type) for name in _SIGNED[2:]),
    ).where(Campaign.keyword == bindparam("keyword"), Campaign.active.is_(True))  # fmt: skip
    statement = insert(_SIGNATURES).from_select(_SIGNED, values)
    return statement.on_conflict_do_nothing().returning(column.id)


_SIGNED = ["campaign_id", "subscriber_id", "name", "signed_at", "email", "fingerprint",
           "disclosure", "ip", "user_agent", "source"]  # fmt: skip
# The text inserted just before in the same batch, on this connection.
_LAST_TEXT_ID = {
    "postgresql": func.currval(func.pg_get_serial_sequence("outbound_messages", "id")),
    "sqlite": func.last_insert_rowid(),
}
_NEW_CONFIRMATION = {
    dialect: WebConfirmation.__table__.insert().values(outbound_message_id=last)
    for dialect, last in _LAST_TEXT_ID.items()
}
_LOCK_NUMBER = for_each_dialect(_lock_number)
_SIGN = for_each_dialect(_sign)


# The open confirmation for :phone at :at (the newest, if several), read by the inbound
# webhook in its batch of reads.
_CONFIRMATIONS = WebConfirmation.__table__
PENDING_WEB_CONFIRMATION = (
    select(
        _CONFIRMATIONS.c.id,
        _CONFIRMATIONS.c.phone,
        _CONFIRMATIONS.c.campaign_id,
        _CONFIRMATIONS.c.outbound_message_id,
        _CONFIRMATIONS.c.disclosure,
        _CONFIRMATIONS.c.confirmation_text,
        _CONFIRMATIONS.c.created_at,
        _CONFIRMATIONS.c.expires_at,
    )  # fmt: skip
    .where(
        WebConfirmation.phone == bindparam("phone"),
        WebConfirmation.status == "pending",
        WebConfirmation.expires_at >= bindparam("at"),
    )
    .order_by(WebConfirmation.created_at.desc())
    .limit(1)
)
_RESOLVE = (
    update(WebConfirmation.__table__)
    .where(WebConfirmation.id == bindparam("confirmation_id"))
    .values(
        status=bindparam("new_status"),
        resolved_at=bindparam("resolved_at"),
        reply_message_sid=bindparam("reply_sid"),
    )
)


def web_reply(
    confirmation, *, message_sid: str, body: str, received_at: datetime, decision: Decision,
    program: Program,
) -> tuple[list, list[dict]]:  # fmt: skip
    """Closing the open ``confirmation`` (a row of :data:`PENDING_WEB_CONFIRMATION`) after
    YES or STOP (step 3): the statements to run, and the consent event to log (the web
    opt-in after YES, with the page's wording; STOP's opt-out is logged by the inbound path,
    as for any STOP)."""
    if not (decision.confirms_web or decision.closes_web_confirmation):
        return [], []
    resolve = (_RESOLVE, {
        "confirmation_id": confirmation.id, "resolved_at": received_at, "reply_sid": message_sid,
        "new_status": "confirmed" if decision.confirms_web else "opted_out",
    })  # fmt: skip
    if not decision.confirms_web:
        return [resolve], []
    event = {
        "occurred_at": received_at, "phone": confirmation.phone, "event": "opt_in",
        "keyword": decision.keyword, "message_body": body, "message_sid": message_sid,
        "source": "web", "program": program.name, "disclosure": confirmation.disclosure,
        "campaign_id": confirmation.campaign_id, "review_by": None,
        "note": f"web double opt-in: confirmation text sent "
        f"{confirmation.created_at.isoformat()}"
        f" (outbound message {confirmation.outbound_message_id}): "
        f"{confirmation.confirmation_text}",
    }  # fmt: skip
    return [resolve], [event]
