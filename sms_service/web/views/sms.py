"""Twilio webhooks: ``POST /sms/inbound`` (texts from supporters)."""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from flask import Blueprint, Response, abort, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from sms_service.domain.phones import InvalidPhoneNumber, mask, normalise_address, to_e164
from sms_service.models import utcnow
from sms_service.services.inbound import InboundSms, receive
from sms_service.web.signature import is_valid_twilio_request
from sms_service.web.webhook_input import bounded_int, clean_text, identifier, short_text

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__, url_prefix="/sms")

# Twilio accepts at most 10 media per message; OptOutType is STOP, START or HELP.
MAX_MEDIA = 10
OPT_OUT_TYPE_MAX = 16
# Characters XML 1.0 cannot carry at all, even escaped (most C0 controls, lone surrogates,
# U+FFFE/U+FFFF): a reply quoting a stored name or title must still parse.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
TWIML_TYPE = "application/xml; charset=utf-8"


@lru_cache(maxsize=1024)
def twiml_document(reply: str | None) -> bytes:
    """The TwiML answer for ``reply``: one <Message>, or an empty <Response/> when nothing
    is to be said; UTF-8. Replies repeat (every JOIN of a burst gets the same
    words), so each document is built once by Twilio's own library and kept."""
    response = MessagingResponse()
    if reply:
        response.message(_NOT_XML.sub("", reply))
    return str(response).encode()


def require_twilio_signature() -> None:
    """403 unless the request is signed with our auth token."""
    settings = current_app.config["SETTINGS"]
    if not is_valid_twilio_request(request, settings.twilio_auth_token, settings.public_base_url):
        log.warning("rejected unsigned or badly signed request to %s", request.path)
        abort(403, description="invalid or missing X-Twilio-Signature")


def parse_inbound(form) -> InboundSms:
    """Twilio's inbound form into an :class:`InboundSms`; 400 on what cannot be stored.

    Control characters are dropped from the text (``STOP\\x00`` is kept, as ``STOP``).
    """
    message_sid = identifier(form, "MessageSid", "SmsMessageSid")
    account_sid = identifier(form, "AccountSid", required=False)
    try:
        from_number = to_e164(clean_text(form.get("From")))
    except InvalidPhoneNumber as exc:
        abort(400, description=f"From is missing or not a phone number ({exc})")
    to_raw = clean_text(form.get("To"))
    try:
        to_number = normalise_address(to_raw)
    except InvalidPhoneNumber:
        to_number = to_raw.strip()[:16]
    return InboundSms(
        message_sid=message_sid,
        from_number=from_number,
        to_number=to_number,
        body=clean_text(form.get("Body")),
        received_at=utcnow(),
        account_sid=account_sid,
        num_media=bounded_int(form.get("NumMedia"), low=0, high=MAX_MEDIA, default=0),
        opt_out_type=short_text(form.get("OptOutType"), OPT_OUT_TYPE_MAX).upper() or None,
    )


@bp.post("/inbound")
def inbound() -> Response:
    """Verify → parse → one transaction → TwiML reply.

    Flask serves this only for requests the lane in front of it passes on
    (:mod:`sms_service.web.inbound_lane`: a bad signature, a malformed form, an odd
    request); both answer with :func:`answer`.
    """
    require_twilio_signature()
    return Response(answer(request.form, current_app.extensions), content_type=TWIML_TYPE)


def answer(form, extensions) -> bytes:
    """The TwiML for a signed inbound form, its text decided and committed first; a 400
    (werkzeug's ``BadRequest``) for a form that cannot be stored."""
    sms = parse_inbound(form)
    # Concurrent texts from one number, Twilio retries and status callbacks are settled
    # inside the transaction; what still conflicts is run again, never answered with a 500.
    # On PostgreSQL, in one transaction with the texts that arrive with it (group_commit).
    store = extensions.get("sms_group_commit", receive)
    result = store(
        extensions["sms_engine"], sms, extensions["sms_program"], extensions["sms_reach"]
    )
    log.info(
        "inbound %s from %s: %s%s",
        sms.message_sid,
        mask(sms.from_number),
        result.intent,
        " (retry)" if result.duplicate else "",
    )
    return twiml_document(result.reply)
