"""The phone simulator: ``GET /phone`` and ``POST /phone/send``.

An organiser types as a supporter's phone. The text goes through the real inbound
webhook: the request is signed with the app's auth token for the URL the webhook checks
and dispatched to ``/sms/inbound`` through the app's own WSGI stack, so the signature
check, the keyword engine and the consent log all run exactly as for Twilio. Nothing is
sent to a real phone. Never in production: only :mod:`sms_service.devtools.webapp`
registers this blueprint and it refuses production settings, since the page lets whoever
can reach it speak for any number (the guard below holds even if someone registers it
elsewhere). Its form carries a CSRF token, so another site open in the developer's
browser cannot text through it.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from sqlmodel import Session
from twilio.request_validator import RequestValidator
from werkzeug.test import Client

from sms_service.carrier.twiml import inbound_form, twiml_replies
from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.models import (
    BroadcastDelivery,
    BroadcastRun,
    InboundMessage,
    OutboundMessage,
    Subscriber,
)

bp = Blueprint(
    "phone",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/phone/static",
)

INBOUND_PATH = "/sms/inbound"
HISTORY_LIMIT = 100


@dataclass(frozen=True)
class Bubble:
    """One line of the conversation as the phone shows it."""

    direction: str  # "in" (the supporter's text) or "out" (what the service answered/sent)
    body: str
    at: str
    note: str = ""


@bp.before_request
def _only_where_enabled() -> None:
    settings = current_app.config["SETTINGS"]
    if settings.is_production:  # a second lock: the blueprint is not even registered
        abort(404)


@bp.get("/phone")
def phone() -> str:
    """The simulator page, with the conversation of ``?number=`` if given."""
    raw = request.args.get("number", "")
    number, error = _parse_number(raw) if raw else (None, None)
    return render_template(
        "phone.html",
        number=number or raw,
        error=error,
        status=_subscriber_status(number) if number else None,
        bubbles=conversation(number) if number else [],
        short_code=current_app.config["SETTINGS"].twilio_from,
    )


@bp.post("/phone/send")
def send() -> Response:
    """Text ``body`` from ``number`` through the signed webhook; JSON in, JSON out (a plain
    form post redirects back to the page)."""
    wants_json = request.is_json
    data = (request.get_json(silent=True) or {}) if wants_json else request.form
    number, error = _parse_number(str(data.get("number", "")))
    body = str(data.get("body", ""))
    if number is None:
        if wants_json:
            return jsonify(error=error), 400
        return redirect(url_for("phone.phone", number=data.get("number", "")))
    status, replies = dispatch_inbound(number, body)
    if not wants_json:
        return redirect(url_for("phone.phone", number=number))
    return jsonify(
        number=number,
        webhook_status=status,
        replies=replies,
        subscriber_status=_subscriber_status(number),
        conversation=[asdict(b) for b in conversation(number)],
    )


def dispatch_inbound(number: str, body: str) -> tuple[int, list[str]]:
    """POST a correctly signed inbound-text form to the webhook; its status and replies."""
    settings = current_app.config["SETTINGS"]
    base = (settings.public_base_url or request.root_url).rstrip("/")
    form = inbound_form(
        sid="SM" + uuid.uuid4().hex, account_sid=settings.twilio_account_sid, from_=number,
        to=settings.twilio_from, body=body,
    )  # fmt: skip
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(
        base + INBOUND_PATH, form
    )
    # Without PUBLIC_BASE_URL the webhook checks the URL it was reached at: give it ours.
    client = Client(current_app.wsgi_app)
    response = client.post(
        INBOUND_PATH,
        base_url=request.root_url,
        data=form,
        headers={"X-Twilio-Signature": signature},
    )
    try:
        replies = twiml_replies(response.get_data()) if response.status_code == 200 else []
        return response.status_code, replies
    finally:
        response.close()


def conversation(number: str) -> list[Bubble]:
    """The number's texts and everything it was told, as the phone would show it: keyword
    replies (TwiML), single texts (outbound messages) and broadcasts the carrier accepted;
    oldest first, the last :data:`HISTORY_LIMIT` of each."""
    engine = current_app.extensions["sms_engine"]
    items: list[tuple[datetime, int, Bubble]] = []
    with Session(engine) as session:
        inbound = session.execute(
            select(InboundMessage)
            .where(InboundMessage.from_number == number)
            .order_by(InboundMessage.received_at.desc())
            .limit(HISTORY_LIMIT)
        ).scalars()
        for m in inbound:
            items.append((m.received_at, 0, Bubble("in", m.body, _time(m.received_at))))
            if m.reply:
                note = f"reply · {m.intent.replace('_', ' ')}"
                items.append((m.received_at, 1, Bubble("out", m.reply, _time(m.received_at), note)))
        outbound = session.execute(
            select(OutboundMessage)
            .where(OutboundMessage.to_number == number)
            .order_by(OutboundMessage.created_at.desc())
            .limit(HISTORY_LIMIT)
        ).scalars()
        for o in outbound:
            note = f"{o.kind} · {o.status}" + (f" · error {o.error_code}" if o.error_code else "")
            items.append((o.created_at, 2, Bubble("out", o.body, _time(o.created_at), note)))
        # A broadcast reaches the phone once the carrier accepted it (sent, with a sid);
        # skipped and deferred deliveries never do.
        delivered = session.execute(
            select(BroadcastDelivery.sent_at, BroadcastRun.broadcast_id, BroadcastRun.body)
            .join(Subscriber, Subscriber.id == BroadcastDelivery.subscriber_id)
            .join(BroadcastRun, BroadcastRun.id == BroadcastDelivery.run_id)
            .where(Subscriber.phone == number, BroadcastDelivery.sent_at.is_not(None))
            .order_by(BroadcastDelivery.sent_at.desc())
            .limit(HISTORY_LIMIT)
        ).all()
        for sent_at, broadcast_id, body in delivered:
            note = f"broadcast {broadcast_id}"
            items.append((sent_at, 3, Bubble("out", body or "", _time(sent_at), note)))
    items.sort(key=lambda item: (item[0], item[1]))
    return [bubble for _, _, bubble in items]


def _time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse_number(raw: str) -> tuple[str | None, str | None]:
    try:
        return to_e164(raw), None
    except InvalidPhoneNumber as exc:
        return None, str(exc)


def _subscriber_status(number: str) -> str:
    engine = current_app.extensions["sms_engine"]
    with Session(engine) as session:
        status = session.execute(
            select(Subscriber.status).where(Subscriber.phone == number)
        ).scalar_one_or_none()
    return status or "not a subscriber"
