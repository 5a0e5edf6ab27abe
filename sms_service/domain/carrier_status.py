"""What the carrier says, pure: message status order and what Twilio's error codes mean.

No Flask, ORM or Twilio imports: the sender and the status webhook ask this module and act.
"""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """An outbound message's status: ours (pending, sending, unknown) then Twilio's."""

    PENDING = "pending"
    SENDING = "sending"
    UNKNOWN = "unknown"
    SCHEDULED = "scheduled"
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    CANCELED = "canceled"
    DELIVERED = "delivered"
    READ = "read"


# How far along a message is. A status only ever replaces a lower-ranked one, so a late
# or repeated callback never moves a message back. Twilio's own "sending" (between queued
# and sent) shares our rank: it is recorded as an event but never moves a queued message.
# "delivered" outranks the failures because carriers occasionally confirm delivery after
# first reporting the handset unreachable; the reverse never happens.
STATUS_RANK: dict[str, int] = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.UNKNOWN: 1,
    MessageStatus.SCHEDULED: 2,
    MessageStatus.ACCEPTED: 3,
    MessageStatus.QUEUED: 4,
    MessageStatus.SENT: 5,
    MessageStatus.FAILED: 6,
    MessageStatus.UNDELIVERED: 6,
    MessageStatus.CANCELED: 6,
    MessageStatus.DELIVERED: 7,
    MessageStatus.READ: 8,
}

FINAL_STATUSES = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.CANCELED,
        MessageStatus.READ,
    }
)


def rank(status: str | None) -> int | None:
    """The status's place in the lifecycle, or None for a status we do not know."""
    return STATUS_RANK.get((status or "").strip().lower())


def lower_statuses(status: str) -> list[str]:
    """Every known status a message may leave for ``status`` (those ranked strictly lower)."""
    target = rank(status)
    if target is None:
        return []
    return [name for name, value in STATUS_RANK.items() if value < target]


def advances(current: str | None, new: str | None) -> bool:
    """True when ``new`` moves a message forward from ``current`` (both must be known)."""
    new_rank, current_rank = rank(new), rank(current)
    return new_rank is not None and current_rank is not None and new_rank > current_rank


class Outcome(StrEnum):
    """What one API call to send a text came to."""

    ACCEPTED = "accepted"  # Twilio took it: we have a sid
    OPTED_OUT = "opted_out"  # 21610: the recipient texted STOP to this sender
    INVALID_NUMBER = "invalid_number"  # cannot receive texts; never retried
    RETRYABLE = "retryable"  # refused before anything was sent; try again later
    UNKNOWN = "unknown"  # the answer was lost: Twilio may have sent it; reconcile first
    FAILED = "failed"  # any other refusal; keep code and message, do not retry


# API errors (at send time).
OPT_OUT_CODES = frozenset({21610})  # "Attempt to send to unsubscribed recipient"
INVALID_NUMBER_CODES = frozenset({21211, 21614})  # invalid 'To'; 'To' is not a mobile number
RATE_LIMIT_CODES = frozenset({20429})  # too many requests
QUEUE_FULL_CODES = frozenset({21611})  # the sender's outbound queue is full

# Delivery errors (ErrorCode in status callbacks). 30004 "Message blocked" covers an
# opt-out at the carrier but also blocklists and filtering, so it asks staff to review
# (a possible opt-out) rather than opting the number out on a guess.
CALLBACK_OPT_OUT_CODES = OPT_OUT_CODES
CALLBACK_POSSIBLE_OPT_OUT_CODES = frozenset({30004})
CALLBACK_INVALID_NUMBER_CODES = frozenset({30005, 30006})  # unknown handset; landline


def classify_api_error(http_status: int | None, code: int | None) -> Outcome:
    """The outcome of a send the Twilio API refused with ``http_status`` and ``code``.

    A 504 is a gateway giving up on an answer that may still have been produced, so the
    send may have happened; any other 5xx means Twilio failed before creating the message.
    """
    if code in OPT_OUT_CODES:
        return Outcome.OPTED_OUT
    if code in INVALID_NUMBER_CODES:
        return Outcome.INVALID_NUMBER
    if code in RATE_LIMIT_CODES or code in QUEUE_FULL_CODES or http_status == 429:
        return Outcome.RETRYABLE
    if http_status == 504:
        return Outcome.UNKNOWN
    if http_status is not None and http_status >= 500:
        return Outcome.RETRYABLE
    return Outcome.FAILED


class CarrierVerdict(StrEnum):
    """What a delivery error code says about the recipient's number."""

    NONE = "none"
    OPTED_OUT = "opted_out"
    POSSIBLE_OPT_OUT = "possible_opt_out"
    INVALID_NUMBER = "invalid_number"


def classify_delivery_error(code: int | None) -> CarrierVerdict:
    """What a status callback's ErrorCode means for the number (nothing for most codes)."""
    if code in CALLBACK_OPT_OUT_CODES:
        return CarrierVerdict.OPTED_OUT
    if code in CALLBACK_POSSIBLE_OPT_OUT_CODES:
        return CarrierVerdict.POSSIBLE_OPT_OUT
    if code in CALLBACK_INVALID_NUMBER_CODES:
        return CarrierVerdict.INVALID_NUMBER
    return CarrierVerdict.NONE


def verdict_of_refusal(kind: Outcome) -> CarrierVerdict:
    """What a refused send says about the number: opted out, invalid, or nothing."""
    if kind is Outcome.OPTED_OUT:
        return CarrierVerdict.OPTED_OUT
    if kind is Outcome.INVALID_NUMBER:
        return CarrierVerdict.INVALID_NUMBER
    return CarrierVerdict.NONE


def parse_error_code(raw: object) -> int | None:
    """Twilio's ErrorCode as an int; None for missing, empty, non-numeric or absurd values.

    Only ASCII digits count ("²" passes ``isdigit`` but not ``int``), and at most six of
    them: Twilio's codes have five, and a longer one would not fit the column.
    """
    text = str(raw if raw is not None else "").strip()
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 6:
        return None
    return int(text)
