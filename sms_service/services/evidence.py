"""The evidence pack for one number: everything compliance staff need to show consent.

For a carrier audit, a TCR vetting or a TCPA demand letter, :func:`write_evidence` writes:

* ``consent_events.csv``: every consent event with the exact words received and the exact
  disclosure sent, each with its chain link (position, previous hash, hash) and its
  canonical text, so anyone can recompute the hash with ``sha256sum``;
* ``messages.csv``: every message to and from the number, with sid, kind and last status
  (:mod:`sms_service.services.messages`);
* ``signatures.csv``: its petition signatures;
* ``status.csv``: where the number stands now and when that last changed;
* ``verification.csv``: the result of verifying the whole chain (count, head hash, time),
  and for each of the number's events whether it still matches its seal;
* ``index.html``: all of the above on one self-contained, printable page (no scripts, no
  external files; everything a supporter typed is escaped).

It writes to a directory (:class:`DirectorySink`) or into a zip file (:class:`ZipSink`),
so the CLI and the web console's download build the same pack; see :func:`write_evidence_zip`.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, TextIO

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from sms_service.domain.consent_hash import link
from sms_service.domain.phones import mask
from sms_service.domain.spreadsheet import spreadsheet_safe
from sms_service.models import Campaign, ConsentEvent, Signature, Subscriber, SubscriberTag, utcnow
from sms_service.services import consent_chain
from sms_service.services.consent_chain import Verdict, event_canonical
from sms_service.services.exports import ExportFilter, _stream
from sms_service.services.messages import MESSAGE_HEADER, message_log_query

CONSENT_HEADER = [
    "event_id", "occurred_at", "event", "keyword", "message_body", "message_sid", "source",
    "program", "disclosure", "campaign", "review_by", "note", "chain_position", "prev_hash",
    "hash", "sealed_at", "matches_seal", "canonical",
]  # fmt: skip
SIGNATURE_HEADER = ["signed_at", "campaign", "campaign_title", "name", "source"]
STATUS_HEADER = ["phone_number", "status", "status_changed_at", "opted_in_at", "opted_out_at",
                 "name", "tags", "first_seen_at"]  # fmt: skip
FILES = ("consent_events.csv", "messages.csv", "signatures.csv", "status.csv",
         "verification.csv", "index.html")  # fmt: skip


# The single confirmation of an opt-out is the one message allowed after it.
CONFIRMATION_KINDS = frozenset({"keyword_reply", "optout_confirm"})


class Sink(Protocol):
    """Where a pack's files go: ``open(name)`` gives a text file to write."""

    def open(self, name: str) -> AbstractContextManager[TextIO]: ...


