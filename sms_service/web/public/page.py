"""The public petition page: ``GET/POST /p/<KEYWORD>`` and ``/p/<KEYWORD>/thanks``.

No login. Works without JavaScript: the form posts, errors come back beside their fields
(422), success redirects to the thanks page (so a reload never posts twice). Abuse limits:
per client address and per number (``PETITION_RATE_LIMIT_IP``/``_NUMBER``, counted in the
shared limiter store), a honeypot field that people never see, and the service's own rules
(one confirmation text per number per interval, never a text to an opted-out number).
"""

from __future__ import annotations

import hashlib
import logging

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from sms_service.db import session_scope
from sms_service.domain import petition as rules
from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.program import reach_from
from sms_service.services import petition
from sms_service.services.petition import Confirmation
from sms_service.web.public import signing
from sms_service.web.security import client_ip, limited

log = logging.getLogger(__name__)
bp = Blueprint(
    "petition", __name__, template_folder="templates", static_folder="static",
    static_url_path="/p-static",
)  # fmt: skip

HONEYPOT = "website"  # a field only bots fill in: hidden from people and screen readers


def _settings():  # config.Settings
    return current_app.config["SETTINGS"]


def parsed_number(raw: object) -> str | None:
    """The number in the request as E.164, or None when there is none or it does not parse
    (such a request is refused with 422 and texts nobody, so no per-number limit applies)."""
    try:
        return to_e164(str(raw or ""))
    except InvalidPhoneNumber:
        return None


def number_key(number: str) -> str:
    """The limiter key for a number: hashed, so the limiter's store holds no number in clear."""
    return "number:" + hashlib.sha256(number.encode()).hexdigest()[:24]


def signer_limits(ip: str | None, phone: object) -> list[tuple[str, str]]:
    """The limits a signature falls under, on the page and the API alike (so they share the
    counts): PETITION_RATE_LIMIT_IP for the signer's address, and PETITION_RATE_LIMIT_NUMBER
    for a number we could text (one that does not parse is refused with 422 and texts
    nobody). Read per request, so tests and operators can set them."""
    settings = _settings()
    limits = [(settings.petition_rate_limit_ip, "ip:" + ip)] if ip else []
    number = parsed_number(phone)
    if number is not None:
        limits.append((settings.petition_rate_limit_number, number_key(number)))
    return limits


def _disclosure() -> str:
    return rules.web_disclosure(
        current_app.extensions["sms_program"],
        sender=_settings().twilio_from,
        privacy_url=_settings().program_privacy_url,
    )


def _campaign_or_404(session, keyword: str):
    campaign = petition.find_campaign(session, keyword)
    if campaign is None:
        abort(404)
    return campaign


def _render(keyword: str, *, values=None, errors=None, status: int = 200):
    with session_scope(current_app.extensions["sms_engine"]) as session:
        campaign = _campaign_or_404(session, keyword)
        count = petition.signature_count(session, campaign.id)
    settings = _settings()
    body = render_template(
        "public/petition.html",
        campaign=campaign,
        paragraphs=[p.strip() for p in campaign.petition_text.split("\n\n") if p.strip()],
        count=count,
        values=values or {},
        errors=errors or {},
        disclosure=_disclosure(),
        short_code=settings.twilio_from,
        terms_url=settings.program_terms_url,
        privacy_url=settings.program_privacy_url,
        honeypot=HONEYPOT,
    )
    return body, status


@bp.get("/p/<keyword>")
def page(keyword: str):
    """The petition: title, text, live count and the signing form."""
    return _render(keyword)


@bp.post("/p/<keyword>")
@limited(lambda: signer_limits(client_ip(), request.form.get("phone")))
def submit(keyword: str):
    """Sign: 422 with a message beside each bad field, else 303 to the thanks page."""
    if request.form.get(HONEYPOT):
        # Answer a bot exactly as a person, so it learns nothing; store and send nothing.
        log.info("honeypot filled on /p/%s from %s: ignored", keyword, client_ip())
        return redirect(url_for(".thanks", keyword=keyword, c=Confirmation.NOT_ASKED), 303)
    values = {k: request.form.get(k, "") for k in ("name", "email", "phone")}
    consent = request.form.get("sms_consent") in ("on", "1", "true", "yes")
    values["sms_consent"] = consent
    try:
        form = rules.clean_signature(
            name=values["name"], email=values["email"], phone=values["phone"],
            sms_consent=consent, reach=reach_from(_settings()),
        )  # fmt: skip
    except rules.FormErrors as exc:
        return _render(keyword, values=values, errors=exc.errors, status=422)
    signed = signing.sign(
        keyword, form, ip=client_ip(), user_agent=request.headers.get("User-Agent")
    )
    if signed is None:
        abort(404)
    again = "" if signed.result.counted else "1"
    return redirect(
        url_for(".thanks", keyword=keyword, c=signed.result.confirmation, again=again), 303
    )


@bp.get("/p/<keyword>/thanks")
def thanks(keyword: str):
    """After signing: what happens next (the confirmation text, or why none was sent)."""
    with session_scope(current_app.extensions["sms_engine"]) as session:
        campaign = _campaign_or_404(session, keyword)
        count = petition.signature_count(session, campaign.id)
    outcome = request.args.get("c", "")
    known = {c.value for c in Confirmation}
    return render_template(
        "public/thanks.html",
        campaign=campaign,
        count=count,
        outcome=outcome if outcome in known else Confirmation.NOT_ASKED.value,
        again=bool(request.args.get("again")),
        short_code=_settings().twilio_from,
        window_hours=_settings().petition_confirm_window_hours,
    )


@bp.errorhandler(429)
def too_many(exc) -> Response:
    """Over a limit: say so plainly; nothing was stored or sent."""
    body = render_template("public/limited.html", retry=getattr(exc, "retry_after", None))
    response = current_app.make_response((body, 429))
    return response
