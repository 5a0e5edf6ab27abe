"""Apply a keyword decision to the database: the transaction behind ``POST /sms/inbound``.

Receiving (the webhook view), deciding (:mod:`sms_service.domain.keywords`) and storing
(this module) are separate parts. Nothing here commits: the caller's transaction holds the
inbound message, the status change, the signature and the consent events together.

Races are settled by the database, in this order:

1. The sender's subscriber row is locked (``SELECT … FOR UPDATE``), so two texts from one
   number are decided one after the other, each on what the other committed: the final
   status follows commit order. A Twilio retry racing the first delivery is also a text
   from the same number, so it waits here too.
2. The message is then *claimed*, with the decision already in it: ``INSERT … ON CONFLICT
   (message_sid) DO NOTHING``. Nothing has been written before it, so when the MessageSid
   is known (a retry; ON CONFLICT waits for a concurrent holder to commit) the stored reply
   is answered and nothing is applied twice. (On SQLite this first write takes the
   database's single write lock, so the rest of the transaction runs alone.)
3. A brand-new number has no row to lock. If the decision needs one, it is created with
   ``INSERT … ON CONFLICT (phone) DO NOTHING``; when a concurrent text (or a status callback)
   created it first, that insert waits for it to commit, and the text is decided again on
   the row it left (and its claimed message updated with the new decision).

Whatever still conflicts (a unique violation elsewhere, a deadlock) aborts the transaction,
which the caller runs again (:func:`sms_service.db.run_transaction`).

Cost: this runs for every text of a TV call-to-action, so it talks to the database in few
round trips of SQLAlchemy Core statements built once (no ORM unit of work): on PostgreSQL a
JOIN from a new number is BEGIN, one read (the locked subscriber row and the campaign
catalogue's fingerprint, see :func:`catalogue`), three inserts (message, subscriber, consent
event) and COMMIT. The catalogue itself is cached per process and re-read only when the
fingerprint (every campaign row's id and ``xmin``, which any insert, update or delete
changes) differs, so a campaign created or closed from the CLI or another worker is seen by
the very next text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import (
    Row,
    Text,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from sms_service.domain import keywords
from sms_service.domain.keywords import ConsentKind, Decision, Status
from sms_service.domain.reach import Reach, refuse_unreachable
from sms_service.domain.replies import Program
from sms_service.models import Campaign, ConsentEvent, InboundMessage, Signature, Subscriber
from sms_service.services import petition
from sms_service.services.reviews import review_open

MESSAGES = InboundMessage.__table__
SUBSCRIBERS = Subscriber.__table__
SIGNATURES = Signature.__table__
CAMPAIGNS = Campaign.__table__
EVENTS = ConsentEvent.__table__
KNOWN_STATUSES = frozenset(s.value for s in Status)


@dataclass(frozen=True)
class InboundSms:
    """One inbound text as Twilio posted it, phone numbers already normalised."""

    message_sid: str
    from_number: str
    to_number: str
    body: str
    received_at: datetime
    account_sid: str | None = None
    num_media: int = 0
    opt_out_type: str | None = None


@dataclass(frozen=True)
class InboundResult:
    """What the webhook answers: the reply (or None) and whether this was a retry."""

    reply: str | None
    intent: str
    duplicate: bool = False


# The intent answered for a retry whose first delivery left no row to read (it cannot
# happen: ON CONFLICT waits for that row's commit). No stored message ever holds it:
# a message is inserted with its decision.
CLAIMED = "received"


def find_processed(session: Session, message_sid: str) -> InboundResult | None:
    """The stored outcome of a MessageSid already handled (a Twilio retry), if any."""
    row = session.connection().execute(_STORED_REPLY, {"message_sid": message_sid}).one_or_none()
    if row is None:
        return None
    return InboundResult(reply=row.reply, intent=row.intent, duplicate=True)


def claim_message(session: Session, sms: InboundSms, decision: Decision) -> int | None:
    """Insert the inbound message with its decision unless its MessageSid is known; its id,
    or None for a retry. Waits, in PostgreSQL, for a concurrent transaction holding the
    same MessageSid."""
    conn = session.connection()
    values = {
        "message_sid": sms.message_sid, "account_sid": sms.account_sid,
        "from_number": sms.from_number, "to_number": sms.to_number, "body": sms.body,
        "num_media": sms.num_media, "opt_out_type": sms.opt_out_type,
        "intent": decision.intent.value, "reply": decision.reply, "received_at": sms.received_at,
    }  # fmt: skip
    rows = _run(conn, _STATEMENTS[conn.dialect.name].claim, values)
    return rows[0][0] if rows else None


def load_catalogue(session: Session) -> keywords.Catalogue:
    """Active campaigns by keyword; SIGN signs the one chosen as default (``sign_default``),
    else the most recently created active one."""
    rows = session.connection().execute(_ACTIVE_CAMPAIGNS)
    campaigns = [keywords.Campaign(c.id, c.keyword, c.title) for c in rows]
    return keywords.Catalogue(
        by_keyword={c.keyword.upper(): c for c in campaigns},
        default=campaigns[0] if campaigns else None,
    )


# One (fingerprint, catalogue) per database, replaced when the fingerprint changes.
_catalogues: dict[str, tuple[str, keywords.Catalogue]] = {}


def catalogue(session: Session, fingerprint: str | None) -> keywords.Catalogue:
    """The campaign catalogue, from this process's cache while ``fingerprint`` (read with
    the subscriber, :func:`_lock_subscriber`) matches; None (SQLite) always reads it."""
    if fingerprint is None:
        return load_catalogue(session)
    key = str(session.get_bind().url)
    cached = _catalogues.get(key)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    fresh = load_catalogue(session)
    _catalogues[key] = (fingerprint, fresh)
    return fresh


def load_conversation(
    session: Session,
    subscriber: Row | None,
    catalogue_: keywords.Catalogue,
    at: datetime | None = None,
) -> keywords.Conversation:
    """The sender's status, signatures, any pending name question and, given ``at``, a web
    sign-up's confirmation still awaiting YES."""
    if subscriber is None:
        return keywords.Conversation(status=Status.NONE)
    conn = session.connection()
    rows = _run(conn, _SIGNED, {"subscriber_id": subscriber.id, "phone": subscriber.phone})
    signed = {row.campaign_id: bool(row.name) for row in rows if row.campaign_id is not None}
    pending = None
    count = 0
    if subscriber.pending_name_campaign_id is not None:
        pending = _campaign(conn, catalogue_, subscriber.pending_name_campaign_id)
        if pending is not None:
            count = signature_count(session, pending.id)
    status = Status(subscriber.status) if subscriber.status in KNOWN_STATUSES else Status.NONE
    # Confirmation texts go only to numbers that are neither subscribed nor opted out, so
    # only those are looked up (one indexed query, skipped for every subscriber).
    web_until = (
        petition.pending_until(session, subscriber.phone, at)
        if at is not None and status is Status.NONE
        else None
    )
    return keywords.Conversation(
        status=status,
        signed=signed,
        pending_name=pending,
        pending_name_asked_at=subscriber.pending_name_asked_at,
        pending_signature_count=count,
        language=subscriber.language or "en",
        under_review=bool(rows[0].under_review),
        web_confirmation_until=web_until,
    )


