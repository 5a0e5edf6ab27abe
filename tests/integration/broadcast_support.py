"""Builders shared by the broadcast tests: subscribers in bulk, the simulator's view."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from sms_service import broadcasts
from sms_service.db import session_scope
from sms_service.domain.audience import parse_audience
from sms_service.models import (
    BroadcastDelivery,
    BroadcastRun,
    Campaign,
    Signature,
    Subscriber,
    SubscriberTag,
    utcnow,
)
from tests.support import wait_for  # noqa: F401 - the broadcast tests import it here


def phone(i: int) -> str:
    """A valid Washington DC number (no state quiet-hours rule applies)."""
    return f"+1202{2_000_000 + i:07d}"


def add_subscribers(
    engine: Engine,
    count: int,
    *,
    start: int = 0,
    status: str = "subscribed",
    timezone: str | None = None,
    tag: str | None = None,
) -> list[int]:
    """Insert ``count`` subscribers (numbers ``phone(start)``…); their ids, in order."""
    now = utcnow()
    rows = [
        dict(phone=phone(i), status=status, timezone=timezone, created_at=now, updated_at=now)
        for i in range(start, start + count)
    ]
    table = Subscriber.__table__
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
        ids = list(
            conn.execute(
                select(table.c.id).where(table.c.phone.in_([r["phone"] for r in rows]))
            ).scalars()
        )
        if tag:
            conn.execute(
                insert(SubscriberTag.__table__), [dict(subscriber_id=i, tag=tag) for i in ids]
            )
    return sorted(ids)


def add_campaign(engine: Engine, keyword: str, signer_ids: list[int]) -> int:
    """A campaign signed by ``signer_ids``; its id."""
    with engine.begin() as conn:
        campaign_id = conn.execute(
            insert(Campaign.__table__)
            .values(
                keyword=keyword,
                title=keyword.title(),
                petition_text="",
                active=True,
                created_at=utcnow(),
            )  # fmt: skip
            .returning(Campaign.__table__.c.id)
        ).scalar_one()
        if signer_ids:
            conn.execute(
                insert(Signature.__table__),
                [
                    dict(
                        campaign_id=campaign_id, subscriber_id=i, source="sms", signed_at=utcnow()
                    )  # fmt: skip
                    for i in signer_ids
                ],
            )
    return campaign_id


def sim_messages(sim_url: str, to: str | None = None) -> list[dict]:
    """Every message the simulator accepted (newest first), optionally to one number."""
    params = {"to": to} if to else {}
    response = requests.get(f"{sim_url}/sim/messages", params=params, timeout=10)
    response.raise_for_status()
    return response.json()["messages"]


def texts_per_number(sim_url: str) -> Counter:
    """How many texts each number got from the simulator's point of view."""
    return Counter(message["to"] for message in sim_messages(sim_url))


def clear_sim(sim_url: str) -> None:
    """Forget every message, opt-out and preset outcome the simulator holds."""
    for path in ("/sim/messages", "/sim/optouts", "/sim/outcomes"):
        requests.delete(f"{sim_url}{path}", timeout=10).raise_for_status()


def zone_at_local_hour(hour: int) -> str:
    """An ``Etc/GMT±N`` zone where the local hour is now ``hour`` (or within an hour)."""
    offset = (hour - datetime.now(UTC).hour + 12) % 24 - 12
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def delivery_counts(engine: Engine, run_id: int | None = None) -> Counter:
    """Deliveries per (status, reason), for one run or all."""
    d = BroadcastDelivery.__table__
    query = select(d.c.status, d.c.reason)
    if run_id is not None:
        query = query.where(d.c.run_id == run_id)
    with engine.connect() as conn:
        return Counter(tuple(row) for row in conn.execute(query))


def runs_of(engine: Engine, broadcast_id: int) -> list:
    """The broadcast's runs, in occurrence order."""
    r = BroadcastRun.__table__
    with engine.connect() as conn:
        return conn.execute(
            select(r).where(r.c.broadcast_id == broadcast_id).order_by(r.c.occurrence_at)
        ).all()


def schedule_broadcast(
    engine: Engine,
    audience: str = "all",
    *,
    body: str = "Rally at city hall, 6pm",
    timezone: str = "America/New_York",
    **options: Any,
) -> tuple[int, BroadcastRun]:
    """Create and schedule a broadcast, as ``sms-service broadcast create`` does; its id and
    first run. ``options`` go to :func:`create_broadcast` (``send_at``, ``recurrence``...)."""
    with session_scope(engine) as session:
        created = broadcasts.create_broadcast(
            session=session, body=body, audience=parse_audience(audience), timezone=timezone,
            **options,
        )  # fmt: skip
        run = broadcasts.schedule_broadcast(session=session, broadcast_id=created.id)
    return created.id, run
