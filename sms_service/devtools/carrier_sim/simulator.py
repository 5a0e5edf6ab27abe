"""The simulated carrier's state and rules: who opted out, what becomes of each send.

One :class:`Simulator` lives on the aiohttp application (``app[SIMULATOR]``); handlers
run on the application's event loop only, so no locks are needed.
"""

from __future__ import annotations

import time
from decimal import Decimal
from random import Random

import phonenumbers
from aiohttp import web
from twilio.request_validator import RequestValidator

from sms_service.devtools.carrier_sim.callbacks import CallbackSender
from sms_service.devtools.carrier_sim.config import SimConfig
from sms_service.devtools.carrier_sim.store import Conversations, MessageStore, SimMessage, Stats
from sms_service.devtools.carrier_sim.twilio_shapes import (
    API_VERSION,
    DELIVERY_ERRORS,
    basic_authorization,
    message_uri,
    new_sid,
    rfc2822,
)
from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.domain.segments import count_segments

FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed"})
PRICED_STATUSES = FINAL_STATUSES | {"sent"}  # a message has a price once it has gone out


def parse_number(raw: str | None, default_region: str = "US") -> str | None:
    """``raw`` in E.164 when ``phonenumbers`` calls it a valid number, else None."""
    text = (raw or "").strip()
    if not text:
        return None
    parsed = _e164_fast(text)
    if parsed is not None and phonenumbers.is_valid_number(parsed):
        return text
    # Anything else, including a fast-path miss, gets the service's own parser (national
    # formats, prefixes it may strip), so the fast path never refuses what it would accept.
    try:
        return to_e164(text, default_region)
    except InvalidPhoneNumber:
        return None


def _e164_fast(text: str) -> phonenumbers.PhoneNumber | None:
    """``+`` and digits, split into country code and national number without the general
    parser (which costs as much as the validity check); None for anything else. Such a
    text is already its own E.164 form."""
    digits = text[1:]
    if text[0] != "+" or not (digits.isascii() and digits.isdigit()) or digits[0] == "0":
        return None
    if not 7 <= len(digits) <= 15:
        return None
    for size in (1, 2, 3):
        code = int(text[1 : 1 + size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = text[1 + size :]
            if national.startswith("0"):  # Italian-style leading zeros: let parse() decide
                return None
            return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    return None


class Simulator:
    """Configuration, memory and the random source of one simulated carrier."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = Random(config.seed)
        self.auth_header = basic_authorization(config.account_sid, config.auth_token)
        self.store = MessageStore(config.max_messages)
        self.conversations = Conversations()
        self.stats = Stats()  # counters; DELETE /sim/messages starts them afresh
        self.started = time.time()
        self.in_flight = 0  # API requests being answered now
        self.opt_outs: set[str] = set()
        # number → (final status, error code): fates set by tests via /sim/outcomes.
        self.outcomes: dict[str, tuple[str, int | None]] = {}
        self.validator = RequestValidator(config.auth_token)  # signs what it posts
        self.callbacks = CallbackSender(
            config, validator=self.validator, stats=lambda: self.stats, sender_of=self.sender_of
        )

    def reset_stats(self) -> None:
        """Start counting afresh."""
        self.stats = Stats()

    def delay(self) -> float:
        """One simulated delay in seconds: latency plus uniform jitter."""
        jitter = self.config.jitter_s
        return self.config.latency_s + (self.rng.uniform(0.0, jitter) if jitter else 0.0)

    def fails_now(self) -> bool:
        """True when this API request is one of the ``error_rate`` answered with HTTP 500."""
        rate = self.config.error_rate
        return rate > 0 and (rate >= 1 or self.rng.random() < rate)

    def draw_fate(self, to: str) -> tuple[str, int | None]:
        """How a message to ``to`` ends: a preset outcome, else delivered or undelivered."""
        preset = self.outcomes.get(to)
        if preset is not None:
            return preset
        rate = self.config.undelivered_rate
        if rate > 0 and (rate >= 1 or self.rng.random() < rate):
            return "undelivered", self.rng.choice((30003, 30005))
        return "delivered", None

    def accept(
        self,
        *,
        to: str,
        from_: str | None,
        body: str,
        messaging_service_sid: str | None,
        status_callback: str | None,
        validity_period: int | None,
        respond_after: float,
    ) -> SimMessage:
        """Store a new message whose API answer goes out ``respond_after`` seconds from now,
        and schedule its status callbacks."""
        now = time.time()
        sent_at = now + respond_after + self.delay()
        final_status, error_code = self.draw_fate(to)
        message = SimMessage(
            sid=new_sid("SM", self.rng),
            to=to,
            from_=from_,
            body=body,
            messaging_service_sid=messaging_service_sid,
            status_callback=status_callback,
            num_segments=count_segments(body).segments,
            created=now,
            sent_at=sent_at,
            final_at=sent_at + self.delay(),
            final_status=final_status,
            error_code=error_code,
            validity_period=validity_period,
        )
        self.store.add(message)
        self.stats.count_accepted(now)
        if status_callback:
            self.callbacks.schedule(message, first_at=now + respond_after)
        return message

    def sender_of(self, message: SimMessage) -> str:
        """The From of a message: its own, or the short code a Messaging Service picked."""
        return message.from_ or self.config.short_code

    def price(self, message: SimMessage) -> str:
        """Twilio's price string (negative, five decimals) for a sent message."""
        amount = self.config.price_per_segment * message.num_segments
        return f"{-amount.quantize(Decimal('0.00001'))}"

    def resource(self, message: SimMessage, now: float, *, as_created: bool = False) -> dict:
        """The Message resource as Twilio's JSON shows it at ``now``.

        ``as_created`` renders the answer to the create call: via a Messaging Service
        Twilio answers ``accepted`` with no From and 0 segments until it picks a sender.
        """
        account = self.config.account_sid
        via_service = message.from_ is None
        if as_created:
            status = "accepted" if via_service else "queued"
            updated = message.created
        else:
            status = message.status_at(now)
            updated = message.updated_at(now)
        early = as_created and via_service
        error_code = message.error_code if status in FINAL_STATUSES else None
        uri = message_uri(account, message.sid)
        return {
            "account_sid": account,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": rfc2822(message.created),
            # Empty until the message is sent, as Twilio does: a queued message is missed by
            # the DateSent filters, which is what the service's reconciliation must handle.
            "date_sent": None if status in ("accepted", "queued") else rfc2822(message.sent_at),
            "date_updated": rfc2822(updated),
            "direction": "outbound-api",
            "error_code": error_code,
            "error_message": DELIVERY_ERRORS.get(error_code) if error_code else None,
            "from": None if early else self.sender_of(message),
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": "0" if early else str(message.num_segments),
            "price": self.price(message) if status in PRICED_STATUSES else None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": status,
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": message.to,
            "uri": uri,
        }


SIMULATOR: web.AppKey[Simulator] = web.AppKey("simulator", Simulator)
