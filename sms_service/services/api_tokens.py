"""Bearer tokens for the JSON API: created and revoked from the CLI, checked per request.

A token is shown once, at creation; the database keeps only its SHA-256. The token is 32
random bytes, so a fast hash suffices (a slow password hash protects guessable secrets;
there is nothing here to guess) and lets every request be checked by one indexed lookup.
Nothing here commits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from sms_service.errors import BadRequest, NotFound
from sms_service.models import ApiToken, utcnow

TOKEN_PREFIX = "sms_"
SCOPE_WRITE = "signatures:write"
SCOPE_READ = "signatures:read"
SCOPES = (SCOPE_WRITE, SCOPE_READ)
# What each scope may do: write includes read, so a site that posts can also show counts.
GRANTS = {SCOPE_WRITE: frozenset({SCOPE_WRITE, SCOPE_READ}), SCOPE_READ: frozenset({SCOPE_READ})}
# ``last_used_at`` is refreshed at most this often, so reads do not each cost a write.
TOUCH_EVERY = timedelta(minutes=1)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    """A token just created: ``secret`` is shown once and never stored."""

    id: int
    name: str
    scope: str
    secret: str


def create_token(*, session: Session, name: str, scope: str) -> NewToken:
    """Create a token named ``name`` with ``scope``; returns the secret once."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise BadRequest("give the token a name of 1-100 characters (--name)")
    if scope not in SCOPES:
        raise BadRequest(f"scope must be one of {', '.join(SCOPES)}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, scope=scope, token_hash=hash_token(secret), prefix=secret[:10])
    session.add(row)
    session.flush()
    return NewToken(row.id, name, scope, secret)


def list_tokens(*, session: Session) -> list[ApiToken]:
    """Every token, revoked ones included, oldest first."""
    return list(session.execute(select(ApiToken).order_by(ApiToken.id)).scalars())


def revoke_token(*, session: Session, token_id: int) -> ApiToken:
    """Revoke a token by id; revoking twice is harmless."""
    row = session.get(ApiToken, token_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
    return row


def authenticate(
    *, session: Session, token: str, scope: str, now: datetime | None = None
) -> ApiToken | None:
    """The live token granting ``scope``, or None (unknown, revoked or not allowed)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None or scope not in GRANTS.get(row.scope, ()):
        return None
    now = now or utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        row.last_used_at = now
        session.add(row)
    return row
