"""A finished run's figures, counted once and kept.

Grouping a run's deliveries costs a scan of them (a run to a million subscribers: a
million rows), and joining them with the carrier's reports and the consent log costs more.
Once a run is over with no delivery open, its delivery states no longer change; once
``SETTLE`` has passed since it ended, the carrier's reports have arrived and its opt-out
window (:data:`sms_service.broadcasts.outcomes.OPT_OUT_WINDOW`) has closed. From then on
each set of figures is kept in ``broadcast_run_figures`` and read as one row. Until then
the delivery states are counted live (a run still sending: every refresh groups its
deliveries), and the carrier's reports and the opt-outs are folded (:func:`folded`): each
view counts what was recorded since the previous one. Known limit: a carrier report
arriving more than a day after the run ended is not added.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from sms_service.db import dialect_insert
from sms_service.models import (
    BroadcastDelivery,
    BroadcastRun,
    DeliveryStatus,
    RunFigures,
    RunStatus,
    utcnow,
)

SETTLE = timedelta(hours=24)
OVER = (RunStatus.SENT, RunStatus.CANCELLED, RunStatus.FAILED)


def settled(run: BroadcastRun, after: timedelta = SETTLE, now: datetime | None = None) -> bool:
    """True when the run ended at least ``after`` ago."""
    ended = run.finished_at or run.cancelled_at
    if run.status not in OVER or ended is None:
        return False
    if ended.tzinfo is None:
        ended = ended.replace(tzinfo=UTC)
    return (now or utcnow()) >= ended + after


def kept(
    session: Session,
    run: BroadcastRun,
    name: str,
    compute: Callable[[], Any],
    *,
    after: timedelta = SETTLE,
    final: Callable[[Any], bool] = lambda value: True,
) -> Any:
    """The run's ``name`` figures (JSON-able): kept ones once the run has been over for
    ``after``, else ``compute()``; such a run's fresh figures are kept when ``final(value)``
    agrees. Writes in the caller's transaction; two pages keeping one row at once are fine."""
    if not settled(run, after):
        return compute()
    found = session.execute(
        select(RunFigures.value).where(RunFigures.run_id == run.id, RunFigures.name == name)
    ).scalar_one_or_none()
    if found is not None:
        return json.loads(found)
    value = compute()
    if final(value):
        session.execute(
            dialect_insert(session)(RunFigures.__table__)
            .values(run_id=run.id, name=name, value=json.dumps(value), kept_at=utcnow())
            .on_conflict_do_nothing()
        )
    return value


# Reports and opt-outs older than this are folded into the kept partial sums; younger ones
# are counted on each view. A status callback or a STOP is committed within seconds of the
# time it records (its transaction may wait for a sending batch's row locks), and the
# clocks of the web and worker hosts agree within much less. One committed later still is
# missing from the page until the figures settle and are counted whole.
FOLD_LAG = timedelta(seconds=30)
Counts = dict[str, int]


def _add(a: Counts, b: Counts) -> Counts:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def oldest_open_attempt(session: Session, run_id: int) -> datetime | None:
    """When the run's oldest delivery still ``sending`` was claimed (None: none is).

    A report or an opt-out can only be matched to a delivery once its sid and sent time
    are committed, which happens when its attempt is settled: by the batch that sent it,
    or by the recoverer after the lease for an answer that was lost. Such an attempt was
    claimed before its text went out, so anything recorded before this time may still
    find its delivery later; folding stops here (``ix_broadcast_deliveries_sending``)."""
    d = BroadcastDelivery.__table__
    return session.execute(
        select(func.min(d.c.attempt_started_at)).where(
            d.c.run_id == run_id, d.c.status == DeliveryStatus.SENDING
        )
    ).scalar_one()


def folded(
    session: Session,
    run: BroadcastRun,
    name: str,
    count: Callable[[datetime | None, datetime | None], Counts],
    *,
    lag: timedelta | None = None,
    now: datetime | None = None,
) -> Counts:
    """A started run's ``name`` counts before they settle, without counting from the start
    on each view. ``count(start, end)`` counts what happened in ``[start, end)`` (None:
    open-ended), so that the counts of consecutive windows add up to the whole: what is
    older than ``lag`` and than the run's oldest open attempt (:func:`oldest_open_attempt`)
    is kept as ``name~`` with the time it runs to, and each view counts only what came
    since. The settled figures are counted whole once more (:func:`kept`). Two views
    folding at once each write a consistent pair; the later one stays."""
    lag = FOLD_LAG if lag is None else lag
    upto = (now or utcnow()) - lag
    pending = oldest_open_attempt(session, run.id)
    if pending is not None:
        if pending.tzinfo is None:
            pending = pending.replace(tzinfo=UTC)
        upto = min(upto, pending - lag)
    key = f"{name}~"
    found = session.execute(
        select(RunFigures.value).where(RunFigures.run_id == run.id, RunFigures.name == key)
    ).scalar_one_or_none()
    through, total = None, {}
    if found is not None:
        data = json.loads(found)
        through, total = datetime.fromisoformat(data["through"]), data["counts"]
    if through is None or upto > through:
        total = _add(total, count(through, upto))
        value = json.dumps({"through": upto.isoformat(), "counts": total})
        insert = dialect_insert(session)(RunFigures.__table__).values(
            run_id=run.id, name=key, value=value, kept_at=utcnow()
        )
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["run_id", "name"], set_={"value": value, "kept_at": utcnow()}
            )
        )
        through = upto
    return _add(total, count(through, None))
