"""The JSON API under ``/api/v1`` for the organisation's own site; bearer tokens, no cookies.

Every request needs ``Authorization: Bearer <token>``: GETs need ``signatures:read`` (or
write), POSTs ``signatures:write``. Errors are JSON: ``{"message": ..., "errors": {field:
message}}``. Limits: ``API_RATE_LIMIT`` per token, and for signatures the same per-number
limit as the page plus the per-IP limit on the signer's ``client_ip`` when given (the site's
own address is the caller's, shared by all its visitors, so it is not what is limited).
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, current_app, g, jsonify, make_response, request, url_for
from spectree import Response as Responses
from werkzeug.exceptions import HTTPException

from sms_service.broadcasts.progress import broadcast_progress
from sms_service.db import session_scope
from sms_service.domain import petition as rules
from sms_service.errors import NotFound
from sms_service.models import Campaign
from sms_service.program import reach_from
from sms_service.services import api_tokens, petition
from sms_service.web.public import signing
from sms_service.web.public.api_models import (
    ApiError,
    BroadcastOut,
    CampaignList,
    CampaignOut,
    SignatureIn,
    SignatureOut,
    canonical_ip,
    spec,
)
from sms_service.web.public.page import signer_limits
from sms_service.web.security import client_ip, limited, limiter

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_ID = 2**31 - 1
ERRORS = dict(HTTP_401=ApiError, HTTP_403=ApiError, HTTP_404=ApiError, HTTP_429=ApiError)


def error(status: int, message: str, errors: dict[str, str] | None = None):
    """A JSON error response."""
    return make_response(
        jsonify(ApiError(message=message, errors=errors or {}).model_dump()), status
    )


def _settings():
    return current_app.config["SETTINGS"]


def token_key() -> str:
    """The per-token limiter key (the token's hash; the caller's address without one)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return "token:" + hashlib.sha256(header[7:].strip().encode()).hexdigest()[:24]
    return "anon:" + client_ip()


def _json_field(name: str) -> str:
    body = request.get_json(silent=True)
    value = body.get(name) if isinstance(body, dict) else None
    return value.strip() if isinstance(value, str) else ""


def signature_limits() -> list[tuple[str, str]]:
    """API_RATE_LIMIT for the token, and the page's limits for the signer: per number, and
    per address for the signer's own (``client_ip`` in the body) when given."""
    token = (_settings().api_rate_limit, "api-signatures:" + token_key())
    return [token, *signer_limits(_signer_ip(), _json_field("phone"))]


def _signer_ip() -> str:
    """``client_ip`` as the signature will store it, so that one address is one count however
    it is spelt (a value that is no address is refused after the count)."""
    raw = _json_field("client_ip")
    try:
        return canonical_ip(raw)
    except ValueError:
        return raw


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        return error(401, "send Authorization: Bearer <token> (sms-service api-token create)")
    scope = api_tokens.SCOPE_READ if request.method in ("GET", "HEAD") else api_tokens.SCOPE_WRITE
    with session_scope(current_app.extensions["sms_engine"]) as session:
        token = api_tokens.authenticate(session=session, token=header[7:].strip(), scope=scope)
        if token is None:
            known = api_tokens.authenticate(
                session=session, token=header[7:].strip(), scope=api_tokens.SCOPE_READ
            )
            if known is not None:
                return error(403, f"this token may not do this: it needs {scope}")
            return error(401, "unknown or revoked token")
        g.api_token_id = token.id
    return None


def _http_error(exc: HTTPException):
    # Everything under /api answers JSON, the limiter's 429 and a bad JSON body included.
    if exc.code == 429:
        return error(429, "too many requests: slow down and retry later")
    return error(exc.code or 500, exc.description or exc.name)


# By code as well as by class: Flask prefers an app-wide handler for a code (the console's
# HTML error pages) over a blueprint's handler for the class.
bp.register_error_handler(HTTPException, _http_error)
for _code in (400, 401, 403, 404, 405, 413, 415, 422, 429):
    bp.register_error_handler(_code, _http_error)


