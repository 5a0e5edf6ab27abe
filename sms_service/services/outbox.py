"""Writing an outbound text before it is sent: the row every send starts from.

Here rather than in :mod:`sms_service.carrier` because services write it in their own
transaction (a confirmation beside the consent event it confirms), and the carrier room
already depends on this one (status reports), not the other way round.
"""

from __future__ import annotations

from sqlmodel import Session

from config import Settings
from sms_service.domain.segments import count_segments
from sms_service.models import MessageKind, OutboundMessage


def outbound_values(
    settings: Settings, *, to: str, body: str, kind: MessageKind | str = MessageKind.REPLY,
    dedupe_key: str | None = None,
) -> dict:  # fmt: skip
    """The columns of a new ``pending`` message: segments counted, sender from settings."""
    info = count_segments(body)
    return {
        "to_number": to,
        "body": body,
        "kind": str(kind),
        "dedupe_key": dedupe_key,
        "from_number": None if settings.twilio_messaging_service_sid else settings.twilio_from,
        "messaging_service_sid": settings.twilio_messaging_service_sid,
        "segments": info.segments,
        "encoding": str(info.encoding),
    }


def create_outbound_message(
    session: Session,
    *,
    settings: Settings,
    to: str,
    body: str,
    kind: MessageKind | str = MessageKind.REPLY,
    dedupe_key: str | None = None,
) -> OutboundMessage:
    """Write a ``pending`` message (:func:`outbound_values`); flushes for the id, does not
    commit. ``dedupe_key`` is unique: use it to make "one text per recipient per broadcast"
    a database rule."""
    values = outbound_values(settings, to=to, body=body, kind=kind, dedupe_key=dedupe_key)
    message = OutboundMessage(**values)
    session.add(message)
    session.flush()
    return message
