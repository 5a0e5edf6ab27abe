"""Console accounts and the console's audit log.

A :class:`StaffUser` signs in to ``/console`` with an email and a password (an argon2 hash
is stored, never the password). ``session_token`` is part of the login cookie's user id:
changing it (logout, disable, new password) ends every session of that account at once,
even copies of an old cookie.

The audit log (:class:`AuditEntry`) is append-only like the consent log: an ORM guard and
database triggers refuse updates and deletes.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Text, event
from sqlmodel import Field, SQLModel

from sms_service.errors import AuditLogIsAppendOnly
from sms_service.models.core import utcnow


class StaffRole(StrEnum):
    """What a console account may do (the areas per role: ``web/console/roles.py``)."""

    ADMIN = "admin"
    ORGANISER = "organiser"
    COMPLIANCE = "compliance"


class StaffUser(SQLModel, table=True):
    """One console account. Disabled accounts stay (the audit log names them)."""

    __tablename__ = "staff_users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    role: str = Field(max_length=16)
    active: bool = True
    session_token: str = Field(max_length=32)
    timezone: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=16)  # for test sends
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """One console action: who (account and email at the time), what, on what, when, from
    which address. ``user_id`` is empty for actions without an account (a failed login)."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=utcnow, index=True)
    user_id: int | None = Field(default=None, foreign_key="staff_users.id", index=True)
    actor: str = Field(max_length=254)
    action: str = Field(max_length=64, index=True)
    target: str | None = Field(default=None, max_length=200)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ip: str | None = Field(default=None, max_length=64)


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(mapper, connection, target) -> None:
    raise AuditLogIsAppendOnly("audit entries are never updated")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(mapper, connection, target) -> None:
    raise AuditLogIsAppendOnly("audit entries are never deleted")


class DailyCount(SQLModel, table=True):
    """The dashboard's per-day figures for days that are over, so a chart over millions of
    consent events reads thirty small rows. ``series`` is ``opt_in``, ``opt_out``,
    ``sig:<campaign id>`` or ``_done`` (the day was counted, even if it had nothing)."""

    __tablename__ = "console_daily_counts"

    day: date = Field(primary_key=True)
    series: str = Field(primary_key=True, max_length=40)
    count: int = 0
