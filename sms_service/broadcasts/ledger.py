"""Writing what became of deliveries, guarded by the attempt that claimed them.

Every outcome is an ``UPDATE … WHERE status = 'sending' AND attempt_id = :attempt``, run as
one ``executemany`` per batch: a row that someone else settled meanwhile (a recoverer
after the lease) is left alone, so two writers can never both record a send.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, bindparam, update
from sqlalchemy.engine import Connection

from sms_service.models import BroadcastDelivery, DeliveryStatus

delivery_table = BroadcastDelivery.__table__


def settle(
    subscriber_id: int,
    status: str,
    reason: str | None,
    now: datetime | None,
    *,
    twilio_sid: str | None = None,
    segments: int | None = None,
    sent_at: datetime | None = None,
    not_before: datetime | None = None,
    code: int | None = None,
) -> dict:
    """One row's outcome, as the parameters :func:`write_outcomes` takes. ``now`` None
    keeps ``updated_at`` (an attempt whose answer was lost stays as it was claimed)."""
    return dict(
        b_sub=subscriber_id,
        b_status=str(status),
        b_reason=reason,
        b_sid=twilio_sid,
        b_segments=segments,
        b_sent_at=sent_at,
        b_not_before=not_before,
        b_code=code,
        b_now=now,
    )


def write_outcomes(conn: Connection, run_id: int, attempt: str, rows: list[dict]) -> None:
    """Record outcomes, guarded: only rows still ``sending`` under ``attempt`` change."""
    if not rows:
        return
    keep_time = [r for r in rows if r["b_now"] is None]  # unknown: keep the attempt time
    timed = [r for r in rows if r["b_now"] is not None]
    guard = and_(
        delivery_table.c.run_id == run_id,
        delivery_table.c.subscriber_id == bindparam("b_sub"),
        delivery_table.c.attempt_id == attempt,
        delivery_table.c.status == DeliveryStatus.SENDING,
    )
    values = dict(
        status=bindparam("b_status"),
        reason=bindparam("b_reason"),
        sid=bindparam("b_sid"),
        segments=bindparam("b_segments"),
        sent_at=bindparam("b_sent_at", type_=delivery_table.c.sent_at.type),
        not_before=bindparam("b_not_before", type_=delivery_table.c.not_before.type),
        error_code=bindparam("b_code"),
    )
    if timed:
        conn.execute(
            update(delivery_table)
            .where(guard)
            .values(
                **values, updated_at=bindparam("b_now", type_=delivery_table.c.updated_at.type)
            ),
            timed,
        )
    if keep_time:
        conn.execute(update(delivery_table).where(guard).values(**values), keep_time)
