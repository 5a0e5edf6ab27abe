"""Driving the service like a phone: ``POST /sim/inbound``.

The simulator builds the form Twilio posts for an incoming text, signs it with the auth
token over the webhook URL, posts it to ``webhook_url`` and reads the replies out of the
TwiML answer. The form is plain, as from a short code: only when the simulator plays a
Messaging Service with Advanced Opt-Out (``SimConfig.advanced_opt_out``) do Twilio's
keywords carry ``OptOutType``, meaning Twilio answered them. Texts that are its opt-out
words (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT) put the sender on the simulator's
opt-out list either way, so later API sends to it are refused with 21610; opt-in words
(START, UNSTOP, YES) take it off again. Opt-outs are kept per number, which is what a
service with one short code sees.
"""

from __future__ import annotations

import logging
import time

import aiohttp
from aiohttp import web

from sms_service.carrier.twiml import inbound_form, twiml_replies
from sms_service.devtools.carrier_sim.simulator import SIMULATOR, Simulator, parse_number
from sms_service.devtools.carrier_sim.store import Entry
from sms_service.devtools.carrier_sim.twilio_shapes import json_response, new_sid

log = logging.getLogger(__name__)

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
_UNSET = object()


def opt_out_type(body: str) -> str | None:
    """Twilio's ``OptOutType`` for a text that is exactly one of its keywords, else None."""
    word = body.strip().strip(".!").strip().upper()
    if word in OPT_OUT_WORDS:
        return "STOP"
    if word in OPT_IN_WORDS:
        return "START"
    if word in HELP_WORDS:
        return "HELP"
    return None


def inbound_params(sim: Simulator, *, sid: str, from_: str, to: str, body: str) -> dict:
    """The form fields Twilio posts to the incoming-message webhook."""
    return inbound_form(sid=sid, account_sid=sim.config.account_sid, from_=from_, to=to, body=body)


async def inbound(request: web.Request) -> web.Response:
    """A supporter texts the service: sign, post to the webhook, return its replies.

    JSON in: ``{"from": "+1...", "body": "...", "to": optional, "opt_out_type": optional}``
    (``opt_out_type`` absent: set from the keyword with Advanced Opt-Out, else left out;
    null: left out). JSON out: the
    message sid, the webhook's HTTP status and the reply bodies. Without a webhook URL
    the text is refused (409) and nothing changes: use ``/sim/optouts`` instead.
    """
    sim = request.app[SIMULATOR]
    try:
        data = await request.json()
    except ValueError:
        return json_response({"error": "send a JSON object"}, status=400)
    if not isinstance(data, dict):
        return json_response({"error": "send a JSON object"}, status=400)
    from_ = parse_number(data.get("from"))
    body = data.get("body")
    if from_ is None or not isinstance(body, str):
        return json_response({"error": "'from' (a valid number) and 'body' are required"}, 400)
    webhook = sim.config.webhook_url
    if not webhook:
        return json_response({"error": "the simulator was started without --webhook-url"}, 409)
    to = str(data.get("to") or sim.config.short_code)
    kind = data.get("opt_out_type", _UNSET)
    keyword = opt_out_type(body)
    if kind is _UNSET:
        kind = keyword if sim.config.advanced_opt_out else None
    elif kind is not None:
        kind = str(kind).strip().upper() or None

    # Twilio keeps its opt-out list by keyword whether or not it answers them itself.
    if "STOP" in (kind, keyword):
        sim.opt_outs.add(from_)
    elif "START" in (kind, keyword):
        sim.opt_outs.discard(from_)
    sid = new_sid("SM", sim.rng)
    params = inbound_params(sim, sid=sid, from_=from_, to=to, body=body)
    if kind:
        params["OptOutType"] = str(kind)
    sim.stats.inbound += 1
    sim.conversations.append(from_, Entry(time.time(), "inbound", body, sid))

    status, text, error = await _post_webhook(sim, webhook, params)
    replies: list[str] = []
    if status == 200 and text.strip():
        try:
            replies = twiml_replies(text)
        except ValueError as exc:
            error = f"the webhook's answer is not TwiML: {exc}"
    for reply in replies:
        sim.conversations.append(from_, Entry(time.time(), "outbound-reply", reply))
    answer = {
        "message_sid": sid,
        "from": from_,
        "to": to,
        "opt_out_type": kind,
        "webhook_status": status,
        "replies": replies,
    }
    if error:
        answer["error"] = error
    return json_response(answer, status=200 if status is not None else 502)


async def _post_webhook(sim: Simulator, url: str, params: dict) -> tuple[int | None, str, str]:
    signature = sim.validator.compute_signature(url, params)
    headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
    session = sim.callbacks.session
    assert session is not None, "the application has not started"
    try:
        async with session.post(url, data=params, headers=headers) as resp:
            return resp.status, await resp.text(), ""
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("inbound webhook %s failed: %r", url, exc)
        return None, "", f"webhook unreachable: {exc!r}"
