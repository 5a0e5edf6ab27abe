"""Campaign administration (used by the CLI). Callers own the transaction."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlmodel import Session

from sms_service.domain.keywords import RESERVED_KEYWORDS
from sms_service.errors import BadRequest
from sms_service.models import Campaign

_KEYWORD = re.compile(r"^[A-Z0-9]{2,20}$")


def validate_keyword(keyword: str) -> str:
    """Upper-case ``keyword``; refuse reserved words (STOP, HELP, SIGN...) and odd shapes."""
    key = (keyword or "").strip().upper()
    if not _KEYWORD.match(key):
        raise BadRequest("keyword must be 2-20 letters or digits, e.g. HK64")
    if key in RESERVED_KEYWORDS:
        raise BadRequest(f"{key} is a reserved keyword (opt-out, help or join words)")
    return key


def create_campaign(*, session: Session, keyword: str, title: str, text: str = "") -> Campaign:
    """Add an active campaign; the keyword must be new."""
    key = validate_keyword(keyword)
    if not title.strip():
        raise BadRequest("title must not be empty")
    if session.execute(select(Campaign).where(Campaign.keyword == key)).first():
        raise BadRequest(f"a campaign with keyword {key} already exists")
    campaign = Campaign(keyword=key, title=title.strip(), petition_text=text, active=True)
    session.add(campaign)
    session.flush()
    return campaign


def list_campaigns(*, session: Session) -> list[Campaign]:
    """All campaigns, newest first."""
    return list(session.execute(select(Campaign).order_by(Campaign.id.desc())).scalars())
