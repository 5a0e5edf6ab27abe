"""Subscribers, campaigns, signatures, inbound messages and the consent log.

The consent log (:class:`ConsentEvent`) is append-only: the application never updates or
deletes a row, an ORM guard refuses it, and the migration installs database triggers that
refuse it too, so even a hand-written SQL statement cannot rewrite what a supporter agreed to.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Text, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from sms_service.errors import ConsentLogIsAppendOnly


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class SubscriberStatus(StrEnum):
    """``none`` (texted but never joined) > ``subscribed`` > ``opted_out``; ``invalid`` when
    the carrier says the number cannot receive texts (21211 / 21614)."""

    NONE = "none"
    SUBSCRIBED = "subscribed"
    OPTED_OUT = "opted_out"
    INVALID = "invalid"


class Subscriber(SQLModel, table=True):
    """One phone number (E.164) and where it stands with the program."""

    __tablename__ = "subscribers"

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=16, unique=True, index=True)
    status: str = Field(default=SubscriberStatus.NONE, max_length=16, index=True)
    name: str | None = Field(default=None, max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    language: str | None = Field(default=None, max_length=8)  # "es"; None: English
    opted_in_at: datetime | None = None
    opted_out_at: datetime | None = None
    pending_name_campaign_id: int | None = Field(default=None, foreign_key="campaigns.id")
    pending_name_asked_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SubscriberTag(SQLModel, table=True):
    """A label on a subscriber, used to pick broadcast audiences."""

    __tablename__ = "subscriber_tags"
    __table_args__ = (UniqueConstraint("subscriber_id", "tag"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id", index=True)
    tag: str = Field(max_length=64, index=True)


class Campaign(SQLModel, table=True):
    """A petition: supporters sign it with SIGN (the active one) or its own keyword."""

    __tablename__ = "campaigns"

    id: int | None = Field(default=None, primary_key=True)
    keyword: str = Field(max_length=32, unique=True, index=True)
    title: str = Field(max_length=200)
    petition_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    active: bool = Field(default=True, index=True)
    # The one campaign a plain SIGN signs (chosen in the console); otherwise the newest
    # active campaign. At most one row is true (a partial unique index).
    sign_default: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow)


class Signature(SQLModel, table=True):
    """One supporter's signature on one petition; unique, so signing twice never counts.

    A supporter is recognised by their number (``subscriber_id``, by text or on the web),
    their e-mail, or, for a web signature with neither, by ``fingerprint`` (a hash of the
    name and the address it came from): each is unique per campaign. Web signatures keep
    the disclosure shown beside the form, the IP address and the user agent.
    """

    __tablename__ = "signatures"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        UniqueConstraint("campaign_id", "email", name="uq_signatures_campaign_email"),
        UniqueConstraint("campaign_id", "fingerprint", name="uq_signatures_campaign_fingerprint"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: the unique (campaign_id, subscriber_id) index starts with it.
    campaign_id: int = Field(foreign_key="campaigns.id")
    subscriber_id: int | None = Field(default=None, foreign_key="subscribers.id", index=True)
    name: str | None = Field(default=None, max_length=100)
    source: str = Field(default="sms", max_length=16)
    signed_at: datetime = Field(default_factory=utcnow, index=True)
    email: str | None = Field(default=None, max_length=254)
    fingerprint: str | None = Field(default=None, max_length=64)
    disclosure: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=300)


class InboundMessage(SQLModel, table=True):
    """Every text received, exactly as received; unique on Twilio's MessageSid so a
    webhook retry is recognised and answered with the reply stored the first time."""

    __tablename__ = "inbound_messages"

    id: int | None = Field(default=None, primary_key=True)
    message_sid: str = Field(max_length=64, unique=True, index=True)
    account_sid: str | None = Field(default=None, max_length=64)
    from_number: str = Field(max_length=16, index=True)
    to_number: str = Field(max_length=16)
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    num_media: int = 0
    opt_out_type: str | None = Field(default=None, max_length=16)
    intent: str = Field(max_length=32)
    reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    received_at: datetime = Field(default_factory=utcnow, index=True)


class ConsentEvent(SQLModel, table=True):
    """One append-only consent record: who, when, what they sent, what they were told.

    ``event`` is one of opt_in, opt_out, help, signature, possible_opt_out (with
    ``review_by``, the date staff must decide by), possible_opt_out_resolved.
    ``source`` is sms, web, import, admin or carrier.
    """

    __tablename__ = "consent_events"
    # One kind of event over a time window (a run's opt-outs, the dashboard's open days).
    __table_args__ = (Index("ix_consent_events_event_occurred_at", "event", "occurred_at"),)

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=utcnow, index=True)
    phone: str = Field(max_length=16, index=True)
    event: str = Field(max_length=32)  # indexed first in ix_consent_events_event_occurred_at
    keyword: str | None = Field(default=None, max_length=32)
    message_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    message_sid: str | None = Field(default=None, max_length=64, index=True)
    source: str = Field(max_length=16)
    program: str = Field(max_length=100)
    disclosure: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    campaign_id: int | None = Field(default=None, foreign_key="campaigns.id")
    review_by: date | None = None
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


@event.listens_for(ConsentEvent, "before_update")
def _refuse_update(mapper, connection, target) -> None:
    raise ConsentLogIsAppendOnly("consent events are never updated")


@event.listens_for(ConsentEvent, "before_delete")
def _refuse_delete(mapper, connection, target) -> None:
    raise ConsentLogIsAppendOnly("consent events are never deleted")
