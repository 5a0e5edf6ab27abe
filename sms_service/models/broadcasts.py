"""Broadcasts: one text to an audience, once or on a schedule, delivered exactly once.

A :class:`Broadcast` is what the organiser asked for. Each time it goes out is a
:class:`BroadcastRun` (one per occurrence, unique on ``(broadcast_id, occurrence_at)``, so
a second insert of the same occurrence does nothing). Planning a run writes one
:class:`BroadcastDelivery` per recipient (unique on ``(run_id, subscriber_id)``), and the
deliveries are what the senders claim, send and record.

Broadcast lifecycle (``Broadcast.status``)::

    draft ──> scheduled ──> sending ──> sent          (one-off, last run done)
                  ^            │
                  └────────────┘                      (recurring: back to scheduled)
    draft | scheduled | sending ──> cancelled         (organiser; no send starts after)
    scheduled | sending ──> failed                    (the audience could not be planned)

Run lifecycle (``BroadcastRun.status``): ``scheduled > sending > sent``, or ``cancelled``,
or ``failed``. Delivery lifecycle (``BroadcastDelivery.status``)::

    pending ──> sending ──> sent                      (Twilio accepted it; sid kept)
       ^  │        │  └───> failed                    (refused for good; error code)
       │  │        └──────> pending                   (retryable, or reconciled: not sent)
       │  ├──> skipped (reason)                       (opted out, frequency cap, cancelled)
       │  └──> deferred (not_before)                  (quiet hours)
       └──────────┘                                   (deferred, once not_before passes)

``sending`` is written and committed *before* the API call, with an attempt id and time.
A delivery left in ``sending`` whose attempt is over (the worker died or the answer was
lost) is asked about at the carrier before it is ever sent again.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from sms_service.models.core import utcnow


class BroadcastStatus(StrEnum):
    """Where a broadcast stands; see the module docstring for the transitions."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class RunStatus(StrEnum):
    """Where one occurrence of a broadcast stands."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    """Where one recipient of one run stands."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    DEFERRED = "deferred"


class AudienceKind(StrEnum):
    """Who a broadcast goes to: every subscriber, a campaign's signers, a tag, a list."""

    ALL = "all"
    CAMPAIGN = "campaign"
    TAG = "tag"
    LIST = "list"


class Broadcast(SQLModel, table=True):
    """A text an organiser sends to an audience, at ``send_at`` and then per ``recurrence``.

    ``send_at`` is the first occurrence, stored in UTC; ``timezone`` is the organiser's zone,
    in which it was entered, is shown, and in which a recurring time of day is kept.
    ``recurrence`` is a :class:`sms_service.domain.recurrence.Rule` value.
    """

    __tablename__ = "broadcasts"

    id: int | None = Field(default=None, primary_key=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    # The Spanish version, sent instead of ``body`` to subscribers whose language is "es".
    body_es: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    audience_kind: str = Field(max_length=16)
    audience_value: str | None = Field(default=None, max_length=200)
    audience_campaign_id: int | None = Field(default=None, foreign_key="campaigns.id")
    send_at: datetime
    timezone: str = Field(max_length=64)
    recurrence: str = Field(default="none", max_length=16)
    status: str = Field(default=BroadcastStatus.DRAFT, max_length=16, index=True)
    segments: int = 1
    encoding: str = Field(default="GSM-7", max_length=8)
    created_by: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    cancelled_at: datetime | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

    @property
    def audience(self) -> str:
        """The audience for people: its kind, then ``:`` and the tag, keyword or list."""
        value = f":{self.audience_value}" if self.audience_value else ""
        return f"{self.audience_kind}{value}"


class BroadcastNumber(SQLModel, table=True):
    """One line of an uploaded number list: the E.164 number, or why it was not one.

    Invalid lines are kept (``phone`` NULL, ``error`` set) so the organiser can see what
    was left out; valid numbers are unique per broadcast.
    """

    __tablename__ = "broadcast_numbers"
    __table_args__ = (UniqueConstraint("broadcast_id", "phone"),)

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcasts.id")  # indexed by the unique key
    line: int
    raw: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=16)
    error: str | None = Field(default=None, max_length=200)


class BroadcastRun(SQLModel, table=True):
    """One occurrence of a broadcast; inserting the same occurrence twice does nothing.

    ``body`` and ``body_es`` are copied when the run starts, so the text sent (and matched
    when asking the carrier about a lost answer) is fixed for the run.
    """

    __tablename__ = "broadcast_runs"
    __table_args__ = (UniqueConstraint("broadcast_id", "occurrence_at"),)

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcasts.id")  # indexed by the unique key
    occurrence_at: datetime = Field(index=True)
    status: str = Field(default=RunStatus.SCHEDULED, max_length=16, index=True)
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    body_es: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    planned: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancelled_at: datetime | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class BroadcastDelivery(SQLModel, table=True):
    """One recipient of one run: claimed, sent and recorded exactly once.

    The primary key is ``(run_id, subscriber_id)``: one row per recipient per run, and the
    only index written while a run is planned. Planning inserts up to millions of rows
    selected from ``subscribers`` and ``broadcast_runs`` in one statement, so neither
    column is declared a foreign key: a per-row referential check would more than double
    the cost, and neither runs nor subscribers are ever deleted.
    """

    __tablename__ = "broadcast_deliveries"
    __table_args__ = (
        # The frequency cap counts what a subscriber was sent lately; unsent rows stay out,
        # so planning does not write this index.
        Index(
            "ix_broadcast_deliveries_sent",
            "subscriber_id",
            "sent_at",
            postgresql_where=text("sent_at IS NOT NULL"),
            sqlite_where=text("sent_at IS NOT NULL"),
        ),
        # A run's latest carrier reports are looked up by sid (migration 0010).
        Index(
            "ix_broadcast_deliveries_sid",
            "sid",
            postgresql_where=text("sid IS NOT NULL"),
            sqlite_where=text("sid IS NOT NULL"),
        ),
        # Attempts in flight, oldest first: how far a run's reports can be folded, and the
        # recoverer's stale attempts (migration 0011). Only rows being sent are in it.
        Index(
            "ix_broadcast_deliveries_sending",
            "run_id",
            "attempt_started_at",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
    )

    run_id: int = Field(primary_key=True)
    subscriber_id: int = Field(primary_key=True)
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16)
    reason: str | None = Field(default=None, max_length=32)
    not_before: datetime | None = None
    attempt_id: str | None = Field(default=None, max_length=32)
    attempt_started_at: datetime | None = None
    attempts: int = 0
    sid: str | None = Field(default=None, max_length=64)
    segments: int | None = None
    error_code: int | None = None
    sent_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class RunFigures(SQLModel, table=True):
    """A finished run's counts, kept once they can no longer change (see
    :mod:`sms_service.broadcasts.figures`), so its page reads one row instead of grouping
    a million deliveries. ``name`` says which figures (``states``, ``reports``,
    ``opt_outs``); ``value`` is their JSON."""

    __tablename__ = "broadcast_run_figures"

    run_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True, max_length=32)
    value: str = Field(sa_column=Column(Text, nullable=False))
    kept_at: datetime = Field(default_factory=utcnow)
