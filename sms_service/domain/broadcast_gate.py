"""Whether one broadcast text may go to one recipient right now: send, skip or defer.

Pure: no Flask, ORM, Twilio or Redis. The sender asks this for every recipient of a batch
just before the API calls, with the subscriber's status and stored zone and how many
broadcast texts the number got in the last 30 days (one query per batch gives those).

The order matters: consent first (an opted-out number, or one whose possible opt-out
staff have not decided yet, is skipped whatever the time), then
whether the sender can reach the number at all (:mod:`sms_service.domain.reach`), then
the frequency cap (waiting would not help within the window), then quiet hours (the text
waits for the recipient's morning). Keyword replies never come here: the program answers
a supporter's own text at any hour, however many texts they had.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sms_service.domain.keywords import Status
from sms_service.domain.quiet_hours import Window, next_allowed_time, parse_window
from sms_service.domain.reach import Reach, reach_of

CAP_WINDOW = timedelta(days=30)
PREFIX_CHARS = 10  # "+" and the nine digits phonenumbers places a number by


class DeliveryReason(StrEnum):
    """Why a delivery (one recipient's row of a run) is where it is: the value is what
    ``broadcast_deliveries.reason`` stores."""

    # skipped by this gate
    OPTED_OUT = "opted_out"
    INVALID_NUMBER = "invalid_number"  # also: failed, the carrier called it invalid
    NOT_SUBSCRIBED = "not_subscribed"
    FREQUENCY_CAP = "frequency_cap"
    OPT_OUT_REVIEW = "opt_out_review"  # a possible opt-out waits for staff: hold everything
    UNREACHABLE = "unreachable"  # the sender cannot reach the number's country (domain.reach)
    # deferred by this gate
    QUIET_HOURS = "quiet_hours"
    # set by the senders
    CARRIER_OPTED_OUT = "carrier_opted_out"  # skipped: the carrier says the number stopped
    CANCELLED = "cancelled"  # skipped: the broadcast was cancelled
    RUN_CLOSED = "run_closed"  # skipped: the run closed before this row was sent
    NO_SUBSCRIBER = "no_subscriber"  # skipped: the subscriber row is gone
    RETRY = "retry"  # deferred after a transient refusal
    RETRIES_EXHAUSTED = "retries_exhausted"  # failed: refused too many times
    ERROR = "error"  # failed: any other refusal
    UNKNOWN = "unknown"  # still sending: the answer was lost, reconciled after the lease
    RECONCILED = "reconciled"  # pending again: the carrier never got the lost attempt


class Action(StrEnum):
    """What the gate says to do with one recipient now."""

    SEND = "send"
    SKIP = "skip"
    DEFER = "defer"


_STATUS_REASONS = {"opted_out": DeliveryReason.OPTED_OUT, "invalid": DeliveryReason.INVALID_NUMBER}


@dataclass(frozen=True)
class Rules:
    """The program's limits: house quiet hours (None = off), the 30-day cap (0 = none),
    the zone for numbers that cannot be placed, whether state laws apply, and which numbers
    the sender reaches (None: all)."""

    window: Window | None
    cap: int
    default_zone: str
    state_rules: bool = True
    reach: Reach | None = None

    @classmethod
    def from_settings(cls, settings) -> Rules:
        """Rules from ``QUIET_HOURS``, ``PROGRAM_MAX_MESSAGES_PER_30_DAYS`` and the zone."""
        return cls(
            window=parse_window(settings.quiet_hours),
            cap=max(0, int(settings.program_max_messages_per_30_days)),
            default_zone=settings.default_timezone,
            reach=reach_of(
                settings.twilio_from,
                messaging_service=bool(settings.twilio_messaging_service_sid),
                short_code_regions=settings.short_code_countries,
            ),
        )


@dataclass(frozen=True)
class Recipient:
    """What the gate needs to know about one recipient at send time."""

    phone: str
    status: str
    timezone: str | None = None
    sent_recently: int = 0  # broadcast texts accepted for this number in the last 30 days
    under_review: bool = False  # a possible opt-out from this number waits for staff


@dataclass(frozen=True)
class Verdict:
    """``send``, ``skip`` (with ``reason``) or ``defer`` (until ``not_before``, UTC)."""

    action: Action
    reason: DeliveryReason | None = None
    not_before: datetime | None = None


SEND = Verdict(Action.SEND)


def consent_verdict(status: str, under_review: bool = False) -> Verdict:
    """Send only to ``subscribed`` with no possible opt-out under review; skip everyone
    else with the reason."""
    if status == Status.SUBSCRIBED:
        return Verdict(Action.SKIP, DeliveryReason.OPT_OUT_REVIEW) if under_review else SEND
    return Verdict(Action.SKIP, _STATUS_REASONS.get(status, DeliveryReason.NOT_SUBSCRIBED))


def decide(
    recipient: Recipient,
    now: datetime,
    rules: Rules,
    cache: dict[tuple[str, str | None], datetime | None] | None = None,
) -> Verdict:
    """The verdict for ``recipient`` at ``now`` (aware UTC) under ``rules``.

    ``cache`` (one per batch, all at the same ``now``) keeps quiet-hour answers by number
    prefix: the zones and the state rule depend only on the first digits of a number
    (at most nine, the longest prefix in phonenumbers' zone data), and working them out
    is most of the cost of a verdict.
    """
    verdict = consent_verdict(recipient.status, recipient.under_review)
    if verdict.action is not Action.SEND:
        return verdict
    if rules.reach is not None and not rules.reach.reaches(recipient.phone):
        return Verdict(Action.SKIP, DeliveryReason.UNREACHABLE)
    if rules.cap and recipient.sent_recently >= rules.cap:
        return Verdict(Action.SKIP, DeliveryReason.FREQUENCY_CAP)
    key = (recipient.phone[:PREFIX_CHARS], recipient.timezone)
    if cache is not None and key in cache:
        allowed = cache[key]
    else:
        try:
            allowed = _next_allowed(now, recipient.phone, recipient.timezone, rules)
        except ValueError:
            return Verdict(Action.SKIP, DeliveryReason.INVALID_NUMBER)
        if cache is not None:
            cache[key] = allowed
    if allowed is not None:
        return Verdict(Action.DEFER, DeliveryReason.QUIET_HOURS, allowed)
    return SEND


def decide_batch(recipients: list[Recipient], now: datetime, rules: Rules) -> list[Verdict]:
    """Verdicts for a batch at one ``now``, sharing the quiet-hours work between numbers."""
    cache: dict[tuple[str, str | None], datetime | None] = {}
    return [decide(recipient, now, rules, cache) for recipient in recipients]


def _next_allowed(now: datetime, phone: str, zone: str | None, rules: Rules) -> datetime | None:
    try:
        return _ask(now, phone, zone, rules)
    except ValueError:
        if zone is None:
            raise
    # A stored zone that is not a zone is ignored, not fatal: the number's own zones stand.
    return _ask(now, phone, None, rules)


def _ask(now: datetime, phone: str, zone: str | None, rules: Rules) -> datetime | None:
    return next_allowed_time(
        now,
        phone,
        window=rules.window,
        stored_zone=zone,
        default_zone=rules.default_zone,
        state_rules=rules.state_rules,
    )
