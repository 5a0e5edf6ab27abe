"""The keyword state machine: given who is texting and what they wrote, decide.

Pure: no Flask, ORM or Twilio. The caller loads a :class:`Conversation`, calls
:func:`decide`, and applies the :class:`Decision` in one transaction.

Subscriber status lifecycle::

    NONE ──JOIN/START/SIGN──> SUBSCRIBED ──STOP (or carrier 21610)──> OPTED_OUT
      │                           ^                                      │
      └──────────STOP─────────────┼──────────────> OPTED_OUT             │
                                  └────────JOIN/START/UNSTOP/YES/SIGN────┘
    NONE ──web form, then YES/Y to its confirmation text──> SUBSCRIBED

HELP never changes the status. Anything unrecognised never changes it either: "hi" does
not re-subscribe anyone.

STOP in any reasonable wording is read by :mod:`sms_service.domain.opt_out` before any
keyword: a clear opt-out acts at once; a possible one (misspelt, spaced out, look-alike
letters, "leave me alone", a sentence using an opt-out word) changes nothing but is logged
for staff review, answered once with how to stop, and holds broadcasts until staff decide
(``Conversation.under_review``). Replies follow the number's remembered language
(``Conversation.language``); a keyword written in English or Spanish sets it.

Web double opt-in: a supporter who ticked the SMS box on the petition page is sent one text
asking them to reply YES. Until the caller's window closes
(``Conversation.web_confirmation_until``), YES or Y from that number confirms: the outcome
is ``WEB_CONFIRMED`` (SUBSCRIBED, an opt-in the caller records with source ``web``). STOP
while a confirmation is pending opts out as usual and closes the confirmation; any other
text leaves it open, and a window that passed with no YES subscribes nobody.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from sms_service.domain import opt_out, replies
from sms_service.domain.names import clean_name
from sms_service.domain.opt_out import Reading
from sms_service.domain.replies import Program

OPT_OUT_KEYWORDS = frozenset(
    {
        "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
        "OPT OUT", "OPT-OUT", "UNSUB", "ALTO", "PARAR", "CANCELAR", "BAJA",
    }
)  # fmt: skip
HELP_KEYWORDS = frozenset({"HELP", "INFO", "AYUDA"})
# UNIRSE ("to join") is the Spanish JOIN and START: it opts in from any state, as START does.
JOIN_KEYWORDS = frozenset({"JOIN", "UNIRSE", "UNIRME"})
RESUBSCRIBE_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
SIGN_KEYWORDS = frozenset({"SIGN", "FIRMAR"})
# Answers to a web sign-up's confirmation text; "Y" means yes only while one is pending.
WEB_CONFIRM_KEYWORDS = frozenset({"YES", "Y"})
# A campaign's keyword: 2-20 ASCII letters or digits, stored upper-case.
KEYWORD_SHAPE = re.compile(r"[A-Z0-9]{2,20}")


def could_be_campaign_keyword(text: str) -> bool:
    """Whether ``text`` (any case) has a campaign keyword's shape: anything else names no
    campaign, and is never worth a look-up."""
    return KEYWORD_SHAPE.fullmatch(text.upper()) is not None


RESERVED_KEYWORDS = (
    OPT_OUT_KEYWORDS | HELP_KEYWORDS | JOIN_KEYWORDS | RESUBSCRIBE_KEYWORDS | SIGN_KEYWORDS
)
# The language a keyword is written in becomes the subscriber's language; STOP, INFO,
# YES and campaign keywords are shared by both, and leave it as it was.
KEYWORD_LANGUAGE = {
    "JOIN": "en", "START": "en", "HELP": "en", "SIGN": "en",
    "AYUDA": "es", "UNIRSE": "es", "UNIRME": "es", "FIRMAR": "es",
}  # fmt: skip

NAME_WINDOW = timedelta(hours=24)
REVIEW_BUSINESS_DAYS = 10  # FCC: revocations honoured within 10 business days


class Status(StrEnum):
    """Where a phone number stands with the program."""

    NONE = "none"
    SUBSCRIBED = "subscribed"
    OPTED_OUT = "opted_out"


class Intent(StrEnum):
    """What the message was taken to mean."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    WEB_CONFIRMED = "web_confirmed"
    ALREADY_SUBSCRIBED = "already_subscribed"
    HELP = "help"
    SIGN = "sign"
    ALREADY_SIGNED = "already_signed"
    NO_PETITION = "no_petition"
    NAME = "name"
    POSSIBLE_OPT_OUT = "possible_opt_out"
    FALLBACK = "fallback"
    IGNORED = "ignored"
    UNREACHABLE = "unreachable"  # a sign-up the sender cannot text back (domain.reach)


class ConsentKind(StrEnum):
    """Kinds of consent-log event."""

    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    HELP = "help"
    SIGNATURE = "signature"
    POSSIBLE_OPT_OUT = "possible_opt_out"


