"""Outbound texts and the delivery reports Twilio posts back about them.

An :class:`OutboundMessage` is written *before* the API call, so a crash mid-send leaves a
row that says an attempt was in flight (``sending``) and the next attempt asks the carrier
before it sends again. Each status callback is kept as a :class:`MessageStatusEvent`,
unique on (sid, status): Twilio retries and reorders callbacks, and each transition is
recorded once whatever arrives.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from sms_service.models.core import utcnow


class MessageKind(StrEnum):
    """Why a single text is sent (``outbound_messages.kind``); the value is what is stored."""

    REPLY = "reply"  # the answer to the number's own text
    OPT_OUT_CONFIRMATION = "optout_confirm"  # the one text allowed after a revocation
    CONFIRMATION = "confirmation"  # asks the number to confirm something (web sign-up)
    SYSTEM = "system"  # a notice from the service


# An opted-out number may still get these (and nothing else): the reply to its own text,
# and the single confirmation of its opt-out that the rules allow.
KINDS_AFTER_OPT_OUT = frozenset({MessageKind.REPLY, MessageKind.OPT_OUT_CONFIRMATION})


class OutboundMessage(SQLModel, table=True):
    """One text we send (a keyword reply, a broadcast, a system notice).

    Lifecycle (``status``)::

        pending ──> sending ──> accepted ──> queued ──> sent ──> delivered
           ^          │ │      (Messaging       │         │
           │          │ │       Service)        │         └──> undelivered
           └retryable─┘ │                       └──> failed
                        └──> unknown ──(reconcile: found)──> queued / sent / ...
                                 └─────(not found)──> sending (sent again)

    ``pending``: written, not yet handed to Twilio. ``sending``: an API call is in flight
    (or its worker died; after the lease, ``BROADCAST_LEASE_SECONDS``, it is treated as
    ``unknown``). ``unknown``: the call timed out or the connection dropped, so Twilio may
    have accepted it; the carrier is asked (:func:`sms_service.carrier.sender.reconcile`) before
    any retry. ``accepted``/``queued``: Twilio took it (``sid`` set). ``sent``,
    ``delivered``, ``undelivered``, ``failed``: from status callbacks, moving forward only
    (:data:`sms_service.domain.carrier_status.STATUS_RANK`). A refusal at the API (opted out,
    invalid number, other error) is ``failed`` with ``error_code`` and no sid.
    """

    __tablename__ = "outbound_messages"

    id: int | None = Field(default=None, primary_key=True)
    sid: str | None = Field(default=None, max_length=64, unique=True, index=True)
    dedupe_key: str | None = Field(default=None, max_length=128, unique=True)
    to_number: str = Field(max_length=16, index=True)
    from_number: str | None = Field(default=None, max_length=16)
    messaging_service_sid: str | None = Field(default=None, max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))
    segments: int = 1
    encoding: str = Field(default="GSM-7", max_length=8)
    status: str = Field(default="pending", max_length=16, index=True)
    error_code: int | None = None
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    kind: str = Field(default=MessageKind.REPLY, max_length=16, index=True)  # MessageKind
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow, index=True)
    attempted_at: datetime | None = None
    sent_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class MessageStatusEvent(SQLModel, table=True):
    """One status transition reported by Twilio for one message sid, recorded once.

    The sid is not a foreign key: a callback can arrive before the send that produced
    the sid has committed, and it is kept all the same.
    """

    __tablename__ = "message_status_events"
    __table_args__ = (UniqueConstraint("sid", "status", name="uq_message_status_events_sid"),)

    id: int | None = Field(default=None, primary_key=True)
    sid: str = Field(max_length=64)  # indexed by the unique (sid, status) constraint
    status: str = Field(max_length=16)
    error_code: int | None = None
    occurred_at: datetime = Field(default_factory=utcnow, index=True)
    raw: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
