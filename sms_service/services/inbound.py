"""Apply a keyword decision to the database: the transaction behind ``POST /sms/inbound``.

Receiving (the webhook view), deciding (:mod:`sms_service.domain.keywords`) and storing
(this module) are separate parts. Nothing here commits: the caller's transaction holds the
inbound message, the status change, the signature and the consent events together.

Races are settled by the database, in this order:

1. The message is *claimed* first: ``INSERT … ON CONFLICT (message_sid) DO NOTHING``. A
   Twilio retry racing the first delivery waits on that row until the first transaction
   ends, then finds it and answers with the stored reply; nothing is applied twice. (On
   SQLite this first write also takes the database's single write lock, so the rest of the
   transaction runs alone.)
2. The sender's subscriber row is locked (``SELECT … FOR UPDATE``), so two texts from one
   number are decided one after the other, each on what the other committed: the final
   status follows commit order.
3. A brand-new number has no row to lock. If the decision needs one, it is created with
   ``INSERT … ON CONFLICT (phone) DO NOTHING``; when a concurrent text (or a status callback)
   created it first, that insert waits for it to commit, and the text is decided again on
   the row it left.

Whatever still conflicts (a unique violation elsewhere, a deadlock) aborts the transaction,
which the caller runs again (:func:`sms_service.db.run_transaction`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlmodel import Session

from sms_service.db import dialect_insert
from sms_service.domain import keywords
from sms_service.domain.keywords import ConsentKind, Decision, Status
from sms_service.domain.reach import Reach, refuse_unreachable
from sms_service.domain.replies import Program
from sms_service.models import Campaign, ConsentEvent, InboundMessage, Signature, Subscriber
from sms_service.services.reviews import is_under_review


@dataclass(frozen=True)
class InboundSms:
    """One inbound text as Twilio posted it, phone numbers already normalised."""

    message_sid: str
    from_number: str
    to_number: str
    body: str
    received_at: datetime
    account_sid: str | None = None
    num_media: int = 0
    opt_out_type: str | None = None


@dataclass(frozen=True)
class InboundResult:
    """What the webhook answers: the reply (or None) and whether this was a retry."""

    reply: str | None
    intent: str
    duplicate: bool = False


# The intent a claimed message holds until its decision is stored, in the same transaction:
# no other transaction ever reads it.
CLAIMED = "received"


def find_processed(session: Session, message_sid: str) -> InboundResult | None:
    """The stored outcome of a MessageSid already handled (a Twilio retry), if any."""
    row = session.execute(
        select(InboundMessage).where(InboundMessage.message_sid == message_sid)
    ).scalar_one_or_none()
    if row is None:
        return None
    return InboundResult(reply=row.reply, intent=row.intent, duplicate=True)


def claim_message(session: Session, sms: InboundSms) -> int | None:
    """Insert the inbound message unless its MessageSid is known; its id, or None for a retry.

    Waits, in PostgreSQL, for a concurrent transaction holding the same MessageSid.
    """
    statement = (
        dialect_insert(session)(InboundMessage)
        .values(
            message_sid=sms.message_sid,
            account_sid=sms.account_sid,
            from_number=sms.from_number,
            to_number=sms.to_number,
            body=sms.body,
            num_media=sms.num_media,
            opt_out_type=sms.opt_out_type,
            intent=CLAIMED,
            received_at=sms.received_at,
        )
        .on_conflict_do_nothing(index_elements=["message_sid"])
        .returning(InboundMessage.id)
    )
    return session.execute(statement).scalar_one_or_none()


def load_catalogue(session: Session) -> keywords.Catalogue:
    """Active campaigns by keyword; SIGN signs the one chosen as default (``sign_default``),
    else the most recently created active one."""
    rows = session.execute(
        select(Campaign)
        .where(Campaign.active.is_(True))
        .order_by(Campaign.sign_default.desc(), Campaign.created_at.desc())
    ).scalars()
    campaigns = [keywords.Campaign(c.id, c.keyword, c.title) for c in rows]
    return keywords.Catalogue(
        by_keyword={c.keyword.upper(): c for c in campaigns},
        default=campaigns[0] if campaigns else None,
    )


def load_conversation(session: Session, subscriber: Subscriber | None) -> keywords.Conversation:
    """The sender's status, signatures and any pending name question."""
    if subscriber is None:
        return keywords.Conversation(status=Status.NONE)
    signed = {
        campaign_id: bool(name)
        for campaign_id, name in session.execute(
            select(Signature.campaign_id, Signature.name).where(
                Signature.subscriber_id == subscriber.id
            )
        ).all()
    }
    pending = None
    count = 0
    if subscriber.pending_name_campaign_id is not None:
        campaign = session.get(Campaign, subscriber.pending_name_campaign_id)
        if campaign is not None:
            pending = keywords.Campaign(campaign.id, campaign.keyword, campaign.title)
            count = signature_count(session, campaign.id)
    known = {s.value for s in Status}
    status = Status(subscriber.status) if subscriber.status in known else Status.NONE
    return keywords.Conversation(
        status=status,
        signed=signed,
        pending_name=pending,
        pending_name_asked_at=subscriber.pending_name_asked_at,
        pending_signature_count=count,
        language=subscriber.language or "en",
        under_review=is_under_review(session, subscriber.phone),
    )


def signature_count(session: Session, campaign_id: int) -> int:
    """How many supporters signed the campaign."""
    return session.execute(
        select(func.count()).select_from(Signature).where(Signature.campaign_id == campaign_id)
    ).scalar_one()


