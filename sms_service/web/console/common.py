"""Helpers every console view uses: the transaction, the audit entry, times and numbers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app, g
from flask_login import current_user
from sqlmodel import Session

from sms_service.db import session_scope
from sms_service.domain.phones import mask
from sms_service.domain.zones import zone_named
from sms_service.models import StaffUser
from sms_service.services import audit
from sms_service.web.security import client_ip


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work for a console request (commits if the block succeeds)."""
    with session_scope(current_app.extensions["sms_engine"]) as session:
        yield session


def settings():
    """The app's settings."""
    return current_app.config["SETTINGS"]


def log_action(session: Session, action: str, target: str | None = None, **detail: object) -> None:
    """Append an audit entry for the signed-in user, in the caller's transaction."""
    g.console_audited = True  # the console's after-request net adds no second entry
    user = session.get(StaffUser, current_user.id)
    audit.record(
        session=session, user=user, action=action, target=target,
        detail=detail or None, ip=client_ip(),
    )  # fmt: skip


def user_zone() -> ZoneInfo:
    """The signed-in user's zone, else DEFAULT_TIMEZONE."""
    name = getattr(current_user, "timezone", None) or settings().default_timezone
    try:
        return zone_named(name)
    except ValueError:
        return zone_named(settings().default_timezone)


def local(when: datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """``when`` in the user's zone (naive values are UTC); empty for None."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(user_zone()).strftime(fmt)


def shown_phone(phone: str | None) -> str:
    """The number in full for roles that need it, masked for everyone else."""
    if not phone:
        return ""
    return phone if getattr(current_user, "sees_full_numbers", False) else mask(phone)