def _campaign_out(campaign: Campaign, count: int) -> CampaignOut:
    return CampaignOut(
        keyword=campaign.keyword, title=campaign.title, signatures=count,
        page_url=url_for("petition.page", keyword=campaign.keyword, _external=True),
    )  # fmt: skip


@bp.get("/campaigns")
@limiter.limit(lambda: _settings().api_rate_limit, key_func=token_key)
@spec.validate(resp=Responses(HTTP_200=CampaignList, **ERRORS), tags=["campaigns"])
def campaigns():
    """Active petitions with their signature counts."""
    with session_scope(current_app.extensions["sms_engine"]) as session:
        rows = petition.active_campaigns(session)
        items = [_campaign_out(c, petition.signature_count(session, c.id)) for c in rows]
    return CampaignList(campaigns=items)


@bp.get("/campaigns/<keyword>")
@limiter.limit(lambda: _settings().api_rate_limit, key_func=token_key)
@spec.validate(resp=Responses(HTTP_200=CampaignOut, **ERRORS), tags=["campaigns"])
def campaign(keyword: str):
    """One petition and its live signature count."""
    with session_scope(current_app.extensions["sms_engine"]) as session:
        found = petition.find_campaign(session, keyword)
        if found is None:
            return error(404, f"no open petition with keyword {keyword[:32]}")
        return _campaign_out(found, petition.signature_count(session, found.id))


@bp.post("/campaigns/<keyword>/signatures")
@limited(signature_limits)
@spec.validate(
    json=SignatureIn,
    resp=Responses(HTTP_201=SignatureOut, HTTP_200=SignatureOut, HTTP_422=ApiError, **ERRORS),
    tags=["signatures"],
)
def create_signature(keyword: str, json: SignatureIn):
    """Sign as the page's form does: 201 for a new signature, 200 for a repeat (not counted
    twice), 422 with a message per field. With ``phone`` and ``sms_consent`` a confirmation
    text is queued; the number is subscribed only when its owner replies YES."""
    try:
        form = rules.clean_signature(
            name=json.name, email=json.email, phone=json.phone, sms_consent=json.sms_consent,
            reach=reach_from(_settings()),
        )  # fmt: skip
    except rules.FormErrors as exc:
        return error(422, "the signature was not accepted", exc.errors)
    signed = signing.sign(
        keyword, form, ip=json.client_ip, user_agent=request.headers.get("User-Agent")
    )
    if signed is None:
        return error(404, f"no open petition with keyword {keyword[:32]}")
    out = SignatureOut(
        signature_id=signed.result.signature_id, campaign=signed.campaign.keyword,
        counted=signed.result.counted, confirmation=signed.result.confirmation.value,
    )  # fmt: skip
    return out, 201 if signed.result.counted else 200


# signed: a negative id is still this route's (a JSON 404), not the app's HTML 404.
@bp.get("/broadcasts/<int(signed=True):broadcast_id>")
@limiter.limit(lambda: _settings().api_rate_limit, key_func=token_key)
@spec.validate(resp=Responses(HTTP_200=BroadcastOut, **ERRORS), tags=["broadcasts"])
def broadcast(broadcast_id: int):
    """A broadcast's progress: deliveries per state for its latest runs."""
    if not 0 < broadcast_id <= MAX_ID:  # beyond MAX_ID the database refuses to compare
        return error(404, f"no broadcast {broadcast_id}")
    with session_scope(current_app.extensions["sms_engine"]) as session:
        try:
            progress = broadcast_progress(session=session, broadcast_id=broadcast_id)
        except NotFound:
            return error(404, f"no broadcast {broadcast_id}")
    data = progress.as_dict()
    return BroadcastOut(
        broadcast_id=data["broadcast_id"], status=data["status"], audience=data["audience"],
        recurrence=data["recurrence"], send_at=data["send_at"], segments=data["segments"],
        done=progress.done, runs=data["runs"],
    )  # fmt: skip
