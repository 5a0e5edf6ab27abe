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

from sms_service.domain import replies
from sms_service.domain.replies import Program

OPT_OUT_KEYWORDS = frozenset(
    {
        "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
        "OPT OUT", "OPT-OUT", "ALTO", "PARAR", "CANCELAR",
    }
)  # fmt: skip
HELP_KEYWORDS = frozenset({"HELP", "INFO", "AYUDA"})
JOIN_KEYWORDS = frozenset({"JOIN"})
RESUBSCRIBE_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
SIGN_KEYWORDS = frozenset({"SIGN"})
# Answers to a web sign-up's confirmation text; "Y" means yes only while one is pending.
WEB_CONFIRM_KEYWORDS = frozenset({"YES", "Y"})
RESERVED_KEYWORDS = (
    OPT_OUT_KEYWORDS | HELP_KEYWORDS | JOIN_KEYWORDS | RESUBSCRIBE_KEYWORDS | SIGN_KEYWORDS
)

# Plain-language requests to stop: each phrase must appear as whole words.
OPT_OUT_PHRASES = (
    "please stop texting me", "stop texting me", "stop texting", "stop messaging me",
    "stop sending me", "stop sending", "remove me", "take me off", "wrong number",
    "leave me alone", "unsubscribe me", "dont text me", "do not text me", "dont message me",
    "do not message me", "no more texts", "no more messages",
)  # fmt: skip

# Words that, inside a longer message, might mean "stop" and need a human to decide.
OPT_OUT_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "alto",
     "parar", "cancelar"}
)  # fmt: skip

NAME_WINDOW = timedelta(hours=24)
REVIEW_BUSINESS_DAYS = 10  # FCC: revocations honoured within 10 business days
MAX_NAME_LENGTH = 100

_TRAILING_PUNCTUATION = ".!?,;:¡¿\"'“”‘’)( "
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


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
    """What the engine needs to know about the sender, loaded by the caller."""

    status: Status
    signed: Mapping[int, bool] = field(default_factory=dict)  # campaign id -> has a name
    pending_name: Campaign | None = None
    pending_name_asked_at: datetime | None = None
    pending_signature_count: int = 0
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
    """The outcome of one inbound text, to be applied in one transaction."""

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
    # The pending web confirmation is answered (YES) or closed (STOP): the caller records
    # the opt-in with source ``web`` and the page's disclosure instead of an SMS opt-in.
    confirms_web: bool = False
    closes_web_confirmation: bool = False

    @property
    def status_changed(self) -> bool:
        """Never true for HELP, fallbacks or ignored texts."""
        return self.intent in (Intent.OPT_OUT, Intent.OPT_IN, Intent.SIGN, Intent.WEB_CONFIRMED)


def normalise(body: str) -> str:
    """Upper-case, collapse spaces, drop surrounding whitespace and trailing punctuation."""
    text = unicodedata.normalize("NFKC", body or "")
    text = _SPACES.sub(" ", text).strip().strip(_TRAILING_PUNCTUATION).strip()
    return text.upper()


def _words(body: str) -> list[str]:
    text = unicodedata.normalize("NFKC", body or "").lower()
    text = text.replace("’", "").replace("'", "")
    return _WORD.findall(text)


def _contains_phrase(words: list[str], phrase: str) -> bool:
    target = phrase.split()
    n = len(target)
    return any(words[i : i + n] == target for i in range(len(words) - n + 1))


def is_plain_language_opt_out(body: str) -> bool:
    """True for "please stop texting me", "wrong number", "remove me" and the like."""
    words = _words(body)
    return any(_contains_phrase(words, phrase) for phrase in OPT_OUT_PHRASES)


def mentions_opt_out_word(body: str) -> bool:
    """True when an opt-out word appears inside a longer message ("STOP this bill!")."""
    words = _words(body)
    joined = set(words) | {w.replace("-", "") for w in words}
    return bool(joined & OPT_OUT_WORDS) or _contains_phrase(words, "opt out")