def _campaign(conn: Connection, catalogue_: keywords.Catalogue, campaign_id: int):
    for campaign in catalogue_.by_keyword.values():
        if campaign.id == campaign_id:
            return campaign
    row = conn.execute(_CAMPAIGN, {"id": campaign_id}).one_or_none()  # closed since
    return keywords.Campaign(row.id, row.keyword, row.title) if row is not None else None


def signature_count(session: Session, campaign_id: int) -> int:
    """How many supporters signed the campaign."""
    return session.connection().execute(_SIGNATURE_COUNT, {"id": campaign_id}).scalar_one()


def handle_inbound(
    session: Session, sms: InboundSms, program: Program, reach: Reach | None = None
) -> InboundResult:
    """Decide and store one inbound text; idempotent on MessageSid. Does not commit.

    A sign-up from a number the sender cannot reach (``reach``) is refused and changes
    nothing. Safe to run again from the start after a rollback (see the module docstring).
    """
    message_id = None
    for _ in range(3):
        subscriber, fingerprint = _lock_subscriber(session, sms.from_number)
        catalogue_ = catalogue(session, fingerprint)
        decision = keywords.decide(
            sms.body,
            load_conversation(session, subscriber, catalogue_, sms.received_at),
            catalogue_,
            program,
            received_at=sms.received_at,
            carrier_opt_out_type=sms.opt_out_type,
        )
        decision = refuse_unreachable(decision, sms.from_number, reach, program)
        if message_id is None:
            message_id = claim_message(session, sms, decision)
            if message_id is None:
                done = find_processed(session, sms.message_sid)
                # The row we conflicted with is committed by now (ON CONFLICT waited).
                return done or InboundResult(reply=None, intent=CLAIMED, duplicate=True)
        else:
            _record_decision(session, message_id, decision)
        # Only an opt-out, opt-in or signature creates a row: "hi" from a stranger leaves none.
        if subscriber is not None or not decision.events:
            break
        subscriber_id = _insert_subscriber(session, sms, decision)
        if subscriber_id is not None:
            _apply_signature(session, subscriber_id, sms, decision)
            _append_events(session, sms, decision, program)
            return InboundResult(reply=decision.reply, intent=decision.intent)
        # Another transaction created this number's row first and has committed it:
        # decide again on what it left (a second pass finds the row).
    else:
        raise RuntimeError("the subscriber row conflicts but cannot be found")
    if subscriber is not None:
        _apply_status(session, subscriber, sms, decision)
        _apply_signature(session, subscriber.id, sms, decision)
    _append_events(session, sms, decision, program)
    petition.record_web_reply(
        session, phone=sms.from_number, body=sms.body, message_sid=sms.message_sid,
        received_at=sms.received_at, decision=decision, program=program,
    )  # fmt: skip
    return InboundResult(reply=decision.reply, intent=decision.intent)


