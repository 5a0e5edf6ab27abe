"""How recipients answered a broadcast: the opt-out rate after it.

An opt-out counts against a run when the number opted out after its text was sent (the
first opt-out after a broadcast is, as a rule, an answer to it). Read through the consent
log's phone index, once per sent delivery.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select
from sqlmodel import Session

from sms_service.models import BroadcastDelivery, ConsentEvent, Subscriber


def opt_outs_after(*, session: Session, run_id: int) -> tuple[int, int]:
    """(recipients sent to, how many of them opted out after their text)."""
    d = BroadcastDelivery.__table__
    sent = session.execute(
        select(func.count()).where(d.c.run_id == run_id, d.c.sent_at.is_not(None))
    ).scalar_one()
    if not sent:
        return 0, 0
    s, e = Subscriber.__table__, ConsentEvent.__table__
    opted = session.execute(
        select(func.count(func.distinct(d.c.subscriber_id)))
        .select_from(d)
        .join(s, s.c.id == d.c.subscriber_id)
        .join(
            e,
            and_(
                e.c.phone == s.c.phone,
                e.c.event == "opt_out",
                e.c.occurred_at >= d.c.sent_at,
            ),
        )
        .where(d.c.run_id == run_id, d.c.sent_at.is_not(None))
    ).scalar_one()
    return sent, opted
