"""The simulator's own endpoints under ``/sim/`` (no Twilio auth; loopback only).

* ``GET /sim/health``; ``GET /sim/stats`` (counts and accepted sends per second);
* ``GET /sim/messages[?to=&limit=&direction=]`` everything a phone was sent, newest first:
  accepted API sends (``direction`` ``outbound-api``) and the webhook's keyword replies
  (``outbound-reply``); ``direction=`` keeps one kind;
  ``DELETE /sim/messages`` forgets them, the conversations and the stats;
* ``GET|POST|DELETE /sim/optouts`` (``{"number": ...}`` or ``?number=``; DELETE without a
  number clears the list);
* ``POST|DELETE /sim/outcomes`` presets how sends to a number end, e.g.
  ``{"number": "+1...", "status": "failed", "error_code": 30007}``;
* ``GET /sim/conversations/{number}``: inbound texts, webhook replies and API sends.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from sms_service.devtools.carrier_sim.phone import inbound
from sms_service.devtools.carrier_sim.simulator import (
    FINAL_STATUSES,
    SIMULATOR,
    Simulator,
    parse_number,
)
from sms_service.devtools.carrier_sim.twilio_shapes import DELIVERY_ERRORS, json_response

OUTCOME_STATUSES = FINAL_STATUSES  # the fates a test may preset


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


async def _number_from(request: web.Request) -> tuple[str | None, str | None, dict]:
    """The ``number`` of a control request (JSON body or query): in E.164 (None when
    missing or not a number), as given, and the body."""
    data: dict = {}
    if request.can_read_body:
        try:
            loaded = await request.json()
        except ValueError:
            loaded = None
        data = loaded if isinstance(loaded, dict) else {}
    raw = data.get("number") or request.query.get("number")
    return (parse_number(raw) if raw else None), raw, data


def _bad_number() -> web.Response:
    return json_response({"error": "'number' must be a valid phone number"}, status=400)


async def health(request: web.Request) -> web.Response:
    """Liveness, for scripts waiting for the simulator to start."""
    sim = request.app[SIMULATOR]
    uptime = round(time.time() - sim.started, 3)
    return json_response({"status": "ok", "uptime_s": uptime, "messages": len(sim.store)})


async def stats(request: web.Request) -> web.Response:
    """Counters and the per-second histogram of accepted sends."""
    sim = request.app[SIMULATOR]
    counters = sim.stats
    return json_response(
        {
            "accepted": counters.accepted,
            "rejected": {str(code): n for code, n in sorted(counters.rejected.items())},
            "rejected_total": sum(counters.rejected.values()),
            "in_flight": sim.in_flight,
            "peak_in_flight": counters.peak_in_flight,
            "callbacks": {
                "sent": counters.callbacks_sent,
                "failed": counters.callbacks_failed,
                "pending_messages": sim.callbacks.pending,
            },
            "inbound": counters.inbound,
            "stored": len(sim.store),
            "evicted": sim.store.evicted,
            "opt_outs": len(sim.opt_outs),
            "accepted_per_second": counters.rate_summary(),
            "per_second": [
                {"second": second, "accepted": n} for second, n in counters.per_second.items()
            ],
        }
    )


async def list_sent(request: web.Request) -> web.Response:
    """What phones were sent, newest first: API sends as Twilio shows them (plus the
    callback URL) and the keyword replies the webhook answered with."""
    sim = request.app[SIMULATOR]
    raw_to = request.query.get("to")
    to = (parse_number(raw_to) or raw_to) if raw_to else None
    direction = request.query.get("direction")
    if direction not in (None, "outbound-api", "outbound-reply"):
        return json_response(
            {"error": "direction must be outbound-api or outbound-reply"}, status=400
        )
    try:
        limit = int(request.query["limit"]) if "limit" in request.query else None
    except ValueError:
        return json_response({"error": "limit must be a number"}, status=400)
    now = time.time()
    found: list[tuple[float, dict]] = []
    if direction != "outbound-reply":
        for message in sim.store.newest_first(to):
            if limit is not None and len(found) >= limit:
                break
            resource = sim.resource(message, now) | {"status_callback": message.status_callback}
            found.append((message.created, resource))
    if direction != "outbound-api":
        for number, entry in sim.conversations.replies(to):
            found.append((entry.at, _reply_resource(sim, number, entry)))
    found.sort(key=lambda item: item[0], reverse=True)
    messages = [resource for _, resource in found[:limit]]
    return json_response({"messages": messages, "count": len(messages)})


def _reply_resource(sim: Simulator, number: str, entry) -> dict:
    """A keyword reply in the shape of a message resource (TwiML replies have no sid of
    their own in the simulator)."""
    return {
        "sid": None,
        "direction": "outbound-reply",
        "to": number,
        "from": sim.config.short_code,
        "body": entry.body,
        "status": "delivered",
        "date_created": _iso(entry.at),
    }


async def clear_sent(request: web.Request) -> web.Response:
    """Forget messages, conversations and stats; pending callbacks are dropped."""
    sim = request.app[SIMULATOR]
    await sim.callbacks.cancel_pending()
    sim.store.clear()
    sim.conversations.clear()
    sim.reset_stats()
    return web.Response(status=204)


async def list_opt_outs(request: web.Request) -> web.Response:
    """Numbers the simulator refuses to send to (21610)."""
    return json_response({"opt_outs": sorted(request.app[SIMULATOR].opt_outs)})


async def add_opt_out(request: web.Request) -> web.Response:
    """Opt a number out, as if it had texted STOP."""
    number, _, _ = await _number_from(request)
    if number is None:
        return _bad_number()
    request.app[SIMULATOR].opt_outs.add(number)
    return json_response({"number": number, "opted_out": True}, status=201)


async def remove_opt_out(request: web.Request) -> web.Response:
    """Opt a number back in (or, with no number, clear the list)."""
    sim = request.app[SIMULATOR]
    number, raw, _ = await _number_from(request)
    if number is None and raw:
        return _bad_number()
    if number is None:
        sim.opt_outs.clear()
    else:
        sim.opt_outs.discard(number)
    return web.Response(status=204)


async def set_outcome(request: web.Request) -> web.Response:
    """Preset the final status (and error code) of later sends to a number."""
    sim = request.app[SIMULATOR]
    number, _, data = await _number_from(request)
    if number is None:
        return _bad_number()
    status = str(data.get("status", "")).lower()
    code = data.get("error_code")
    if status not in OUTCOME_STATUSES or (code is not None and not isinstance(code, int)):
        return json_response(
            {"error": f"status must be one of {sorted(OUTCOME_STATUSES)}, error_code an int"},
            status=400,
        )
    if status != "delivered" and code is None:
        code = 30003
    sim.outcomes[number] = (status, code if status != "delivered" else None)
    return json_response(
        {"number": number, "status": status, "error_code": sim.outcomes[number][1]}, status=201
    )


async def clear_outcome(request: web.Request) -> web.Response:
    """Forget a preset outcome (or all of them)."""
    sim = request.app[SIMULATOR]
    number, raw, _ = await _number_from(request)
    if number is None and raw:
        return _bad_number()
    if number is None:
        sim.outcomes.clear()
    else:
        sim.outcomes.pop(number, None)
    return web.Response(status=204)


def conversation(sim: Simulator, number: str) -> list[dict]:
    """Inbound texts, replies and API sends with ``number``, oldest first."""
    now = time.time()
    lines = [
        {"at": _iso(e.at), "direction": e.direction, "body": e.body, "sid": e.sid, "t": e.at}
        for e in sim.conversations.entries(number)
    ]
    for message in sim.store.newest_first(number):
        status = message.status_at(now)
        line = {
            "at": _iso(message.created),
            "direction": "outbound-api",
            "body": message.body,
            "sid": message.sid,
            "status": status,
            "t": message.created,
        }
        if message.error_code and status in ("undelivered", "failed"):
            line["error_code"] = message.error_code
            line["error_message"] = DELIVERY_ERRORS.get(message.error_code)
        lines.append(line)
    lines.sort(key=lambda line: line["t"])
    for line in lines:
        del line["t"]
    return lines


async def show_conversation(request: web.Request) -> web.Response:
    """``GET /sim/conversations/{number}``."""
    raw = request.match_info["number"]
    number = parse_number(raw) or raw
    return json_response(
        {"number": number, "conversation": conversation(request.app[SIMULATOR], number)}
    )


def add_routes(app: web.Application) -> None:
    """Register the ``/sim/`` routes on ``app``."""
    router = app.router
    router.add_post("/sim/inbound", inbound)
    router.add_get("/sim/health", health)
    router.add_get("/sim/stats", stats)
    router.add_get("/sim/messages", list_sent)
    router.add_delete("/sim/messages", clear_sent)
    router.add_get("/sim/optouts", list_opt_outs)
    router.add_post("/sim/optouts", add_opt_out)
    router.add_delete("/sim/optouts", remove_opt_out)
    router.add_post("/sim/outcomes", set_outcome)
    router.add_delete("/sim/outcomes", clear_outcome)
    router.add_get("/sim/conversations/{number}", show_conversation)