def _lock_subscriber(session: Session, phone: str) -> tuple[Row | None, str | None]:
    """The sender's row, locked until commit (or None), and on PostgreSQL the campaign
    fingerprint, read in the same round trip."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        [row] = _run(conn, _LOCK_WITH_FINGERPRINT, {"phone": phone})
        return (row if row.id is not None else None), row.fingerprint or ""
    return conn.execute(_LOCK, {"phone": phone}).one_or_none(), None


def _status_changes(previous: str, sms: InboundSms, decision: Decision) -> dict[str, object]:
    """The subscriber columns the decision sets."""
    changes: dict[str, object] = {"updated_at": sms.received_at}
    if decision.status is not Status.NONE and decision.status != previous:
        changes["status"] = decision.status.value
        if decision.status is Status.SUBSCRIBED:
            changes["opted_in_at"] = sms.received_at
        elif decision.status is Status.OPTED_OUT:
            changes["opted_out_at"] = sms.received_at
    if decision.clear_pending_name:
        changes["pending_name_campaign_id"] = None
        changes["pending_name_asked_at"] = None
    if decision.ask_name is not None:
        changes["pending_name_campaign_id"] = decision.ask_name.id
        changes["pending_name_asked_at"] = sms.received_at
    if decision.name is not None:
        changes["name"] = decision.name
    if decision.language is not None:
        changes["language"] = decision.language
    return changes


def _insert_subscriber(session: Session, sms: InboundSms, decision: Decision) -> int | None:
    """Create the sender's row as the decision leaves it; None when a concurrent
    transaction created it first."""
    conn = session.connection()
    values = {
        "phone": sms.from_number, "status": Status.NONE.value, "name": None,
        "opted_in_at": None, "opted_out_at": None, "pending_name_campaign_id": None,
        "pending_name_asked_at": None, "language": None, "created_at": sms.received_at,
        **_status_changes(Status.NONE.value, sms, decision),
    }  # fmt: skip
    rows = _run(conn, _STATEMENTS[conn.dialect.name].subscriber, values)
    return rows[0][0] if rows else None


def _apply_status(session: Session, subscriber: Row, sms: InboundSms, decision: Decision) -> None:
    changes = _status_changes(subscriber.status, sms, decision)
    _run(session.connection(), _UPDATE_SUBSCRIBER, {**changes, "subscriber_id": subscriber.id})


def _record_decision(session: Session, message_id: int, decision: Decision) -> None:
    # Only when a second pass decided again: the claimed row holds the first decision.
    session.connection().execute(
        update(MESSAGES)
        .where(MESSAGES.c.id == message_id)
        .values(intent=decision.intent.value, reply=decision.reply)
    )


def _apply_signature(
    session: Session, subscriber_id: int, sms: InboundSms, decision: Decision
) -> None:
    if decision.sign is None:
        return
    conn = session.connection()
    statements = _STATEMENTS[conn.dialect.name]
    values = {
        "campaign_id": decision.sign.id, "subscriber_id": subscriber_id, "source": "sms",
        "signed_at": sms.received_at, "name": decision.name,
    }  # fmt: skip
    # Signing again keeps the first signature; a name (the reply to "your full name?")
    # is written onto it.
    _run(conn, statements.named_signature if decision.name else statements.signature, values)


def _append_events(session: Session, sms: InboundSms, decision: Decision, program: Program) -> None:
    if not decision.events:
        return
    # With Advanced Opt-Out, Twilio answered the keyword itself; we record the request
    # the same way and note that the reply wording was the carrier's, not ours.
    carrier = sms.opt_out_type and f"answered by Twilio Advanced Opt-Out ({sms.opt_out_type})"
    note = "; ".join(n for n in (decision.note, carrier) if n) or None
    rows = [
        # The disclosure recorded is exactly what this number was sent in reply: the
        # opt-in wording for opt_in/signature, the confirmation for opt_out, none when the
        # carrier answered for us.
        {
            "occurred_at": sms.received_at,
            "phone": sms.from_number,
            "event": kind.value,
            "keyword": decision.keyword,
            "message_body": sms.body,
            "message_sid": sms.message_sid,
            "source": "sms",
            "program": program.name,
            "disclosure": decision.reply,
            "campaign_id": decision.sign.id
            if decision.sign and kind in (ConsentKind.SIGNATURE, ConsentKind.OPT_IN)
            else None,
            "review_by": decision.review_by if kind is ConsentKind.POSSIBLE_OPT_OUT else None,
            "note": note,
        }
        for kind in decision.events
        # A web opt-in is logged by petition.record_web_reply, with the page's wording.
        if not (decision.confirms_web and kind is ConsentKind.OPT_IN)
    ]
    if rows:
        _run(session.connection(), _INSERT_EVENT, rows if len(rows) > 1 else rows[0])


# --- Statements, built once ----------------------------------------------------------------

# SQL text compiled once per (statement, parameter names) for PostgreSQL.
_compiled: dict[tuple[int, frozenset[str]], tuple[str, dict]] = {}


def _run(conn: Connection, statement, params: dict | list[dict]) -> list:
    """Execute a Core statement built once below; the rows it returns (attribute access).

    On PostgreSQL the statement is compiled once by SQLAlchemy (the same SQL it would send)
    and then run straight on the connection's psycopg connection, in the same transaction:
    SQLAlchemy's per-execution bookkeeping was over half of a text's Python time. Parameters
    are plain values (aware datetimes, strings), so no type processing is skipped that
    matters: psycopg adapts them as SQLAlchemy would. Elsewhere SQLAlchemy runs it.
    """
    if conn.dialect.name != "postgresql":
        result = conn.execute(statement, params)
        return list(result) if result.returns_rows else []
    many = isinstance(params, list)
    first = params[0] if many else params
    key = (id(statement), frozenset(first))
    entry = _compiled.get(key)
    if entry is None:
        compiled = statement.compile(dialect=conn.dialect, column_keys=list(first))
        defaults = {k: v for k, v in compiled.params.items() if k not in first}
        entry = _compiled[key] = (str(compiled), defaults)
    sql, defaults = entry
    dbapi_connection = conn.connection.dbapi_connection
    cursor = dbapi_connection.cursor(row_factory=namedtuple_row)
    bound = [{**defaults, **p} for p in params] if many else {**defaults, **first}
    if conn.dispatch.before_cursor_execute:  # listeners (tracing, tests) still see it
        conn.dispatch.before_cursor_execute(conn, cursor, sql, bound, None, many)
    try:
        with cursor:
            if many:
                cursor.executemany(sql, bound)
                return []
            cursor.execute(sql, bound)
            return cursor.fetchall() if cursor.description else []
    except psycopg.Error as exc:
        # Raised as SQLAlchemy raises it (IntegrityError, OperationalError…), so that
        # run_transaction recognises a conflict, and a dropped connection is discarded.
        gone = conn.dialect.is_disconnect(exc, dbapi_connection, cursor)
        if gone:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql, bound, exc, psycopg.Error, connection_invalidated=gone, dialect=conn.dialect
        ) from exc


_STORED_REPLY = select(MESSAGES.c.reply, MESSAGES.c.intent).where(
    MESSAGES.c.message_sid == bindparam("message_sid")
)
_ACTIVE_CAMPAIGNS = (
    select(CAMPAIGNS.c.id, CAMPAIGNS.c.keyword, CAMPAIGNS.c.title)
    .where(CAMPAIGNS.c.active.is_(True))
    .order_by(CAMPAIGNS.c.sign_default.desc(), CAMPAIGNS.c.created_at.desc())
)
_CAMPAIGN = select(CAMPAIGNS.c.id, CAMPAIGNS.c.keyword, CAMPAIGNS.c.title).where(
    CAMPAIGNS.c.id == bindparam("id")
)
# The number's signatures and whether a possible opt-out from it awaits staff, in one
# statement (at least one row: the signatures are outer-joined to a single row). Read after
# the lock, so both are as the transaction it may have waited for left them.
_ONE = select(literal(1).label("one")).subquery("one")
_SIGNED = select(
    review_open(bindparam("phone")).label("under_review"),
    SIGNATURES.c.campaign_id,
    SIGNATURES.c.name,
).select_from(_ONE.outerjoin(SIGNATURES, SIGNATURES.c.subscriber_id == bindparam("subscriber_id")))
_SIGNATURE_COUNT = (
    select(func.count()).select_from(SIGNATURES).where(SIGNATURES.c.campaign_id == bindparam("id"))
)
_LOCK = select(SUBSCRIBERS).where(SUBSCRIBERS.c.phone == bindparam("phone")).with_for_update()
_UPDATE_SUBSCRIBER = update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == bindparam("subscriber_id"))
_INSERT_EVENT = EVENTS.insert()


def _lock_with_fingerprint():
    # A campaign row's xmin changes with every insert or update of it; with the ids this
    # names the catalogue's exact state in a few bytes. The lateral subquery keeps FOR
    # UPDATE on subscribers while the fingerprint row exists even for a new number.
    part = cast(CAMPAIGNS.c.id, Text).concat(".").concat(cast(literal_column("xmin"), Text))
    separator = postgresql.aggregate_order_by(literal(","), CAMPAIGNS.c.id)
    fingerprint = select(func.string_agg(part, separator).label("fingerprint")).subquery("c")
    locked = _LOCK.lateral("s")
    return select(fingerprint.c.fingerprint, *locked.c).select_from(
        fingerprint.outerjoin(locked, true())
    )


_LOCK_WITH_FINGERPRINT = _lock_with_fingerprint()


@dataclass(frozen=True)
class _Writes:
    """The dialect's ON CONFLICT statements."""

    claim: object
    subscriber: object
    signature: object
    named_signature: object


def _writes(insert) -> _Writes:
    claim = (
        insert(MESSAGES)
        .on_conflict_do_nothing(index_elements=["message_sid"])
        .returning(MESSAGES.c.id)
    )
    subscriber = (
        insert(SUBSCRIBERS)
        .on_conflict_do_nothing(index_elements=["phone"])
        .returning(SUBSCRIBERS.c.id)
    )
    signature = insert(SIGNATURES).on_conflict_do_nothing(
        index_elements=["campaign_id", "subscriber_id"]
    )
    named = insert(SIGNATURES)
    named = named.on_conflict_do_update(
        index_elements=["campaign_id", "subscriber_id"], set_={"name": named.excluded.name}
    )
    return _Writes(claim, subscriber, signature, named)


_STATEMENTS = {"postgresql": _writes(postgresql.insert), "sqlite": _writes(sqlite.insert)}
