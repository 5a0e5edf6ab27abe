"""Twilio webhooks: ``POST /sms/inbound`` (texts from supporters)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from sms_service.db import run_transaction
from sms_service.domain.phones import InvalidPhoneNumber, mask, normalise_address, to_e164
from sms_service.models import utcnow
from sms_service.services.inbound import InboundSms, handle_inbound
from sms_service.web.signature import is_valid_twilio_request

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__, url_prefix="/sms")


def twiml(reply: str | None) -> Response:
    """A TwiML answer: one <Message>, or an empty <Response/> when nothing is to be said."""
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return Response(str(response), mimetype="application/xml")


def require_twilio_signature() -> None:
    """403 unless the request is signed with our auth token."""
    settings = current_app.config["SETTINGS"]
    if not is_valid_twilio_request(request, settings.twilio_auth_token, settings.public_base_url):
        log.warning("rejected unsigned or badly signed request to %s", request.path)
        abort(403, description="invalid or missing X-Twilio-Signature")


def parse_inbound(form) -> InboundSms:  # noqa: ANN001 - werkzeug MultiDict
    """Twilio's inbound form into an :class:`InboundSms`; 400 on what cannot be stored."""
    message_sid = (form.get("MessageSid") or form.get("SmsMessageSid") or "").strip()
    if not message_sid:
        abort(400, description="MessageSid is missing")
    try:
        from_number = to_e164(form.get("From"))
    except InvalidPhoneNumber as exc:
        abort(400, description=f"From is missing or not a phone number ({exc})")
    try:
        to_number = normalise_address(form.get("To"))
    except InvalidPhoneNumber:
        to_number = (form.get("To") or "").strip()[:16]
    try:
        num_media = int(form.get("NumMedia") or 0)
    except ValueError:
        num_media = 0
    return InboundSms(
        message_sid=message_sid,
        from_number=from_number,
        to_number=to_number,
        body=form.get("Body") or "",
        received_at=utcnow(),
        account_sid=form.get("AccountSid"),
        num_media=num_media,
        opt_out_type=(form.get("OptOutType") or "").strip().upper() or None,
    )


@bp.post("/inbound")
def inbound() -> Response:
    """Verify → parse → one transaction → TwiML reply."""
    require_twilio_signature()
    sms = parse_inbound(request.form)
    engine = current_app.extensions["sms_engine"]
    program = current_app.extensions["sms_program"]
    # Concurrent texts from one number, Twilio retries and status callbacks are settled
    # inside the transaction; what still conflicts is run again, never answered with a 500.
    result = run_transaction(engine, lambda session: handle_inbound(session, sms, program))
    log.info(
        "inbound %s from %s: %s%s",
        sms.message_sid,
        mask(sms.from_number),
        result.intent,
        " (retry)" if result.duplicate else "",
    )
    return twiml(result.reply)
