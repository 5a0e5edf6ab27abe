"""The JSON API's request and response shapes (pydantic), and the OpenAPI document built
from them by spectree: ``/api/openapi.json`` is generated from these classes and the
routes that use them, so the document cannot drift from the code."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Literal

from flask import jsonify, make_response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from spectree import SecurityScheme, SecuritySchemeData, SpecTree

from sms_service.services.petition import Confirmation

ConfirmationValue = Literal[tuple(c.value for c in Confirmation)]  # type: ignore[valid-type]


class ApiError(BaseModel):
    """Every error: a sentence, and one message per bad field (empty when none is to blame)."""

    message: str
    errors: dict[str, str] = Field(default_factory=dict)


def canonical_ip(value: str) -> str:
    """An IPv4 or IPv6 address in its one canonical spelling; ValueError for anything
    else."""
    return str(ipaddress.ip_address(value.strip()))


class SignatureIn(BaseModel):
    """A signature, with the same fields and rules as the petition page's form."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=100, description="the signer's name, with at least one letter"
    )
    email: str | None = Field(None, max_length=254, description="optional e-mail address")
    phone: str | None = Field(
        None, max_length=32, description="optional mobile number; E.164 or US national"
    )
    sms_consent: bool = Field(
        False, description="the signer ticked the SMS box (needs phone): a confirmation text asks"
        " them to reply YES; only then are they subscribed"
    )  # fmt: skip
    client_ip: str | None = Field(
        None, max_length=45,
        description="the signer's own IP address as your site saw it: stored with the signature"
        " and rate-limited like the page's form",
    )  # fmt: skip

    @field_validator("client_ip")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        """An IPv4 or IPv6 address, stored in its canonical spelling (2001:DB8::1 and
        2001:db8:0::1 are one address, and one rate-limit count)."""
        if value is None:
            return None
        try:
            return canonical_ip(value)
        except ValueError:
            raise ValueError("give an IPv4 or IPv6 address, such as 192.0.2.1") from None


class SignatureOut(BaseModel):
    """What became of a signature."""

    signature_id: int
    campaign: str
    counted: bool = Field(description="false when this signer had signed before")
    confirmation: ConfirmationValue = Field(  # type: ignore[valid-type]
        description="queued: a confirmation text is on its way; not_asked: no number or no"
        " consent; already_subscribed, opted_out, unreachable, recently_sent: no text sent"
    )  # fmt: skip


class CampaignOut(BaseModel):
    """A petition and its live count."""

    keyword: str
    title: str
    signatures: int
    page_url: str


class CampaignList(BaseModel):
    """Active petitions, newest first."""

    campaigns: list[CampaignOut]


class RunOut(BaseModel):
    """One occurrence of a broadcast."""

    run_id: int
    occurrence_at: datetime
    status: str
    planned: int
    counts: dict[str, int]
    skipped: dict[str, int]
    failed: dict[str, int]
    delivered: int
    undelivered: int
    deferred_until: datetime | None = None


class BroadcastOut(BaseModel):
    """A broadcast's progress: its latest runs, newest first."""

    broadcast_id: int
    status: str
    audience: str
    recurrence: str
    send_at: datetime
    segments: int
    done: bool
    runs: list[RunOut]


def _field_of(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "json")]
    return ".".join(parts) or "body"


def field_errors(errors: list[dict]) -> dict[str, str]:
    """pydantic's error list as one message per field (the first one for each)."""
    out: dict[str, str] = {}
    for error in errors:
        out.setdefault(_field_of(tuple(error.get("loc", ()))), str(error.get("msg", "invalid")))
    return out


def _before(req, resp, req_validation_error, instance, *_):
    # spectree calls this with the request's validation error, if any: answer in our shape.
    if req_validation_error is None:
        return
    errors = field_errors(req_validation_error.errors())
    body = ApiError(message="the request body is not a valid signature", errors=errors)
    from flask import abort

    abort(make_response(jsonify(body.model_dump()), 422))


spec = SpecTree(
    "flask",
    title="sms_service petition API",
    version="1",
    description="Sign petitions and read counts from the organisation's own site. Every call "
    "needs `Authorization: Bearer <token>` (`sms-service api-token create`).",
    mode="strict",
    page_templates={},  # no hosted UI: its scripts would come from elsewhere (CSP)
    security_schemes=[
        SecurityScheme(name="bearerAuth", data=SecuritySchemeData(type="http", scheme="bearer")),
    ],
    security={"bearerAuth": []},
    before=_before,
    validation_error_status=422,
    validation_error_model=ApiError,
    annotations=True,
)
