"""Apply a keyword decision to the database: the transaction behind ``POST /sms/inbound``.

Receiving (the webhook view), deciding (:mod:`sms_service.domain.keywords`) and storing
(this module) are separate parts. Nothing here commits: the caller's transaction holds the
inbound message, the status change, the signature and the consent events together.

Races are settled by the database, in this order:

1. The sender's subscriber row is locked (``SELECT … FOR UPDATE``), so two texts from one
   number are decided one after the other, each on what the other committed: the final
   status follows commit order. A Twilio retry racing the first delivery is also a text
   from the same number, so it waits here too.
2. The message is then *claimed*, with the decision already in it: a plain ``INSERT`` into
   ``inbound_messages``, whose MessageSid is unique. When the MessageSid is known (a
   retry; the insert waits for a concurrent holder to commit) the insert fails, the whole
   attempt is rolled back, and the stored reply is answered: nothing is applied twice.
   (On SQLite this first write takes the database's single write lock, so the rest of the
   transaction runs alone.)
3. A brand-new number has no row to lock. If the decision needs one, it is created with a
   plain ``INSERT`` too; when a concurrent text (or a status callback) created it first,
   the insert waits for that one to commit and fails, and the text is decided again from
   the start, on the row it left.

Whatever still conflicts (a unique violation elsewhere, a deadlock) aborts the transaction,
which runs again (:func:`sms_service.db.with_retries`).

Cost: this runs for every text of a TV call-to-action, so it talks to the database in two
round trips on PostgreSQL (:mod:`sms_service.db.pipeline`): BEGIN and every read in one
batch (the locked subscriber row with the campaign catalogue's fingerprint, then, after the
lock, the number's signatures, review hold and open web confirmation), the decision in
Python, then every write (message, subscriber, signature, consent events) with COMMIT in a
second. All are SQLAlchemy Core statements built once (no ORM unit of work). Because a lost
race shows as a failed insert, not as a row a statement did or did not return, nothing
needs reading between the writes and COMMIT, and nothing a losing attempt wrote survives.
On the web process, texts that arrive together are stored in one such transaction
(:func:`receive_together`, :mod:`sms_service.web.group_commit`): the same reads and writes
for each, one BEGIN and one COMMIT for all.
The catalogue is cached per process and re-read only when the fingerprint (every campaign
row's id and ``xmin``, which any insert, update or delete changes) differs, so a campaign
created or closed from the CLI or another worker is seen by the very next text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from sqlalchemy import (
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
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from sms_service.db import for_each_dialect, is_transient_conflict, with_retries
from sms_service.db.pipeline import Batches, batches
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


def receive(
    engine: Engine, sms: InboundSms, program: Program, reach: Reach | None = None
) -> InboundResult:
    """Decide and store one inbound text, committed before this returns; idempotent on
    MessageSid. Run again from the start when it loses a race (see the module docstring).

    A sign-up from a number the sender cannot reach (``reach``) is refused and changes
    nothing.
    """

    def once() -> InboundResult:
        with batches(engine) as db:
            try:
                return _attempt(db, engine, sms, program, reach)
            except IntegrityError as exc:
                if not is_transient_conflict(exc):
                    raise
                # A unique key another transaction has committed: this MessageSid (a Twilio
                # retry, whose first delivery's reply is answered) or, for a new number,
                # its row (run again from the start: with_retries).
                db.rollback()
                [rows] = db.run([(_STORED_REPLY, {"message_sid": sms.message_sid})])
                if not rows:
                    raise
                return InboundResult(reply=rows[0].reply, intent=rows[0].intent, duplicate=True)

    return with_retries(once)


def receive_together(
    engine: Engine,
    texts: list[InboundSms],
    program: Program,
    reach: Reach | None = None,
    *,
    lock_timeout_ms: int | None = None,
) -> list[InboundResult]:
    """Decide and store ``texts``, each from a different number, in one transaction (group
    commit): their reads in one batch, each decided on its own rows as :func:`receive`
    decides it, their writes with one COMMIT; the results in the order of ``texts``.

    A Twilio retry of a text already committed is answered as :func:`receive` answers it
    (its stored reply, ``duplicate``), found in the same batch of reads, and stores
    nothing. Nothing is retried here: when any of them conflicts (a retry of a text
    still being stored elsewhere, a new number another transaction created first, a
    deadlock) the whole transaction is rolled back and the error raised, and the caller
    receives each text alone (:func:`receive`). The rows are locked in the order of their
    numbers, as any other group's, so two groups never wait on each other in a cycle.
    With ``lock_timeout_ms`` (PostgreSQL), waiting longer
    than that for any row lock is such a conflict too (``lock_timeout``, this transaction
    only): a row another transaction holds (an import, a broadcast batch, a staff action)
    then delays only its own number's text, received alone, not every text of the group.
    Transactions that lock several subscribers in another order (a broadcast batch's
    ``FOR SHARE`` in id order, an import) could close a cycle with a group; the group, with
    a lock timeout well under PostgreSQL's ``deadlock_timeout`` (1 s by default), gives way
    first, so they never become a deadlock's victim.
    """
    if len({sms.from_number for sms in texts}) != len(texts):
        raise ValueError("receive_together takes one text per number")
    ordered = sorted(texts, key=lambda sms: sms.from_number)
    with batches(engine) as db:
        # One look-up per text by its MessageSid: an equality on the unique column, whose
        # generic plan is an index probe from a few hundred rows on (``= ANY($1)`` kept a
        # sequential scan of thousands: bench/README.md). Then the lock timeout, before the
        # first lock.
        first = [(_STORED_REPLY, {"message_sid": sms.message_sid}) for sms in ordered]
        if db.dialect_name == "postgresql" and lock_timeout_ms is not None:
            first.append((_LOCK_TIMEOUT, {"timeout": f"{lock_timeout_ms}ms"}))
        found, reads = _reads(db, engine, ordered, first)
        stored = found[: len(ordered)]
        steps: list = []
        results: dict[int, InboundResult] = {}
        for sms, read, known in zip(ordered, reads, stored, strict=True):
            if known:  # a retry: answered as its first delivery was
                row = known[0]
                results[id(sms)] = InboundResult(reply=row.reply, intent=row.intent, duplicate=True)
                continue
            writes, results[id(sms)] = _decided(db.dialect_name, sms, read, program, reach)
            steps.extend(writes)
        db.run(steps, commit=True)
    return [results[id(sms)] for sms in texts]


def _attempt(
    db: Batches, engine: Engine, sms: InboundSms, program: Program, reach: Reach | None
) -> InboundResult:
    """One batch of reads, the decision, one batch of writes ending with COMMIT."""
    _, [read] = _reads(db, engine, [sms])
    steps, result = _decided(db.dialect_name, sms, read, program, reach)
    db.run(steps, commit=True)
    return result


def _decided(
    dialect: str, sms: InboundSms, read: tuple, program: Program, reach: Reach | None
) -> tuple[list, InboundResult]:
    """The decision on what ``_reads`` found: the statements that store it, and the answer."""
    subscriber, conversation, catalogue_, web = read
    decision = keywords.decide(
        sms.body, conversation, catalogue_, program,
        received_at=sms.received_at, carrier_opt_out_type=sms.opt_out_type,
    )  # fmt: skip
    decision = refuse_unreachable(decision, sms.from_number, reach, program)
    # Only an opt-out, opt-in or signature creates a row: "hi" from a stranger leaves none.
    creates = subscriber is None and bool(decision.events)
    steps: list = [(_CLAIM, _message_values(sms, decision))]
    if creates:
        steps.append((_NEW_SUBSCRIBER, _new_subscriber(sms, decision)))
    elif subscriber is not None:
        changes = _real_changes(subscriber, _status_changes(subscriber.status, sms, decision))
        if changes:
            steps.append((_UPDATE_SUBSCRIBER, {**changes, "subscriber_id": subscriber.id}))
    if decision.sign is not None and (creates or subscriber is not None):
        steps.append(_signature_step(dialect, sms, decision))
    events = _events(sms, decision, program)
    if subscriber is not None and web is not None:
        web_steps, web_events = petition.web_reply(
            web, message_sid=sms.message_sid, body=sms.body, received_at=sms.received_at,
            decision=decision, program=program,
        )  # fmt: skip
        steps.extend(web_steps)
        events.extend(web_events)
    if events:
        steps.append((_INSERT_EVENT, events if len(events) > 1 else events[0]))
    return steps, InboundResult(reply=decision.reply, intent=decision.intent)


def _reads(
    db: Batches, engine: Engine, texts: list[InboundSms], first=()
) -> tuple[list, list[tuple]]:
    """For each text, the sender's row (locked until commit, or None), their conversation,
    the campaign catalogue and any web confirmation awaiting YES: one batch for all of
    them (another only when the catalogue changed, or a name question is pending), after
    the statements ``first``, whose rows come first."""
    postgres = db.dialect_name == "postgresql"
    steps = list(first)
    for sms in texts:
        phone, at = sms.from_number, sms.received_at
        steps += [
            (_LOCK_WITH_FINGERPRINT if postgres else _LOCK, {"phone": phone}),
            # After the lock: as the transaction it may have waited for left them.
            (_CONVERSATION, {"phone": phone}),
            (petition.PENDING_WEB_CONFIRMATION, {"phone": phone, "at": at}),
        ]
    if not postgres:  # in-process: no fingerprint to save a read with
        steps.append((_ACTIVE_CAMPAIGNS, {}))
    answers = db.run(steps)
    results = answers[len(first) :]
    catalogue_ = None if postgres else _catalogue(results[-1])
    conversations = [
        _conversation(db, engine, results[3 * i : 3 * i + 3], catalogue_) for i in range(len(texts))
    ]
    return answers[: len(first)], conversations


def _conversation(db: Batches, engine: Engine, results: list, catalogue_):
    """One text's share of the reads (``catalogue_`` None: from the fingerprint)."""
    [locked, signed, web] = results
    if catalogue_ is None:
        [row] = locked
        subscriber = row if row.id is not None else None
        catalogue_ = _cached_catalogue(db, engine, row.fingerprint or "")
    else:
        subscriber = locked[0] if locked else None
    if subscriber is None:
        return None, keywords.Conversation(status=Status.NONE), catalogue_, None
    pending, count = None, 0
    if subscriber.pending_name_campaign_id is not None:
        pending, count = _pending_name(db, catalogue_, subscriber.pending_name_campaign_id)
    status = Status(subscriber.status) if subscriber.status in KNOWN_STATUSES else Status.NONE
    # Confirmation texts go only to numbers that are neither subscribed nor opted out.
    web_row = web[0] if web and status is Status.NONE else None
    conversation = keywords.Conversation(
        status=status,
        signed={r.campaign_id: bool(r.name) for r in signed if r.campaign_id is not None},
        pending_name=pending,
        pending_name_asked_at=subscriber.pending_name_asked_at,
        pending_signature_count=count,
        language=subscriber.language or "en",
        under_review=bool(signed[0].under_review),
        web_confirmation_until=web_row.expires_at if web_row is not None else None,
    )
    return subscriber, conversation, catalogue_, web_row


