"""Subscribers as staff browse them: search, one subscriber's card, tags.

Search uses indexes only: an exact match on the E.164 number (unique index) or a prefix of
the name (``lower(name)`` index, ``LIKE 'ada%'``), keyset-paginated on the id, so a page
costs the same at a million subscribers. Callers own the transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlmodel import Session

from sms_service.db import dialect_insert
from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.errors import BadRequest, NotFound
from sms_service.models import Campaign, Signature, Subscriber, SubscriberTag

PAGE = 50
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class SubscriberPage:
    """One page of subscribers, newest first, and the id to ask for the next page."""

    rows: list[Subscriber]
    before: int | None


def _looks_like_number(query: str) -> bool:
    return bool(re.fullmatch(r"[+(\d][\d\s().-]{5,}", query))


def search(*, session: Session, query: str = "", before: int | None = None) -> SubscriberPage:
    """Subscribers matching ``query`` (a number, or the start of a name; empty: everyone)."""
    stmt = select(Subscriber).order_by(Subscriber.id.desc()).limit(PAGE + 1)
    if query and _looks_like_number(query):
        try:
            stmt = stmt.where(Subscriber.phone == to_e164(query))
        except InvalidPhoneNumber:
            return SubscriberPage([], None)
    elif query:
        prefix = query.lower().replace("\\", "").replace("%", "").replace("_", "")
        stmt = stmt.where(func.lower(Subscriber.name).like(prefix + "%"))
    if before is not None:
        stmt = stmt.where(Subscriber.id < before)
    rows = list(session.execute(stmt).scalars())
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return SubscriberPage(rows, rows[-1].id if more and rows else None)


@dataclass(frozen=True)
class SubscriberCard:
    """A subscriber with tags and signed campaigns (keyword, title, signed_at)."""

    subscriber: Subscriber
    tags: list[str]
    signatures: list[tuple]


def card(*, session: Session, subscriber_id: int) -> SubscriberCard:
    """One subscriber's card; NotFound when there is no such id."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound(f"no subscriber {subscriber_id}")
    tags = list(
        session.execute(
            select(SubscriberTag.tag)
            .where(SubscriberTag.subscriber_id == subscriber_id)
            .order_by(SubscriberTag.tag)
        ).scalars()
    )
    signatures = list(
        session.execute(
            select(Campaign.keyword, Campaign.title, Signature.signed_at)
            .join(Campaign, Campaign.id == Signature.campaign_id)
            .where(Signature.subscriber_id == subscriber_id)
            .order_by(Signature.signed_at.desc())
        ).all()
    )
    return SubscriberCard(subscriber, tags, signatures)


def add_tag(*, session: Session, subscriber_id: int, tag: str) -> str:
    """Tag a subscriber (lower-case letters, digits, - and _); adding it twice is a no-op."""
    name = (tag or "").strip().lower()
    if not _TAG.match(name):
        raise BadRequest("a tag is 1-64 lower-case letters, digits, - or _")
    if session.get(Subscriber, subscriber_id) is None:
        raise NotFound(f"no subscriber {subscriber_id}")
    insert = dialect_insert(session)
    session.execute(
        insert(SubscriberTag.__table__)
        .values(subscriber_id=subscriber_id, tag=name)
        .on_conflict_do_nothing()
    )
    return name


def remove_tag(*, session: Session, subscriber_id: int, tag: str) -> None:
    """Remove a tag from a subscriber (nothing happens when it is not there)."""
    session.execute(
        delete(SubscriberTag).where(
            SubscriberTag.subscriber_id == subscriber_id, SubscriberTag.tag == tag
        )
    )
