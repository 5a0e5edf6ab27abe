"""How recipients answered a broadcast: the opt-outs after it.

An opt-out counts against a run when the number opted out after its text was sent (the
first opt-out after a broadcast is, as a rule, an answer to it). The query starts from
the consent log's opt-outs since the run started (its time index: a few thousand rows a
day) and looks each up in the run's deliveries by primary key, so it costs the same for a
run of a hundred texts or of a million.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from sms_service.broadcasts.figures import SETTLE, folded, kept, settled
from sms_service.models import BroadcastDelivery, BroadcastRun, ConsentEvent, Subscriber

OPT_OUT_WINDOW = SETTLE  # a run's figures are kept once its window has closed


def run_opt_outs(*, session: Session, run: BroadcastRun) -> int:
    """How many of the run's recipients opted out after their text and within
    ``OPT_OUT_WINDOW`` of the run's end; folded as they come once the run has started
    (:func:`~sms_service.broadcasts.figures.folded`), kept once that window has closed."""
    ended = run.finished_at or run.cancelled_at
    until = ended + OPT_OUT_WINDOW if ended else None
    if run.started_at is not None and not settled(run):
        return folded(session, run, "opt_outs", lambda start, end: {"n": opt_outs_after(
            session=session, run_id=run.id, since=run.started_at, until=until,
            start=start, end=end,
        )})["n"]  # fmt: skip
    return kept(
        session, run, "opt_outs",
        lambda: opt_outs_after(session=session, run_id=run.id, since=run.started_at, until=until),
    )  # fmt: skip


def opt_outs_after(
    *,
    session: Session,
    run_id: int,
    since: datetime | None,
    until: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> int:
    """How many of the run's recipients opted out after their text (``since``: when the
    run started sending, None when it has not; ``until``: opt-outs from then on do not
    count).

    ``start`` and ``end`` count only the recipients whose first such opt-out was recorded
    in ``[start, end)``, so the counts of consecutive stretches add up to the whole (a
    number that opted out, joined again and opted out once more counts once)."""
    if since is None:
        return 0
    d, s, e = BroadcastDelivery.__table__, Subscriber.__table__, ConsentEvent.__table__
    counts_after = [e.c.occurred_at >= since, e.c.occurred_at >= d.c.sent_at]
    window = [e.c.occurred_at < t for t in (until, end) if t is not None]
    if start is not None:
        window.append(e.c.occurred_at >= start)
        earlier = aliased(ConsentEvent.__table__)
        window.append(
            ~select(earlier.c.id)
            .where(
                earlier.c.phone == e.c.phone,
                earlier.c.event == "opt_out",
                earlier.c.occurred_at >= since,
                earlier.c.occurred_at >= d.c.sent_at,
                earlier.c.occurred_at < start,
            )
            .exists()
        )
    return session.execute(
        select(func.count(func.distinct(s.c.id)))
        .select_from(e)
        .join(s, s.c.phone == e.c.phone)
        .join(d, and_(d.c.run_id == run_id, d.c.subscriber_id == s.c.id))
        .where(e.c.event == "opt_out", d.c.sent_at.is_not(None), *counts_after, *window)
    ).scalar_one()
