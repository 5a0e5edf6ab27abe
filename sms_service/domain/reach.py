"""Which numbers the program's sender can text at all.

Pure: no Flask, ORM, Twilio or Redis. A short code is a national thing: a US or Canadian
short code reaches phones on that country's networks and nowhere else, so a supporter at
+44 who signs up would be told nothing and sent nothing while being counted as a
subscriber. A long number (``+1 202 …``, a toll-free number) or a Messaging Service can
send abroad (subject to the account's geographic permissions), so no rule applies to it.

Callers: inbound sign-up (JOIN, SIGN, START), the web petition form, and the broadcast gate
(a subscriber the sender cannot reach is skipped with reason ``unreachable``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers

from sms_service.domain.keywords import Decision, Intent, Status
from sms_service.domain.replies import Program

_SHORT_CODE = re.compile(r"^\d{3,8}$")
_REGION_NAMES = {"US": "the US", "CA": "Canada", "GB": "the UK"}


def region_of(phone: str) -> str | None:
    """The ISO region of an E.164 number (``US``, ``CA``, ``GB``…), None when unknown."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    if region in (None, "ZZ") and parsed.country_code != 1:
        # Not a valid number there, but its country code still says where it is.
        region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return None if region in (None, "ZZ") else region


def region_name(region: str | None) -> str:
    """A region for a sentence: "the US", "Canada", "GB"… ("an unknown country")."""
    if not region:
        return "an unknown country"
    return _REGION_NAMES.get(region, region)


@dataclass(frozen=True)
class Reach:
    """The regions the sender reaches (None: no limit) and how to say why a number is out.

    Build one with :func:`reach_of`; ask :meth:`refusal` about each number.
    """

    sender: str
    regions: frozenset[str] | None = None
    _cache: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    def refusal(self, phone: str) -> str | None:
        """None if the sender can text ``phone`` (E.164); else a sentence saying why not."""
        if self.regions is None:
            return None
        if phone.startswith("+1"):
            # A North American number's area code says where it is: one lookup per code.
            key = phone[:5]
            if key not in self._cache:
                # An area code phonenumbers cannot place is taken as the US's (the
                # country code's main region), not refused.
                region = region_of(phone) or "US"
                self._cache[key] = None if region in self.regions else region
            region = self._cache[key]
        else:
            found = region_of(phone)
            region = None if found in self.regions else found or "??"
        if region is None:
            return None
        where = " or ".join(region_name(r) for r in sorted(self.regions))
        return (
            f"texts from short code {self.sender} reach only numbers in {where}, "
            f"not {region_name(None if region == '??' else region)}"
        )

    def reaches(self, phone: str) -> bool:
        """True if the sender can text ``phone``."""
        return self.refusal(phone) is None


def reach_of(
    sender: str | None, *, messaging_service: bool = False, short_code_regions: str = "US,CA"
) -> Reach:
    """The reach of the program's sender: a short code (3-8 digits) reaches only
    ``short_code_regions`` (comma-separated ISO codes); a number or a Messaging Service is
    not limited here."""
    sender = (sender or "").strip()
    if messaging_service or not _SHORT_CODE.match(sender):
        return Reach(sender=sender)
    regions = frozenset(r.strip().upper() for r in short_code_regions.split(",") if r.strip())
    return Reach(sender=sender, regions=regions or None)


SIGN_UPS = frozenset({Intent.OPT_IN, Intent.SIGN, Intent.WEB_CONFIRMED})


def refuse_unreachable(
    decision: Decision, phone: str, reach: Reach | None, program: Program
) -> Decision:
    """``decision`` as it is, unless it would sign up (JOIN, START, SIGN, a web confirmation)
    a number the sender cannot reach: then a refusal that changes nothing, records no
    consent and says why."""
    if reach is None or (decision.intent not in SIGN_UPS and decision.sign is None):
        return decision
    refusal = reach.refusal(phone)
    if refusal is None:
        return decision
    return Decision(
        intent=Intent.UNREACHABLE,
        status=Status.NONE,
        reply=f"{program.name}: sorry, {refusal}, so we cannot sign you up. Nothing was recorded.",
        keyword=decision.keyword,
    )
