"""Twilio's REST API for Messages, as the official client uses it.

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` sends (HTTP 201);
* ``GET  .../Messages.json`` lists, newest first, with ``To``, ``From``, ``DateSent``
  (``DateSent<``, ``DateSent>``; by GMT day, and like Twilio a message still queued has no
  DateSent yet) and ``PageSize``/``Page``/``PageToken``;
* ``GET  .../Messages/{Sid}.json`` fetches (404 with code 20404 when unknown).

Every request needs HTTP basic auth with the account sid and auth token (401, code 20003).
Past ``max_concurrency`` requests in flight the answer is 429 (code 20429); a fraction
``error_rate`` of sends is answered 500. Refusals are counted by code in the stats.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from urllib.parse import unquote_plus, urlencode

from aiohttp import web

from sms_service.devtools.carrier_sim.simulator import SIMULATOR, Simulator, parse_number
from sms_service.devtools.carrier_sim.store import SimMessage
from sms_service.devtools.carrier_sim.twilio_shapes import (
    error_response,
    json_response,
    messages_uri,
)

MAX_BODY_UNITS = 1600
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000


def parse_form(text: str) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (the last value wins).

    Same result as ``dict(parse_qsl(text, keep_blank_values=True))``, but values without
    escapes skip the unquoting, which is most of a send's cost here.
    """
    form = {}
    for pair in text.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        form[key] = value
    return form


def _refuse(sim: Simulator, code: int, message: str | None = None) -> web.Response:
    sim.stats.rejected[code] += 1
    if code == 20003:
        return error_response(code, message, **{"WWW-Authenticate": 'Basic realm="Twilio API"'})
    return error_response(code, message)


def _authorised(request: web.Request, sim: Simulator) -> bool:
    # Comparing whole headers is enough: the simulator holds no real secret.
    if request.headers.get("Authorization", "") != sim.auth_header:
        return False
    path_account = request.match_info.get("account_sid")
    return path_account is None or path_account == sim.config.account_sid


async def create_message(request: web.Request) -> web.Response:
    """Accept (or refuse) one send, answering after the simulated latency."""
    sim = request.app[SIMULATOR]
    if sim.in_flight >= sim.config.max_concurrency:
        return _refuse(sim, 20429)
    sim.in_flight += 1
    if sim.in_flight > sim.stats.peak_in_flight:
        sim.stats.peak_in_flight = sim.in_flight
    try:
        if not _authorised(request, sim):
            return _refuse(sim, 20003)
        form = parse_form((await request.read()).decode())
        delay = sim.delay()
        if sim.fails_now():
            await asyncio.sleep(delay)
            return _refuse(sim, 20500)
        refusal = _validate(sim, form)
        if refusal is not None:
            await asyncio.sleep(delay)
            return refusal
        validity = form.get("ValidityPeriod")
        # Stored before the wait: a client that times out can still find it by listing.
        message = sim.accept(
            to=form["To"],
            from_=form.get("From") or None,
            body=form["Body"],
            messaging_service_sid=form.get("MessagingServiceSid") or None,
            status_callback=form.get("StatusCallback") or None,
            validity_period=int(validity) if validity and validity.isdigit() else None,
            respond_after=delay,
        )
        if delay:
            await asyncio.sleep(delay)
        return json_response(sim.resource(message, time.time(), as_created=True), status=201)
    finally:
        sim.in_flight -= 1


def _validate(sim: Simulator, form: dict[str, str]) -> web.Response | None:
    """Twilio's refusal for a bad send, or None; normalises ``form["To"]`` to E.164."""
    raw_to = form.get("To", "").strip()
    if not raw_to:
        return _refuse(sim, 21604)
    to = parse_number(raw_to)
    if to is None:
        return _refuse(sim, 21211, f"The 'To' number {raw_to} is not a valid phone number.")
    form["To"] = to
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return _refuse(sim, 21603)
    body = form.get("Body", "")
    if not body and not form.get("MediaUrl"):
        return _refuse(sim, 21602)
    form["Body"] = body
    if len(body.encode("utf-16-le")) // 2 > MAX_BODY_UNITS:
        return _refuse(sim, 21617)
    if to in sim.opt_outs:
        return _refuse(sim, 21610)
    return None


async def fetch_message(request: web.Request) -> web.Response:
    """One Message resource, or 404 (code 20404)."""
    sim = request.app[SIMULATOR]
    if not _authorised(request, sim):
        return _refuse(sim, 20003)
    message = sim.store.get(request.match_info["sid"])
    if message is None:
        return _refuse(sim, 20404, f"The requested resource {request.path} was not found")
    return json_response(sim.resource(message, time.time()))