@dataclass(frozen=True)
class Campaign:
    """A petition a supporter can sign by keyword."""

    id: int
    keyword: str
    title: str


@dataclass(frozen=True)
class Conversation:
    """What the engine needs to know about the sender, loaded by the caller.

    ``language`` is the one remembered for the number ("en" or "es"). ``under_review`` is
    true while a possible opt-out from this number waits for staff: the number then gets
    no broadcasts, and the engine sends no fallback and no second how-to-stop reply.
    """

    status: Status
    signed: Mapping[int, bool] = field(default_factory=dict)  # campaign id -> has a name
    pending_name: Campaign | None = None
    pending_name_asked_at: datetime | None = None
    pending_signature_count: int = 0
    language: str = "en"
    under_review: bool = False
    # Set while a web sign-up's confirmation text awaits YES: the end of its window.
    web_confirmation_until: datetime | None = None

    def awaits_web_confirmation(self, at: datetime) -> bool:
        """True when a confirmation text was sent and its window is still open at ``at``."""
        return self.web_confirmation_until is not None and at <= self.web_confirmation_until


@dataclass(frozen=True)
class Catalogue:
    """Active campaigns: by their own keyword, and the one SIGN signs."""

    by_keyword: Mapping[str, Campaign] = field(default_factory=dict)
    default: Campaign | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome of one inbound text, to be applied in one transaction.

    ``language`` is the language to remember for the number (None: keep the stored one);
    ``note`` says why a text was taken as a possible opt-out, for the staff reviewing it.
    """

    intent: Intent
    status: Status
    reply: str | None = None
    keyword: str | None = None
    events: tuple[ConsentKind, ...] = ()
    sign: Campaign | None = None
    ask_name: Campaign | None = None
    name: str | None = None
    clear_pending_name: bool = False
    review_by: date | None = None
    language: str | None = None
    note: str | None = None
    # The pending web confirmation is answered (YES) or closed (STOP): the caller records
    # the opt-in with source ``web`` and the page's disclosure instead of an SMS opt-in.
    confirms_web: bool = False
    closes_web_confirmation: bool = False

    @property
    def status_changed(self) -> bool:
        """Never true for HELP, fallbacks or ignored texts."""
        return self.intent in (Intent.OPT_OUT, Intent.OPT_IN, Intent.SIGN, Intent.WEB_CONFIRMED)


def normalise(body: str) -> str:
    """The text as a keyword: cleaned (:func:`opt_out.clean`), without accents, without
    punctuation, symbols or emoji at either end, spaces collapsed, upper-cased."""
    text = opt_out.clean(body)
    decomposed = unicodedata.normalize("NFD", text)
    text = unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    )
    start, end = 0, len(text)
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return text[start:end].upper()


def add_business_days(start: date, days: int) -> date:
    """``days`` working days (Mon–Fri) after ``start``; public holidays are not skipped."""
    current = start
    remaining = days
    while remaining:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def decide(
    body: str,
    conversation: Conversation,
    catalogue: Catalogue,
    program: Program,
    *,
    received_at: datetime,
    carrier_opt_out_type: str | None = None,
) -> Decision:
    """Decide what an inbound text means, what the number's status becomes, and the reply.

    ``carrier_opt_out_type`` is Twilio's ``OptOutType`` (STOP / START / HELP): the
    Messaging Service's Advanced Opt-Out already answered, so the event is recorded the
    same way but no reply is sent (a second reply to an opted-out number fails with 21610).
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    decision = _decide(body, conversation, catalogue, program, received_at)
    carrier_stop = (carrier_opt_out_type or "").strip().upper() == "STOP"
    if carrier_stop and decision.intent is not Intent.OPT_OUT:
        # Twilio opted the number out already (a word of its own list): so do we.
        keyword = normalise(body)[:32] or None
        reading = opt_out.OptOutReading(Reading.CLEAR, "carrier opt-out", keyword)
        decision = _opt_out(conversation, program, reading, received_at)
    if carrier_opt_out_type:
        return replace(decision, reply=None)
    return decision


