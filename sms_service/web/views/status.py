"""Twilio status callbacks: ``POST /sms/status`` (what became of the texts we sent)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request

from sms_service.db import run_transaction
from sms_service.domain.carrier_status import parse_error_code
from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.models import utcnow
from sms_service.services.status_reports import StatusReport, record_status
from sms_service.web.views.sms import require_twilio_signature
from sms_service.web.webhook_input import clean_text, identifier, short_text

log = logging.getLogger(__name__)
bp = Blueprint("status", __name__, url_prefix="/sms")

# Twilio's longest status is "partially_delivered"; anything longer is not one of them.
STATUS_MAX = 32


def parse_status(form) -> StatusReport:
    """Twilio's status callback form into a :class:`StatusReport`; 400 without sid/status
    or with a sid we could not store (see :mod:`sms_service.web.webhook_input`)."""
    if not (form.get("MessageSid") or form.get("SmsSid")):
        abort(400, description="MessageSid and MessageStatus are required")
    sid = identifier(form, "MessageSid", "SmsSid")
    raw_status = form.get("MessageStatus") or form.get("SmsStatus")
    status = short_text(raw_status, STATUS_MAX).lower()
    if not status:
        abort(400, description="MessageSid and MessageStatus are required")
    try:
        to_number = to_e164(clean_text(form.get("To")))
    except InvalidPhoneNumber:
        to_number = None
    return StatusReport(
        sid=sid,
        status=status,
        error_code=parse_error_code(form.get("ErrorCode")),
        to_number=to_number,
        occurred_at=utcnow(),
        raw=form.to_dict(flat=True),
    )


@bp.post("/status")
def status() -> Response:
    """Verify → parse → record once (forward-only) → 204."""
    require_twilio_signature()
    report = parse_status(request.form)
    engine = current_app.extensions["sms_engine"]
    program = current_app.config["SETTINGS"].program_name
    result = run_transaction(
        engine, lambda session: record_status(session, report, program=program)
    )
    log.info(
        "status %s %s%s%s",
        report.sid,
        report.status,
        f" error {report.error_code}" if report.error_code else "",
        "" if result.recorded else " (repeat)",
    )
    return Response(status=204)