@dataclass(frozen=True)
class ListFilter:
    """The filters of a list request. Like Twilio, ``DateSent`` compares GMT days, and
    ``DateSent<``/``DateSent>`` include the day given."""

    to: str | None = None
    from_: str | None = None
    days: tuple[tuple[str, date], ...] = ()

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ListFilter:
        """Read ``To``, ``From`` and the ``DateSent`` family; ValueError for a bad date."""
        days = tuple(
            (op, date.fromisoformat(query[key].strip()[:10]))  # a datetime keeps its day
            for key, op in (("DateSent", "="), ("DateSent<", "<"), ("DateSent>", ">"))
            if query.get(key)
        )
        raw_to = query.get("To")
        to = (parse_number(raw_to) or raw_to) if raw_to else None
        return cls(to=to, from_=query.get("From") or None, days=days)

    def matches(self, message: SimMessage, sender: str, now: float) -> bool:
        """True when ``message`` (sent by ``sender``) passes every filter but ``to`` at
        ``now``. A message not yet sent has no DateSent, so any DateSent filter skips it."""
        if self.from_ and sender != self.from_:
            return False
        if self.days:
            if now < message.sent_at:
                return False
            sent = date(*time.gmtime(message.sent_at)[:3])
            for op, day in self.days:
                if (op == "=" and sent != day) or (op == "<" and sent > day):
                    return False
                if op == ">" and sent < day:
                    return False
        return True


def select(
    sim: Simulator, wanted: ListFilter, *, skip: int, after_sid: str | None, limit: int
) -> list[SimMessage] | None:
    """Up to ``limit`` matching messages, newest first, after the first ``skip`` matches
    or after the message ``after_sid``; None when that message is no longer kept."""
    selected: list[SimMessage] = []
    waiting = after_sid is not None
    now = time.time()
    for message in sim.store.newest_first(wanted.to):
        if not wanted.matches(message, sim.sender_of(message), now):
            continue
        if waiting:
            waiting = message.sid != after_sid
            continue
        if skip:
            skip -= 1
            continue
        selected.append(message)
        if len(selected) >= limit:
            break
    return None if waiting else selected


async def list_messages(request: web.Request) -> web.Response:
    """A page of messages, newest first, shaped like Twilio's list answer."""
    sim = request.app[SIMULATOR]
    if not _authorised(request, sim):
        return _refuse(sim, 20003)
    query = request.query
    try:
        wanted = ListFilter.from_query(query)
        page_size = min(int(query.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        page = int(query.get("Page", 0))
    except ValueError as exc:
        return _refuse(sim, 20001, f"Invalid parameter: {exc}")
    if page_size < 1 or page < 0:
        return _refuse(sim, 20001, "PageSize must be at least 1 and Page at least 0")
    token = query.get("PageToken", "")
    after_sid = token[2:] if token.startswith("PA") else None

    limit = page_size + 1  # one extra message tells whether there is a next page
    selected = None
    if after_sid is not None:
        selected = select(sim, wanted, skip=0, after_sid=after_sid, limit=limit)
    if selected is None:  # no token, or its message was forgotten: count pages from the top
        selected = select(sim, wanted, skip=page * page_size, after_sid=None, limit=limit)
    has_next = len(selected) > page_size
    selected = selected[:page_size]
    now = time.time()
    start = page * page_size
    return json_response(
        {
            "first_page_uri": _page_uri(sim, query, page_size, 0, None),
            "end": start + max(len(selected) - 1, 0),
            "previous_page_uri": _page_uri(sim, query, page_size, page - 1, None) if page else None,
            "messages": [sim.resource(m, now) for m in selected],
            "uri": request.path_qs,
            "page_size": page_size,
            "start": start,
            "next_page_uri": (
                _page_uri(sim, query, page_size, page + 1, "PA" + selected[-1].sid)
                if has_next
                else None
            ),
            "page": page,
        }
    )


def _page_uri(
    sim: Simulator, query: Mapping[str, str], page_size: int, page: int, token: str | None
) -> str:
    params = [(k, v) for k, v in query.items() if k not in ("PageSize", "Page", "PageToken")]
    params += [("PageSize", str(page_size)), ("Page", str(page))]
    if token:
        params.append(("PageToken", token))
    return messages_uri(sim.config.account_sid) + "?" + urlencode(params)


async def not_found(request: web.Request) -> web.Response:
    """Any other API path: Twilio's 404 (after authentication, as Twilio does)."""
    sim = request.app[SIMULATOR]
    if not _authorised(request, sim):
        return _refuse(sim, 20003)
    return _refuse(sim, 20404, f"The requested resource {request.path} was not found")


def add_routes(app: web.Application) -> None:
    """Register the Twilio API routes on ``app``."""
    base = "/2010-04-01/Accounts/{account_sid}"
    app.router.add_post(base + "/Messages.json", create_message)
    app.router.add_get(base + "/Messages.json", list_messages)
    app.router.add_get(base + "/Messages/{sid}.json", fetch_message)
    app.router.add_route("*", "/2010-04-01/{tail:.*}", not_found)
