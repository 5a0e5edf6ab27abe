"""Which numbers have a possible opt-out waiting for staff: the review hold.

A possible opt-out (a text that may mean STOP, or a carrier block that may be one) is a
``possible_opt_out`` consent event; staff close it with a ``possible_opt_out_resolved``
event carrying the same ``message_sid`` (:mod:`sms_service.services.consent`). While one
is open, the number gets no broadcasts (the safe reading of the FCC's 10-business-day
rule: nothing is sent that a revocation might have covered) and the keyword engine sends
it no fallback. The hold is derived from the append-only log on every read, so there is
no flag to forget to clear: the staff decision alone lifts it.

Works on a Session or a Connection; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, select
from sqlalchemy.orm import aliased

from sms_service.models import ConsentEvent, Subscriber

POSSIBLE = "possible_opt_out"
RESOLVED = "possible_opt_out_resolved"


def _open_reviews():
    """``possible_opt_out`` events with no resolution (the outer join finds none)."""
    resolution = aliased(ConsentEvent)
    return (
        select(ConsentEvent.phone)
        .outerjoin(
            resolution,
            and_(
                resolution.message_sid == ConsentEvent.message_sid,
                resolution.event == RESOLVED,
            ),
        )
        .where(ConsentEvent.event == POSSIBLE, resolution.id.is_(None))
    )


def phones_under_review(db, phones: Iterable[str]) -> set[str]:
    """The numbers among ``phones`` with a possible opt-out staff have not decided yet."""
    wanted = sorted(set(phones))
    if not wanted:
        return set()
    query = _open_reviews().where(ConsentEvent.phone.in_(wanted)).distinct()
    return set(db.execute(query).scalars())


def review_open(phone):
    """A SQL condition, true while a possible opt-out from ``phone`` waits for staff (for a
    caller that reads it in a statement of its own: the inbound hot path)."""
    return _open_reviews().where(ConsentEvent.phone == phone).exists()


def is_under_review(db, phone: str) -> bool:
    """True while a possible opt-out from ``phone`` waits for staff."""
    return bool(phones_under_review(db, [phone]))


def subscribers_under_review(db, subscriber_ids: Iterable[int]) -> set[int]:
    """The subscriber ids among ``subscriber_ids`` whose number is under review (one query,
    by the consent log's phone index: a batch of the sender asks this)."""
    wanted = sorted(set(subscriber_ids))
    if not wanted:
        return set()
    subs = Subscriber.__table__
    query = (
        _open_reviews()
        .join(subs, subs.c.phone == ConsentEvent.phone)
        .where(subs.c.id.in_(wanted))
        .with_only_columns(subs.c.id)
        .distinct()
    )
    return set(db.execute(query).scalars())