def _catalogue(rows) -> keywords.Catalogue:
    """Active campaigns by keyword; SIGN signs the one chosen as default (``sign_default``),
    else the most recently created active one."""
    campaigns = [keywords.Campaign(c.id, c.keyword, c.title) for c in rows]
    return keywords.Catalogue(
        by_keyword={c.keyword.upper(): c for c in campaigns},
        default=campaigns[0] if campaigns else None,
    )


# One (fingerprint, catalogue) per engine (its database), replaced when the fingerprint
# changes. Keyed by the engine object: hashing its URL renders it, on every text.
_catalogues: WeakKeyDictionary[Engine, tuple[str, keywords.Catalogue]] = WeakKeyDictionary()


def _cached_catalogue(db: Batches, engine: Engine, fingerprint: str) -> keywords.Catalogue:
    """The campaign catalogue from this process's cache while ``fingerprint`` (read with the
    locked row) matches; read again when it does not."""
    cached = _catalogues.get(engine)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    [rows] = db.run([(_ACTIVE_CAMPAIGNS, {})])
    fresh = _catalogue(rows)
    _catalogues[engine] = (fingerprint, fresh)
    return fresh


def _pending_name(db: Batches, catalogue_: keywords.Catalogue, campaign_id: int):
    """The campaign whose "your full name?" awaits an answer, and its signature count."""
    campaign = next((c for c in catalogue_.by_keyword.values() if c.id == campaign_id), None)
    steps = [(_SIGNATURE_COUNT, {"id": campaign_id})]
    if campaign is None:  # closed since
        steps.append((_CAMPAIGN, {"id": campaign_id}))
    results = db.run(steps)
    if campaign is None:
        if not results[1]:
            return None, 0
        row = results[1][0]
        campaign = keywords.Campaign(row.id, row.keyword, row.title)
    return campaign, results[0][0][0]


