"""The console's audit log: every console action, who did it, when and from where.

Entries are written in the same transaction as the action they describe, so an action
that commits is always on record and one that rolls back leaves no entry. Nothing here
updates or deletes an entry (the database refuses it too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session

from sms_service.models import AuditEntry, StaffUser, utcnow

PAGE = 50


def _visible(text: str) -> str:
    """``text`` with any NUL written as ``\\x00``: what was tried stays on record, and
    PostgreSQL, which cannot store a NUL, stores the entry."""
    return text.replace("\x00", "\\x00")


def record(
    *,
    session: Session,
    user: StaffUser | None,
    action: str,
    target: str | None = None,
    detail: dict | None = None,
    ip: str | None = None,
    actor: str | None = None,
) -> AuditEntry:
    """Append one entry; ``actor`` names who acted when there is no account (a failed login)."""
    entry = AuditEntry(
        occurred_at=utcnow(),
        user_id=user.id if user else None,
        actor=_visible(user.email if user else actor or "anonymous")[:254],
        action=action[:64],
        target=_visible(target)[:200] if target else None,
        detail=json.dumps(detail, sort_keys=True, default=str) if detail else None,
        ip=(ip or "")[:64] or None,
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class AuditPage:
    """One page of entries, newest first, and whether an older page exists."""

    entries: list[AuditEntry]
    before: int | None  # the id to ask for the next (older) page


def entries(
    *, session: Session, before: int | None = None, action: str | None = None, limit: int = PAGE
) -> AuditPage:
    """Entries newest first, keyset-paginated on id (fast at any depth)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    if action:
        query = query.where(AuditEntry.action == action)
    rows = list(session.execute(query).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows, rows[-1].id if more and rows else None)


def count(*, session: Session) -> int:
    """How many entries the log holds."""
    return session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
