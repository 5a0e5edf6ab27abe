"""Campaign administration (the CLI and the console). Callers own the transaction."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlmodel import Session

from sms_service.domain.keywords import KEYWORD_SHAPE, RESERVED_KEYWORDS
from sms_service.errors import BadRequest, NotFound
from sms_service.models import Campaign, Signature, Subscriber


def validate_keyword(keyword: str) -> str:
    """Upper-case ``keyword``; refuse reserved words (STOP, HELP, SIGN...) and odd shapes."""
    key = (keyword or "").strip().upper()
    if not KEYWORD_SHAPE.fullmatch(key):
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


def get_campaign(*, session: Session, campaign_id: int) -> Campaign:
    """The campaign with ``campaign_id``; NotFound otherwise."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    return campaign


def update_campaign(*, session: Session, campaign_id: int, title: str, text: str) -> Campaign:
    """Change a campaign's title and petition text (the keyword stays: supporters use it)."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    if not title.strip():
        raise BadRequest("title must not be empty")
    campaign.title = title.strip()[:200]
    campaign.petition_text = text
    session.add(campaign)
    session.flush()
    return campaign


def set_active(*, session: Session, campaign_id: int, active: bool) -> Campaign:
    """Open or close a campaign to new signatures (a closed one stops being SIGN's default)."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    campaign.active = active
    if not active:
        campaign.sign_default = False
    session.add(campaign)
    session.flush()
    return campaign


def set_sign_default(*, session: Session, campaign_id: int) -> Campaign:
    """Make this active campaign the one a plain SIGN signs (and no other)."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    if not campaign.active:
        raise BadRequest(f"{campaign.keyword} is inactive; activate it first")
    session.execute(
        update(Campaign).where(Campaign.sign_default.is_(True)).values(sign_default=False)
    )
    session.flush()
    campaign.sign_default = True
    session.add(campaign)
    session.flush()
    return campaign


def signature_counts(*, session: Session) -> dict[int, int]:
    """Signatures per campaign id (one grouped query)."""
    rows = session.execute(
        select(Signature.campaign_id, func.count()).group_by(Signature.campaign_id)
    ).all()
    return dict(rows)


def latest_signers(*, session: Session, campaign_id: int, limit: int = 20) -> list[tuple]:
    """The newest signatures: (signed_at, name, phone, source), newest first."""
    return list(
        session.execute(
            select(Signature.signed_at, Signature.name, Subscriber.phone, Signature.source)
            .join(Subscriber, Subscriber.id == Signature.subscriber_id)
            .where(Signature.campaign_id == campaign_id)
            .order_by(Signature.signed_at.desc(), Signature.id.desc())
            .limit(limit)
        ).all()
    )
