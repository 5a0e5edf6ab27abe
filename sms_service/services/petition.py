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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, func, or_, select, update
from sqlmodel import Session

from config import Settings
from sms_service.db import dialect_insert
from sms_service.domain import petition
from sms_service.domain.keywords import Decision
from sms_service.domain.petition import CleanSignature
from sms_service.domain.replies import Program
from sms_service.models import (
    Campaign,
    ConsentEvent,
    MessageKind,
    Signature,
    Subscriber,
    SubscriberStatus,
    WebConfirmation,
    utcnow,
)

CONFIRMATION_KIND = MessageKind.CONFIRMATION  # never sent once the number opted out

# Writes a pending outbound message (to, body) in the session and returns its id: the
# single-send path's ``create_outbound_message``, passed in by the caller, since the
# carrier package already depends on this one.
MakeText = Callable[[Session, str, str], int]


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


@dataclass(frozen=True)
class _Number:
    """The signer's subscriber row, locked for this transaction."""

    id: int
    phone: str
    status: str


def _locked_subscriber(session: Session, phone: str, now: datetime) -> _Number:
    # One statement creates the row if missing and locks it (the no-op update takes the row
    # lock on PostgreSQL): concurrent requests for one number queue behind each other here.
    insert = dialect_insert(session)
    statement = insert(Subscriber).values(
        phone=phone, status=SubscriberStatus.NONE, created_at=now, updated_at=now
    )
    row = session.execute(
        statement.on_conflict_do_update(
            index_elements=["phone"], set_={"phone": statement.excluded.phone}
        ).returning(Subscriber.id, Subscriber.phone, Subscriber.status)
    ).one()
    return _Number(*row)


def _existing_signature(
    session: Session, campaign_id: int, subscriber: _Number | None, email: str | None,
    fingerprint: str | None,
) -> Signature | None:  # fmt: skip
    conditions = []
    if subscriber is not None:
        conditions.append(Signature.subscriber_id == subscriber.id)
    if email:
        conditions.append(Signature.email == email)
    if fingerprint:
        conditions.append(Signature.fingerprint == fingerprint)
    found = session.execute(
        select(Signature).where(Signature.campaign_id == campaign_id, or_(*conditions)).limit(3)
    ).scalars()
    # The number first: it is the strongest identity.
    ranked = sorted(found, key=lambda s: subscriber is None or s.subscriber_id != subscriber.id)
    return ranked[0] if ranked else None


def _store_signature(
    session: Session, *, campaign: Campaign, form: CleanSignature, subscriber: _Number | None,
    disclosure: str, ip: str | None, user_agent: str | None, now: datetime,
) -> tuple[int, bool]:  # fmt: skip
    fp = None if (form.phone or form.email) else petition.fingerprint(form.name, ip)
    found = _existing_signature(session, campaign.id, subscriber, form.email, fp)
    if found is None:
        # ON CONFLICT DO NOTHING: a concurrent twin that just inserted it wins, quietly.
        inserted = session.execute(
            dialect_insert(session)(Signature)
            .values(
                campaign_id=campaign.id, subscriber_id=subscriber.id if subscriber else None,
                name=form.name, source="web", signed_at=now, email=form.email, fingerprint=fp,
                disclosure=disclosure, ip=ip, user_agent=(user_agent or "")[:300] or None,
            )
            .on_conflict_do_nothing()
            .returning(Signature.id)
        ).scalar_one_or_none()  # fmt: skip
        if inserted is not None:
            return inserted, True
        found = _existing_signature(session, campaign.id, subscriber, form.email, fp)
        if found is None:
            raise RuntimeError("a signature conflicted but cannot be found")
    # A repeat: complete what the first signature lacked, never count it again.
    if found.subscriber_id is None and subscriber is not None:
        found.subscriber_id = subscriber.id
    if found.email is None and form.email:
        found.email = form.email
    found.name = found.name or form.name
    session.add(found)
    return found.id, False


def _confirmation_outcome(
    session: Session, subscriber: _Number, *, settings: Settings, now: datetime
) -> Confirmation | None:
    if subscriber.status == SubscriberStatus.OPTED_OUT:
        return Confirmation.OPTED_OUT
    if subscriber.status == SubscriberStatus.INVALID:
        return Confirmation.UNREACHABLE
    if subscriber.status == SubscriberStatus.SUBSCRIBED:
        return Confirmation.ALREADY_SUBSCRIBED
    since = now - timedelta(hours=settings.petition_confirm_interval_hours)
    recent = session.execute(
        select(WebConfirmation.id)
        .where(WebConfirmation.phone == subscriber.phone, WebConfirmation.created_at > since)
        .limit(1)
    ).first()
    return Confirmation.RECENTLY_SENT if recent else None


def sign_on_web(
    session: Session, *, campaign: Campaign, form: CleanSignature, settings: Settings,
    program: Program, ip: str | None, user_agent: str | None, make_text: MakeText,
    now: datetime | None = None,
) -> WebSignatureResult:  # fmt: skip
    """Store a web signature and, with consent, queue its confirmation text (step 1 above).

    ``make_text`` writes the pending outbound message. The caller commits, then enqueues
    ``outbound_message_id`` when it is set.
    """
    now = now or utcnow()
    disclosure = petition.web_disclosure(
        program, sender=settings.twilio_from, privacy_url=settings.program_privacy_url
    )
    subscriber = _locked_subscriber(session, form.phone, now) if form.phone else None
    signature_id, counted = _store_signature(
        session, campaign=campaign, form=form, subscriber=subscriber, disclosure=disclosure,
        ip=ip, user_agent=user_agent, now=now,
    )  # fmt: skip
    if subscriber is None or not form.sms_consent:
        outcome, message_id = Confirmation.NOT_ASKED, None
    else:
        outcome = _confirmation_outcome(session, subscriber, settings=settings, now=now)
        message_id = None
        if outcome is None:
            outcome = Confirmation.QUEUED
            message_id = _queue_confirmation(
                session, subscriber=subscriber, campaign=campaign, signature_id=signature_id,
                disclosure=disclosure, settings=settings, program=program, ip=ip, now=now,
                make_text=make_text,
            )  # fmt: skip
    if subscriber is not None and counted:
        session.add(
            ConsentEvent(
                occurred_at=now, phone=subscriber.phone, event="signature", source="web",
                program=program.name, disclosure=disclosure, campaign_id=campaign.id,
                note=f"web form from {ip or 'unknown address'}; SMS box "
                f"{'ticked' if form.sms_consent else 'not ticked'}; confirmation: {outcome}",
            )
        )  # fmt: skip
    session.flush()
    return WebSignatureResult(signature_id, counted, outcome, message_id)


def _queue_confirmation(
    session: Session, *, subscriber: _Number, campaign: Campaign, signature_id: int,
    disclosure: str, settings: Settings, program: Program, ip: str | None, now: datetime,
    make_text: MakeText,
) -> int:  # fmt: skip
    text = petition.confirmation_text(program, campaign.title)
    message_id = make_text(session, subscriber.phone, text)
    session.add(
        WebConfirmation(
            phone=subscriber.phone, campaign_id=campaign.id, signature_id=signature_id,
            outbound_message_id=message_id, disclosure=disclosure, confirmation_text=text,
            ip=ip, created_at=now,
            expires_at=now + timedelta(hours=settings.petition_confirm_window_hours),
        )
    )  # fmt: skip
    return message_id


# The open confirmation for :phone at :at (the newest, if several), read by the inbound
# webhook in its batch of reads.
PENDING_WEB_CONFIRMATION = (
    select(WebConfirmation.__table__)
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