class DirectorySink:
    """Files in a directory (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def open(self, name: str) -> Iterator[TextIO]:  # see Sink
        with (self.directory / name).open("w", encoding="utf-8", newline="") as f:
            yield f


class ZipSink:
    """Files inside an open :class:`zipfile.ZipFile`."""

    def __init__(self, archive: zipfile.ZipFile, folder: str = "") -> None:
        self.archive, self.folder = archive, folder

    @contextmanager
    def open(self, name: str) -> Iterator[TextIO]:  # see Sink
        with self.archive.open(self.folder + name, "w") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            yield text
            text.flush()
            text.detach()


@dataclass(frozen=True)
class EvidenceSummary:
    """What the pack holds, for the caller to report."""

    phone: str
    status: str
    consent_events: int
    messages: int
    signatures: int
    sent_after_opt_out: int
    verdict: Verdict
    events_unsealed: int
    events_mismatched: int
    generated_at: datetime


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _events(session: Session, phone: str) -> list[tuple[ConsentEvent, str | None]]:
    rows = session.execute(
        select(ConsentEvent, Campaign.keyword)
        .outerjoin(Campaign, Campaign.id == ConsentEvent.campaign_id)
        .where(ConsentEvent.phone == phone)
        .order_by(ConsentEvent.occurred_at, ConsentEvent.id)
    ).all()
    return [(event, keyword) for event, keyword in rows]


def _event_rows(session: Session, phone: str) -> list[dict]:
    events = _events(session, phone)
    seals = consent_chain.seals_for(session, [e.id for e, _ in events])
    rows = []
    for event, campaign in events:
        seal = seals.get(event.id)
        canon = event_canonical(event)
        matches = "" if seal is None else (
            "yes" if link(seal.prev_hash, seal.position, canon) == seal.hash else "NO"
        )  # fmt: skip
        rows.append({
            "event_id": event.id, "occurred_at": _iso(event.occurred_at), "event": event.event,
            "keyword": event.keyword or "", "message_body": event.message_body or "",
            "message_sid": event.message_sid or "", "source": event.source,
            "program": event.program, "disclosure": event.disclosure or "",
            "campaign": campaign or "", "review_by": event.review_by or "",
            "note": event.note or "", "chain_position": seal.position if seal else "",
            "prev_hash": seal.prev_hash if seal else "", "hash": seal.hash if seal else "",
            "sealed_at": _iso(seal.sealed_at) if seal else "",
            "matches_seal": matches or "not sealed yet", "canonical": canon,
        })  # fmt: skip
    return rows


def _status(session: Session, phone: str) -> dict:
    sub = session.execute(select(Subscriber).where(Subscriber.phone == phone)).scalar_one_or_none()
    if sub is None:
        return dict.fromkeys(STATUS_HEADER, "") | {"phone_number": phone, "status": "unknown"}
    tags = session.execute(
        select(SubscriberTag.tag)
        .where(SubscriberTag.subscriber_id == sub.id)
        .order_by(SubscriberTag.tag)
    ).scalars()
    changed = sub.opted_out_at if sub.status == "opted_out" else sub.opted_in_at
    return {
        "phone_number": phone, "status": sub.status,
        "status_changed_at": _iso(changed or sub.updated_at), "opted_in_at": _iso(sub.opted_in_at),
        "opted_out_at": _iso(sub.opted_out_at), "name": sub.name or "", "tags": " ".join(tags),
        "first_seen_at": _iso(sub.created_at),
    }  # fmt: skip


def _signatures(session: Session, phone: str) -> list[dict]:
    rows = session.execute(
        select(
            Signature.signed_at, Campaign.keyword, Campaign.title, Signature.name, Signature.source
        )
        .join(Subscriber, Subscriber.id == Signature.subscriber_id)
        .join(Campaign, Campaign.id == Signature.campaign_id)
        .where(Subscriber.phone == phone)
        .order_by(Signature.signed_at)
    ).all()
    return [
        dict(zip(SIGNATURE_HEADER, [_iso(r[0]), *(v or "" for v in r[1:])], strict=True))
        for r in rows
    ]


def _write_csv(sink: Sink, name: str, header: list[str], rows: list[dict]) -> None:
    # Staff open these in spreadsheets: cells are neutralised like the exports' (a text
    # starting with = + - @ gets a leading '). The canonical text (JSON, starting with "{")
    # is never touched, so every hash can still be recomputed from the file.
    with sink.open(name) as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: spreadsheet_safe(str(v)) for k, v in row.items()})


def _last_opt_out(events: list[dict]) -> str | None:
    # The current revocation: the last opt-out with no opt-in after it.
    last = None
    for row in events:
        if row["event"] == "opt_out":
            last = last or row["occurred_at"]
        elif row["event"] in ("opt_in", "signature"):
            last = None
    return last


def write_evidence(
    engine: Engine, phone: str, sink: Sink, *, verify_chain: bool = True
) -> EvidenceSummary:
    """Write the pack for ``phone`` (E.164) into ``sink``; read-only on the database.

    ``verify_chain`` walks the whole chain (seconds per million events); without it the
    pack still checks each of the number's events against its own seal.
    """
    generated = utcnow()
    with Session(engine) as session:
        events = _event_rows(session, phone)
        status = _status(session, phone)
        signatures = _signatures(session, phone)
    messages = [
        dict(
            zip(MESSAGE_HEADER, [_iso(r[0]), *("" if v is None else v for v in r[1:])], strict=True)
        )
        for r in _stream(engine, message_log_query(ExportFilter(phone=phone)))
    ]
    verdict = consent_chain.verify(engine) if verify_chain else None
    if verdict is None:
        with Session(engine) as session:
            head = consent_chain.head(session)
        verdict = Verdict(
            ok=True, count=head.count, head=head, problem="not run (per-event checks only)"
        )
    revoked = _last_opt_out(events)
    after = [
        m for m in messages
        if revoked and m["direction"] == "out" and m["at"] > revoked
        and m["kind"] not in CONFIRMATION_KINDS
    ]  # fmt: skip
    summary = EvidenceSummary(
        phone=phone, status=status["status"], consent_events=len(events), messages=len(messages),
        signatures=len(signatures), sent_after_opt_out=len(after), verdict=verdict,
        events_unsealed=sum(1 for e in events if not e["hash"]),
        events_mismatched=sum(1 for e in events if e["matches_seal"] == "NO"),
        generated_at=generated,
    )  # fmt: skip
    _write_csv(sink, "consent_events.csv", CONSENT_HEADER, events)
    _write_csv(sink, "messages.csv", MESSAGE_HEADER, messages)
    _write_csv(sink, "signatures.csv", SIGNATURE_HEADER, signatures)
    _write_csv(sink, "status.csv", STATUS_HEADER, [status])
    _write_csv(sink, "verification.csv", ["check", "result"], _verification_rows(summary))
    with sink.open("index.html") as f:
        f.write(_render(summary, status, events, messages, signatures, revoked))
    return summary


def _verification_rows(s: EvidenceSummary) -> list[dict]:
    v = s.verdict
    rows = [
        ("generated_at", _iso(s.generated_at)),
        (
            "chain_verified",
            "yes" if v.ok and not v.problem else ("FAILED" if not v.ok else "not run"),
        ),
        ("chain_problem", v.problem or ""),
        ("chain_events", v.count),
        ("chain_head_hash", v.head.hash),
        ("chain_head_event_id", v.head.last_event_id or ""),
        ("chain_head_sealed_at", _iso(v.head.sealed_at)),
        ("number_events", s.consent_events),
        ("number_events_not_sealed_yet", s.events_unsealed),
        ("number_events_not_matching_their_seal", s.events_mismatched),
        ("messages_sent_after_current_opt_out", s.sent_after_opt_out),
    ]
    return [{"check": k, "result": r} for k, r in rows]


_ENV = Environment(
    loader=PackageLoader("sms_service.services", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
# On the page, times to the second (the CSV files keep microseconds and the offset).
_ENV.filters["when"] = lambda iso: f"{iso[:19].replace('T', ' ')} UTC" if iso else ""


def _render(summary, status, events, messages, signatures, revoked) -> str:
    return _ENV.get_template("evidence.html").render(
        s=summary, status=status, events=events, messages=messages, signatures=signatures,
        revoked=revoked, verification=_verification_rows(summary), masked=mask(summary.phone),
    )  # fmt: skip


def write_evidence_zip(engine: Engine, phone: str, out: BinaryIO, **options) -> EvidenceSummary:
    """The same pack as one zip (folder ``evidence-<number>/``) written to ``out``: what a
    web download streams. ``out`` may be any writable binary file (a BytesIO, a temp file)."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        folder = f"evidence-{phone.lstrip('+')}/"
        return write_evidence(engine, phone, ZipSink(archive, folder), **options)