def _message_values(sms: InboundSms, decision: Decision) -> dict:
    return {
        "message_sid": sms.message_sid, "account_sid": sms.account_sid,
        "from_number": sms.from_number, "to_number": sms.to_number, "body": sms.body,
        "num_media": sms.num_media, "opt_out_type": sms.opt_out_type,
        "intent": decision.intent.value, "reply": decision.reply, "received_at": sms.received_at,
    }  # fmt: skip


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


def _real_changes(subscriber, changes: dict[str, object]) -> dict[str, object]:
    """``changes`` without the values the row holds already; empty when nothing else
    changes. A HELP or a question from a subscriber then writes no row version, and
    ``updated_at`` (which a status without its own time shows as its change) keeps the time
    of the row's last real change."""
    kept = {
        key: value for key, value in changes.items()
        if key == "updated_at" or key not in subscriber._fields or getattr(subscriber, key) != value
    }  # fmt: skip
    return kept if len(kept) > 1 else {}


def _new_subscriber(sms: InboundSms, decision: Decision) -> dict:
    """The sender's new row as the decision leaves it."""
    return {
        "phone": sms.from_number, "status": Status.NONE.value, "name": None,
        "opted_in_at": None, "opted_out_at": None, "pending_name_campaign_id": None,
        "pending_name_asked_at": None, "language": None, "created_at": sms.received_at,
        **_status_changes(Status.NONE.value, sms, decision),
    }  # fmt: skip


