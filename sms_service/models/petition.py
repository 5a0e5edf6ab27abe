"""Web sign-ups waiting for their confirmation text's YES, and API tokens.

A :class:`WebConfirmation` is the double opt-in's memory. Lifecycle (``status``)::

    pending ──YES/Y within the window──> confirmed   (opt-in logged, source web)
       │ └────STOP──────────────────────> opted_out  (opt-out logged as usual)
       └──window passes, no YES─────────> (stays pending, past ``expires_at``: nobody
                                           is subscribed; it only counts for the 24 h limit)

It keeps what the consent record needs when the YES arrives: the disclosure shown beside
the form, the exact confirmation text sent and the outbound message that carried it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from sms_service.models.core import utcnow


class WebConfirmation(SQLModel, table=True):
    """One confirmation text sent after a web sign-up with a number and consent."""

    __tablename__ = "web_confirmations"

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=16, index=True)
    campaign_id: int = Field(foreign_key="campaigns.id")
    signature_id: int | None = Field(default=None, foreign_key="signatures.id")
    outbound_message_id: int | None = Field(default=None, foreign_key="outbound_messages.id")
    status: str = Field(default="pending", max_length=16, index=True)
    disclosure: str = Field(sa_column=Column(Text, nullable=False))
    confirmation_text: str = Field(sa_column=Column(Text, nullable=False))
    ip: str | None = Field(default=None, max_length=45)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    expires_at: datetime
    resolved_at: datetime | None = None
    reply_message_sid: str | None = Field(default=None, max_length=64)


class ApiToken(SQLModel, table=True):
    """A bearer token for the JSON API. Only its SHA-256 is stored (the token is 32 random
    bytes, so a fast hash is enough: there is nothing to guess); ``prefix`` lets staff tell
    tokens apart in listings. Revoked tokens stay, for the record."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    scope: str = Field(max_length=32)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