def add_business_days(start: date, days: int) -> date:
    """``days`` working days (Mon–Fri) after ``start``; public holidays are not skipped."""
    current = start
    remaining = days
    while remaining:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def _clean_name(body: str) -> str | None:
    name = _SPACES.sub(" ", unicodedata.normalize("NFKC", body or "")).strip().strip(".!")
    if not name or len(name) > MAX_NAME_LENGTH or not any(ch.isalpha() for ch in name):
        return None
    return name


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
    key = normalise(body)
    status = conv.status

    if key in OPT_OUT_KEYWORDS or is_plain_language_opt_out(body):
        return _opt_out(conv, program, key if key in OPT_OUT_KEYWORDS else None, received_at)
    if key in HELP_KEYWORDS:
        reply = replies.help_reply(program)
        return Decision(Intent.HELP, status, reply, key, (ConsentKind.HELP,))
    if key in WEB_CONFIRM_KEYWORDS and conv.awaits_web_confirmation(received_at):
        reply = replies.opt_in_confirmation(program)
        return Decision(
            Intent.WEB_CONFIRMED, Status.SUBSCRIBED, reply, key, (ConsentKind.OPT_IN,),
            confirms_web=True,
        )  # fmt: skip
    if key in JOIN_KEYWORDS or (
        key in RESUBSCRIBE_KEYWORDS and (status is Status.OPTED_OUT or key == "START")
    ):
        if status is Status.SUBSCRIBED:
            reply = replies.already_subscribed(program)
            return Decision(Intent.ALREADY_SUBSCRIBED, status, reply, key)
        reply = replies.opt_in_confirmation(program)
        return Decision(Intent.OPT_IN, Status.SUBSCRIBED, reply, key, (ConsentKind.OPT_IN,))
    if key in RESUBSCRIBE_KEYWORDS and status is Status.SUBSCRIBED:
        return Decision(Intent.ALREADY_SUBSCRIBED, status, replies.already_subscribed(program), key)
    campaign = catalogue.by_keyword.get(key)
    if key in SIGN_KEYWORDS or campaign is not None:
        return _sign(campaign or catalogue.default, key, conv, program)

    pending = conv.pending_name
    asked = conv.pending_name_asked_at
    if (
        pending is not None
        and asked is not None
        and received_at - asked <= NAME_WINDOW
        and not mentions_opt_out_word(body)
        and (name := _clean_name(body)) is not None
    ):
        reply = replies.name_thanks(program, name, pending.title, conv.pending_signature_count)
        return Decision(
            Intent.NAME, status, reply, None, name=name, sign=pending, clear_pending_name=True
        )

    if mentions_opt_out_word(body):
        review_by = add_business_days(received_at.date(), REVIEW_BUSINESS_DAYS)
        reply = replies.fallback(program) if status is Status.SUBSCRIBED else None
        return Decision(
            Intent.POSSIBLE_OPT_OUT,
            status,
            reply,
            None,
            (ConsentKind.POSSIBLE_OPT_OUT,),
            review_by=review_by,
        )
    if status is Status.SUBSCRIBED:
        return Decision(Intent.FALLBACK, status, replies.fallback(program))
    return Decision(Intent.IGNORED, status)


def _opt_out(
    conv: Conversation, program: Program, keyword: str | None, received_at: datetime
) -> Decision:
    # Exactly one confirmation: a number already opted out gets silence, though the
    # request is still logged.
    reply = None if conv.status is Status.OPTED_OUT else replies.opt_out_confirmation(program)
    return Decision(
        Intent.OPT_OUT,
        Status.OPTED_OUT,
        reply,
        keyword,
        (ConsentKind.OPT_OUT,),
        clear_pending_name=conv.pending_name is not None,
        closes_web_confirmation=conv.awaits_web_confirmation(received_at),
    )


def _sign(campaign: Campaign | None, key: str, conv: Conversation, program: Program) -> Decision:
    if campaign is None:
        return Decision(Intent.NO_PETITION, conv.status, replies.no_open_petition(program), key)
    subscribing = conv.status is not Status.SUBSCRIBED
    opt_in = (ConsentKind.OPT_IN,) if subscribing else ()
    if campaign.id in conv.signed:
        has_name = conv.signed[campaign.id]
        reply = (
            replies.signed_before_and_resubscribed(program, campaign.title, not has_name)
            if subscribing
            else replies.already_signed(program, campaign.title, ask_name=not has_name)
        )
        return Decision(
            Intent.ALREADY_SIGNED if not subscribing else Intent.OPT_IN,
            Status.SUBSCRIBED,
            reply,
            key,
            opt_in,
            ask_name=None if has_name else campaign,
        )
    reply = replies.signed_and_subscribed(program, campaign.title)
    return Decision(
        Intent.SIGN,
        Status.SUBSCRIBED,
        reply,
        key,
        (ConsentKind.SIGNATURE, *opt_in),
        sign=campaign,
        ask_name=campaign,
    )