def _signature_step(dialect: str, sms: InboundSms, decision: Decision):
    # The subscriber is found by phone: the row may be the one this batch inserts.
    # Signing again keeps the first signature; a name (the reply to "your full name?") is
    # written onto it.
    writes = _WRITES[dialect]
    values = {
        "campaign_id": decision.sign.id, "phone": sms.from_number, "signed_at": sms.received_at,
        "name": decision.name,
    }  # fmt: skip
    return (writes.named_signature if decision.name else writes.signature, values)


def _events(sms: InboundSms, decision: Decision, program: Program) -> list[dict]:
    """The consent events the decision logs."""
    # With Advanced Opt-Out, Twilio answered the keyword itself; we record the request
    # the same way and note that the reply wording was the carrier's, not ours.
    carrier = sms.opt_out_type and f"answered by Twilio Advanced Opt-Out ({sms.opt_out_type})"
    note = "; ".join(n for n in (decision.note, carrier) if n) or None
    return [
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
        # A web opt-in is logged by petition.web_reply, with the page's wording.
        if not (decision.confirms_web and kind is ConsentKind.OPT_IN)
    ]


# --- Statements, built once ----------------------------------------------------------------

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
# statement (at least one row: the signatures are outer-joined to a single row), by phone:
# it goes in the same batch as the lock, so the subscriber's id is not known yet.
_ONE = select(literal(1).label("one")).subquery("one")
_SUBSCRIBER_ID = (
    select(SUBSCRIBERS.c.id).where(SUBSCRIBERS.c.phone == bindparam("phone")).scalar_subquery()
)
_CONVERSATION = select(
    review_open(bindparam("phone")).label("under_review"),
    SIGNATURES.c.campaign_id,
    SIGNATURES.c.name,
).select_from(_ONE.outerjoin(SIGNATURES, SIGNATURES.c.subscriber_id == _SUBSCRIBER_ID))
_SIGNATURE_COUNT = (
    select(func.count()).select_from(SIGNATURES).where(SIGNATURES.c.campaign_id == bindparam("id"))
)
# What the decision needs of the sender's row (fewer columns: less to send and to parse).
_LOCK = (
    select(
        SUBSCRIBERS.c.id, SUBSCRIBERS.c.status, SUBSCRIBERS.c.language,
        SUBSCRIBERS.c.pending_name_campaign_id, SUBSCRIBERS.c.pending_name_asked_at,
    )
    .where(SUBSCRIBERS.c.phone == bindparam("phone"))
    .with_for_update()
)  # fmt: skip
# SET LOCAL as a statement that can be prepared (PostgreSQL prepares no SET).
_LOCK_TIMEOUT = select(func.set_config("lock_timeout", bindparam("timeout", type_=Text), true()))
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


# Plain inserts: a MessageSid or a new number's row taken first fails the attempt (see the
# module docstring).
_CLAIM = MESSAGES.insert()
_NEW_SUBSCRIBER = SUBSCRIBERS.insert()


@dataclass(frozen=True)
class _Writes:
    """The dialect's ON CONFLICT statements."""

    signature: object
    named_signature: object


def _writes(insert) -> _Writes:
    # INSERT … SELECT by phone: the subscriber row may be the one inserted just before.
    signer = select(
        bindparam("campaign_id", type_=SIGNATURES.c.campaign_id.type),
        SUBSCRIBERS.c.id,
        literal("sms", SIGNATURES.c.source.type),
        bindparam("signed_at", type_=SIGNATURES.c.signed_at.type),
        bindparam("name", type_=SIGNATURES.c.name.type),
    ).where(SUBSCRIBERS.c.phone == bindparam("phone"))
    columns = ["campaign_id", "subscriber_id", "source", "signed_at", "name"]
    signature = (
        insert(SIGNATURES)
        .from_select(columns, signer)
        .on_conflict_do_nothing(index_elements=["campaign_id", "subscriber_id"])
    )
    named = insert(SIGNATURES).from_select(columns, signer)
    named = named.on_conflict_do_update(
        index_elements=["campaign_id", "subscriber_id"], set_={"name": named.excluded.name}
    )
    return _Writes(signature, named)


_WRITES = for_each_dialect(_writes)
