"""Sealing the consent log into a hash chain, and verifying it.

Protocol (why it keeps inbound fast and still catches late commits):

1. Recording consent (inbound texts, web, imports, staff) only INSERTs a ``consent_events``
   row, as before: no chain lock, no hash, nothing serialised across requests.
2. The sealer (:func:`seal_pending`, run by the worker every ``CONSENT_SEAL_SECONDS`` and by
   ``consent checkpoint``) takes one lock (a PostgreSQL advisory lock; SQLite serialises
   writers anyway), reads the chain head and appends one :class:`ConsentSeal` per event not
   yet sealed, oldest id first, each link hashing the previous one
   (:mod:`sms_service.domain.consent_hash`). Two sealers racing still cannot fork the chain:
   ``position`` and ``event_id`` are unique, and the loser's transaction fails.
3. Late commits: an id is taken when a row is inserted, but a slower transaction can commit
   after a higher id was already sealed. Each pass therefore also looks for unsealed events
   *below* the highest sealed id that occurred within ``CONSENT_SEAL_GRACE_SECONDS`` of the
   previous seal, and seals them at the end of the chain (chain order is seal order).
4. An unsealed event older than that window cannot be a late commit: it was inserted out of
   order (by hand, with a chosen id or time), and ``consent verify`` says so.

:func:`verify` walks the chain by position and recomputes every link from the events as they
are now: a changed field, a removed event or seal, or a reordering shows as the first link
that no longer matches. A checkpoint (:func:`head`), kept outside the database, also proves
that nothing was cut from the end, and that the chain up to it was not rewritten whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from sms_service.domain.consent_hash import GENESIS, canonical, link
from sms_service.models import ConsentEvent, ConsentSeal, utcnow

log = logging.getLogger(__name__)

E = ConsentEvent.__table__
S = ConsentSeal.__table__
EVENT_COLUMNS = tuple(E.c.keys())
# One key for the PostgreSQL advisory lock that lets one sealer at a time extend the chain.
SEAL_LOCK_KEY = 0x5C0A5E17
DEFAULT_GRACE = timedelta(seconds=120)
BATCH = 2000


def event_canonical(row: object) -> str:
    """The canonical text of a consent event row (an ORM object or a result row)."""
    mapping = getattr(row, "_mapping", None)
    if mapping is not None:
        return canonical({k: mapping[k] for k in EVENT_COLUMNS})
    return canonical({k: getattr(row, k) for k in EVENT_COLUMNS})


@dataclass(frozen=True)
class Head:
    """The end of the chain: how many seals, the last event sealed, its hash and time."""

    count: int
    last_event_id: int | None
    hash: str
    sealed_at: datetime | None

    def to_json(self) -> str:
        """The checkpoint text staff keep outside the database."""
        data = asdict(self)
        data["sealed_at"] = self.sealed_at.isoformat() if self.sealed_at else None
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text_: str) -> Head:
        """Read a checkpoint written by :meth:`to_json`; ValueError if it is not one."""
        try:
            data = json.loads(text_)
            sealed = data.get("sealed_at")
            return cls(
                count=int(data["count"]),
                last_event_id=None if data["last_event_id"] is None else int(data["last_event_id"]),
                hash=str(data["hash"]),
                sealed_at=datetime.fromisoformat(sealed) if sealed else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                "not a consent checkpoint (expected the JSON `consent checkpoint` prints)"
            ) from exc


def head(session: Session | Connection) -> Head:
    """The current chain head (count 0 and :data:`GENESIS` for an empty chain)."""
    row = session.execute(
        select(S.c.position, S.c.event_id, S.c.hash, S.c.sealed_at)
        .order_by(S.c.position.desc())
        .limit(1)
    ).first()
    if row is None:
        return Head(count=0, last_event_id=None, hash=GENESIS, sealed_at=None)
    return Head(
        count=row.position, last_event_id=row.event_id, hash=row.hash, sealed_at=row.sealed_at
    )


@dataclass(frozen=True)
class SealReport:
    """What one sealing pass did: events sealed, of which late commits, and the new head."""

    sealed: int
    late: int
    head: Head


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK_KEY})
    else:
        # SQLite: take the write lock before reading the head (a write that matches no
        # row). A transaction that read first could not write after another sealer
        # committed; this one waits its turn (busy_timeout) instead.
        session.execute(text("UPDATE consent_seals SET position = position WHERE 0 = 1"))


def _unsealed(alias=E):
    return ~exists().where(S.c.event_id == alias.c.id)


def seal_pending(
    *,
    session: Session,
    grace: timedelta = DEFAULT_GRACE,
    limit: int = BATCH,
    now: datetime | None = None,
) -> SealReport:
    """Seal up to ``limit`` unsealed events (late commits first, then new ones by id).

    Does not commit; call again while ``sealed == limit``. See the module docstring.
    """
    _lock(session)
    now = now or utcnow()
    top = head(session)
    max_sealed = session.execute(select(func.max(S.c.event_id))).scalar_one()
    rows: list = []
    late = 0
    if max_sealed is not None:
        cutoff = (top.sealed_at or now) - grace
        rows = list(
            session.execute(
                select(E)
                .where(E.c.id < max_sealed, E.c.occurred_at >= cutoff, _unsealed())
                .order_by(E.c.id)
                .limit(limit)
            )
        )
        late = len(rows)
    if len(rows) < limit:
        fresh = select(E).order_by(E.c.id).limit(limit - len(rows))
        if max_sealed is not None:
            fresh = fresh.where(E.c.id > max_sealed)
        rows.extend(session.execute(fresh))
    position, prev = top.count, top.hash
    seals = []
    for row in rows:
        position += 1
        digest = link(prev, position, event_canonical(row))
        seals.append(
            {
                "position": position,
                "event_id": row.id,
                "prev_hash": prev,
                "hash": digest,
                "sealed_at": now,
            }
        )
        prev = digest
    if seals:
        session.execute(S.insert(), seals)
        if late:
            log.info("sealed %d consent events that committed late", late)
    last = rows[-1].id if rows else top.last_event_id
    new_head = Head(position, last, prev, now if seals else top.sealed_at)
    return SealReport(sealed=len(seals), late=late, head=new_head)


def seal_all(engine: Engine, *, grace: timedelta = DEFAULT_GRACE, limit: int = BATCH) -> int:
    """Seal everything pending, one committed transaction per batch; the number sealed."""
    from sms_service.db import session_scope

    total = 0
    while True:
        with session_scope(engine) as session:
            report = seal_pending(session=session, grace=grace, limit=limit)
        total += report.sealed
        if report.sealed < limit:
            return total


@dataclass(frozen=True)
class Verdict:
    """The result of :func:`verify`. ``ok`` False names the first bad event in ``problem``
    (and its id in ``event_id`` when there is one)."""

    ok: bool
    count: int
    head: Head
    unsealed: int = 0
    problem: str | None = None
    event_id: int | None = None

    def __str__(self) -> str:
        if not self.ok:
            return f"FAILED: {self.problem}"
        pending = f"; {self.unsealed} recent events not sealed yet" if self.unsealed else ""
        return (
            f"ok: {self.count} events verified, head {self.head.hash} "
            f"(event {self.head.last_event_id}){pending}"
        )


def _walk(conn: Connection) -> Iterator:
    query = (
        select(S.c.position, S.c.event_id.label("seal_event_id"), S.c.prev_hash, S.c.hash,
               S.c.sealed_at, *E.c)
        .select_from(S.outerjoin(E, E.c.id == S.c.event_id))
        .order_by(S.c.position)
    )  # fmt: skip
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
    try:
        for partition in result.partitions():
            yield from partition
    finally:
        result.close()  # a verdict found early leaves no server-side cursor open


def verify(
    engine: Engine, *, checkpoint: Head | None = None, grace: timedelta = DEFAULT_GRACE
) -> Verdict:
    """Walk the whole chain and recompute every link; read-only.

    Fails on the first seal whose event is gone (removed) or whose fields no longer hash to
    it (changed), a gap or a broken link in the chain (seals removed or reordered), an
    unsealed event older than the late-commit window (inserted out of order), and, with a
    ``checkpoint``, a chain shorter than it (cut from the end) or different at its head.
    """
    prev, position, last_id, sealed_at = GENESIS, 0, None, None

    def fail(problem: str, event_id: int | None) -> Verdict:
        return Verdict(
            ok=False, count=position, head=Head(position, last_id, prev, sealed_at),
            problem=problem, event_id=event_id,
        )  # fmt: skip

    with engine.connect() as conn, contextlib.closing(_walk(conn)) as rows:
        for row in rows:
            event_id = row.seal_event_id
            if row.position != position + 1:
                return fail(
                    f"seals {position + 1}..{row.position - 1} are missing: the events before "
                    f"event {event_id} were removed", event_id,
                )  # fmt: skip
            if row.prev_hash != prev:
                return fail(f"event {event_id}: the chain before it was changed", event_id)
            if row.id is None:
                return fail(f"event {event_id} was removed", event_id)
            digest = link(prev, row.position, event_canonical(row))
            if digest != row.hash:
                return fail(f"event {event_id} was changed", event_id)
            position, prev, last_id, sealed_at = row.position, digest, event_id, row.sealed_at
            if checkpoint is not None and position == checkpoint.count:
                if digest != checkpoint.hash or event_id != checkpoint.last_event_id:
                    return fail(
                        f"the chain up to the checkpoint was rewritten (event {event_id} at "
                        f"position {position} does not match the checkpoint)", event_id,
                    )  # fmt: skip
        if checkpoint is not None and position < checkpoint.count:
            return fail(
                f"{checkpoint.count - position} events were cut from the end: the checkpoint's "
                f"last event {checkpoint.last_event_id} (position {checkpoint.count}) is gone",
                checkpoint.last_event_id,
            )
        unsealed = conn.execute(select(func.count()).select_from(E).where(_unsealed())).scalar_one()
        max_sealed = conn.execute(select(func.max(S.c.event_id))).scalar_one()
        if unsealed and max_sealed is not None and sealed_at is not None:
            # Below the highest sealed id and older than the late-commit window: the sealer
            # will never take it, so it was not a late commit.
            stray = conn.execute(
                select(func.min(E.c.id)).where(
                    E.c.id < max_sealed, E.c.occurred_at < sealed_at - grace, _unsealed()
                )
            ).scalar_one()
            if stray is not None:
                return fail(f"event {stray} was inserted out of order (never sealed)", stray)
    return Verdict(
        ok=True,
        count=position,
        head=Head(position, last_id, prev, sealed_at),
        unsealed=unsealed,
    )


def seals_for(session: Session, event_ids: list[int]) -> dict[int, ConsentSeal]:
    """The seals of the given events, by event id (events not sealed yet are absent)."""
    if not event_ids:
        return {}
    rows = session.execute(select(ConsentSeal).where(ConsentSeal.event_id.in_(event_ids))).scalars()
    return {seal.event_id: seal for seal in rows}