def handle_inbound(
    session: Session, sms: InboundSms, program: Program, reach: Reach | None = None
) -> InboundResult:
    """Decide and store one inbound text; idempotent on MessageSid. Does not commit.

    A sign-up from a number the sender cannot reach (``reach``) is refused and changes
    nothing. Safe to run again from the start after a rollback (see the module docstring).
    """
    message_id = claim_message(session, sms)
    if message_id is None:
        done = find_processed(session, sms.message_sid)
        # The row we conflicted with is committed by now (ON CONFLICT waited for it).
        return done or InboundResult(reply=None, intent=CLAIMED, duplicate=True)
    catalogue = load_catalogue(session)
    for _ in range(3):
        subscriber = _lock_subscriber(session, sms.from_number)
        decision = keywords.decide(
            sms.body,
            load_conversation(session, subscriber),
            catalogue,
            program,
            received_at=sms.received_at,
            carrier_opt_out_type=sms.opt_out_type,
        )
        decision = refuse_unreachable(decision, sms.from_number, reach, program)
        # Only an opt-out, opt-in or signature creates a row: "hi" from a stranger leaves none.
        if subscriber is not None or not decision.events:
            break
        subscriber = _insert_subscriber(session, sms)
        if subscriber is not None:
            break
        # Another transaction created this number's row first and has committed it:
        # decide again on what it left (a second pass finds the row).
    else:
        raise RuntimeError("the subscriber row conflicts but cannot be found")
    if subscriber is not None:
        _apply_status(session, subscriber, sms, decision)
        _apply_signature(session, subscriber, sms, decision)
    _append_events(session, sms, decision, program)
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == message_id)
        .values(intent=decision.intent, reply=decision.reply)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return InboundResult(reply=decision.reply, intent=decision.intent)


def _lock_subscriber(session: Session, phone: str) -> Subscriber | None:
    # populate_existing: a second pass must see the row as the other transaction left it.
    return session.execute(
        select(Subscriber)
        .where(Subscriber.phone == phone)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _insert_subscriber(session: Session, sms: InboundSms) -> Subscriber | None:
    """Create the sender's row; None when a concurrent transaction created it first."""
    new_id = session.execute(
        dialect_insert(session)(Subscriber)
        .values(
            phone=sms.from_number,
            status=Status.NONE.value,
            created_at=sms.received_at,
            updated_at=sms.received_at,
        )
        .on_conflict_do_nothing(index_elements=["phone"])
        .returning(Subscriber.id)
    ).scalar_one_or_none()
    return session.get(Subscriber, new_id) if new_id is not None else None


def _apply_status(
    session: Session, subscriber: Subscriber, sms: InboundSms, decision: Decision
) -> None:
    previous = subscriber.status
    if decision.status is not Status.NONE and decision.status != previous:
        subscriber.status = decision.status
        if decision.status is Status.SUBSCRIBED:
            subscriber.opted_in_at = sms.received_at
        elif decision.status is Status.OPTED_OUT:
            subscriber.opted_out_at = sms.received_at
    if decision.clear_pending_name:
        subscriber.pending_name_campaign_id = None
        subscriber.pending_name_asked_at = None
    if decision.ask_name is not None:
        subscriber.pending_name_campaign_id = decision.ask_name.id
        subscriber.pending_name_asked_at = sms.received_at
    if decision.name is not None:
        subscriber.name = decision.name
    if decision.language is not None:
        subscriber.language = decision.language
    subscriber.updated_at = sms.received_at
    session.add(subscriber)
    session.flush()


def _apply_signature(
    session: Session, subscriber: Subscriber, sms: InboundSms, decision: Decision
) -> None:
    if decision.sign is None:
        return
    signature = session.execute(
        select(Signature).where(
            Signature.campaign_id == decision.sign.id,
            Signature.subscriber_id == subscriber.id,
        )
    ).scalar_one_or_none()
    if signature is None:
        signature = Signature(
            campaign_id=decision.sign.id,
            subscriber_id=subscriber.id,
            source="sms",
            signed_at=sms.received_at,
        )
    if decision.name is not None:
        signature.name = decision.name
    session.add(signature)


def _append_events(session: Session, sms: InboundSms, decision: Decision, program: Program) -> None:
    # With Advanced Opt-Out, Twilio answered the keyword itself; we record the request
    # the same way and note that the reply wording was the carrier's, not ours.
    carrier = sms.opt_out_type and f"answered by Twilio Advanced Opt-Out ({sms.opt_out_type})"
    note = "; ".join(n for n in (decision.note, carrier) if n) or None
    for kind in decision.events:
        # The disclosure recorded is exactly what this number was sent in reply: the
        # opt-in wording for opt_in/signature, the confirmation for opt_out, none when the
        # carrier answered for us.
        session.add(
            ConsentEvent(
                occurred_at=sms.received_at,
                phone=sms.from_number,
                event=kind,
                keyword=decision.keyword,
                message_body=sms.body,
                message_sid=sms.message_sid,
                source="sms",
                program=program.name,
                disclosure=decision.reply,
                campaign_id=decision.sign.id
                if decision.sign and kind in (ConsentKind.SIGNATURE, ConsentKind.OPT_IN)
                else None,
                review_by=decision.review_by if kind is ConsentKind.POSSIBLE_OPT_OUT else None,
                note=note,
            )
        )