def _decide(
    body: str,
    conv: Conversation,
    catalogue: Catalogue,
    program: Program,
    received_at: datetime,
) -> Decision:
    reading = opt_out.read(body)
    if reading.reading is Reading.CLEAR:
        return _opt_out(conv, program, reading, received_at)
    key = normalise(body)
    status = conv.status
    language = KEYWORD_LANGUAGE.get(key)
    lang = language or conv.language

    if key in HELP_KEYWORDS:
        reply = replies.help_reply(program, lang, opted_out=status is Status.OPTED_OUT)
        return Decision(Intent.HELP, status, reply, key, (ConsentKind.HELP,), language=language)
    if key in WEB_CONFIRM_KEYWORDS and conv.awaits_web_confirmation(received_at):
        reply = replies.opt_in_confirmation(program, lang)
        return Decision(
            Intent.WEB_CONFIRMED, Status.SUBSCRIBED, reply, key, (ConsentKind.OPT_IN,),
            confirms_web=True,
        )  # fmt: skip
    if key in JOIN_KEYWORDS or (
        key in RESUBSCRIBE_KEYWORDS and (status is Status.OPTED_OUT or key == "START")
    ):
        if status is Status.SUBSCRIBED:
            reply = replies.already_subscribed(program, lang)
            return Decision(Intent.ALREADY_SUBSCRIBED, status, reply, key, language=language)
        reply = replies.opt_in_confirmation(program, lang)
        return Decision(
            Intent.OPT_IN, Status.SUBSCRIBED, reply, key, (ConsentKind.OPT_IN,), language=language
        )
    if key in RESUBSCRIBE_KEYWORDS and status is Status.SUBSCRIBED:
        reply = replies.already_subscribed(program, lang)
        return Decision(Intent.ALREADY_SUBSCRIBED, status, reply, key, language=language)
    campaign = catalogue.by_keyword.get(key)
    if key in SIGN_KEYWORDS or campaign is not None:
        decision = _sign(campaign or catalogue.default, key, conv, program, lang)
        return replace(decision, language=language)

    pending = conv.pending_name
    asked = conv.pending_name_asked_at
    if (
        pending is not None
        and asked is not None
        and received_at - asked <= NAME_WINDOW
        and reading.reading is Reading.NONE
        and (name := clean_name(body)) is not None
    ):
        count = conv.pending_signature_count
        reply = replies.name_thanks(program, name, pending.title, count, conv.language)
        return Decision(
            Intent.NAME, status, reply, None, name=name, sign=pending, clear_pending_name=True
        )

    if reading.reading is Reading.POSSIBLE:
        return _possible_opt_out(conv, program, reading, received_at)
    # While staff review a possible opt-out the number is not told it was misunderstood:
    # it already had the one how-to-stop reply.
    if status is Status.SUBSCRIBED and not conv.under_review:
        return Decision(Intent.FALLBACK, status, replies.fallback(program, conv.language))
    return Decision(Intent.IGNORED, status)


def _opt_out(
    conv: Conversation, program: Program, reading: opt_out.OptOutReading, received_at: datetime
) -> Decision:
    # Exactly one confirmation: a number already opted out gets silence, though the
    # request is still logged.
    lang = reading.language or conv.language
    reply = None if conv.status is Status.OPTED_OUT else replies.opt_out_confirmation(program, lang)
    return Decision(
        Intent.OPT_OUT,
        Status.OPTED_OUT,
        reply,
        reading.keyword,
        (ConsentKind.OPT_OUT,),
        clear_pending_name=conv.pending_name is not None,
        closes_web_confirmation=conv.awaits_web_confirmation(received_at),
        language=reading.language,
    )


def _possible_opt_out(
    conv: Conversation, program: Program, reading: opt_out.OptOutReading, received_at: datetime
) -> Decision:
    """Held for staff: status unchanged, broadcasts held meanwhile (the caller's audience
    code sees the open review), and at most one short reply saying how to stop."""
    lang = reading.language or conv.language
    answer = conv.status is Status.SUBSCRIBED and not conv.under_review
    return Decision(
        Intent.POSSIBLE_OPT_OUT,
        conv.status,
        replies.how_to_stop(program, lang) if answer else None,
        None,
        (ConsentKind.POSSIBLE_OPT_OUT,),
        review_by=add_business_days(received_at.date(), REVIEW_BUSINESS_DAYS),
        note=f"possible opt-out: {reading.why}",
    )


def _sign(
    campaign: Campaign | None, key: str, conv: Conversation, program: Program, lang: str
) -> Decision:
    if campaign is None:
        reply = replies.no_open_petition(program, lang)
        return Decision(Intent.NO_PETITION, conv.status, reply, key)
    subscribing = conv.status is not Status.SUBSCRIBED
    opt_in = (ConsentKind.OPT_IN,) if subscribing else ()
    if campaign.id in conv.signed:
        has_name = conv.signed[campaign.id]
        reply = (
            replies.signed_before_and_resubscribed(program, campaign.title, not has_name, lang)
            if subscribing
            else replies.already_signed(program, campaign.title, not has_name, lang)
        )
        return Decision(
            Intent.ALREADY_SIGNED if not subscribing else Intent.OPT_IN,
            Status.SUBSCRIBED,
            reply,
            key,
            opt_in,
            ask_name=None if has_name else campaign,
        )
    reply = replies.signed_and_subscribed(program, campaign.title, lang)
    return Decision(
        Intent.SIGN,
        Status.SUBSCRIBED,
        reply,
        key,
        (ConsentKind.SIGNATURE, *opt_in),
        sign=campaign,
        ask_name=campaign,
    )
