"""``/console/campaigns``: create, edit the petition, open/close, choose SIGN's campaign.

Organisers and admins change campaigns; compliance staff read them.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from sms_service.errors import BadRequest, NotFound
from sms_service.services import campaigns as svc
from sms_service.web.console.auth import requires
from sms_service.web.console.common import log_action, transaction

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")


@bp.get("/")
@requires("campaigns.read")
def index() -> str:
    """Every campaign with its signature count."""
    with transaction() as session:
        rows = svc.list_campaigns(session=session)
        counts = svc.signature_counts(session=session)
    return render_template("console/campaigns.html", campaigns=rows, counts=counts)


@bp.post("/")
@requires("campaigns.write")
def create():
    """Add a campaign from the form (keyword, title, petition text)."""
    form = request.form
    try:
        with transaction() as session:
            campaign = svc.create_campaign(
                session=session, keyword=form.get("keyword", ""), title=form.get("title", ""),
                text=form.get("text", ""),
            )  # fmt: skip
            log_action(session, "campaign.create", campaign.keyword, title=campaign.title)
    except BadRequest as exc:
        flash(str(exc), "error")
        return redirect(url_for(".index"))
    flash(f"Campaign {campaign.keyword} created.", "ok")
    return redirect(url_for(".show", campaign_id=campaign.id))


@bp.get("/<int:campaign_id>")
@requires("campaigns.read")
def show(campaign_id: int) -> str:
    """One campaign: petition text, signature count, the latest signers."""
    with transaction() as session:
        try:
            campaign = svc.get_campaign(session=session, campaign_id=campaign_id)
        except NotFound:
            abort(404)
        count = svc.signature_counts(session=session).get(campaign_id, 0)
        signers = svc.latest_signers(session=session, campaign_id=campaign_id)
    return render_template("console/campaign.html", campaign=campaign, count=count, signers=signers)


@bp.post("/<int:campaign_id>")
@requires("campaigns.write")
def update(campaign_id: int):
    """Save the title and petition text."""
    return _change(
        campaign_id, "campaign.edit",
        lambda s: svc.update_campaign(
            session=s, campaign_id=campaign_id, title=request.form.get("title", ""),
            text=request.form.get("text", ""),
        ),
    )  # fmt: skip


@bp.post("/<int:campaign_id>/active")
@requires("campaigns.write")
def set_active(campaign_id: int):
    """Open (``active=1``) or close the campaign to signatures."""
    active = request.form.get("active") == "1"
    return _change(
        campaign_id, "campaign.activate" if active else "campaign.deactivate",
        lambda s: svc.set_active(session=s, campaign_id=campaign_id, active=active),
    )  # fmt: skip


@bp.post("/<int:campaign_id>/default")
@requires("campaigns.write")
def make_default(campaign_id: int):
    """Make this the campaign a plain SIGN signs."""
    return _change(
        campaign_id, "campaign.sign_default",
        lambda s: svc.set_sign_default(session=s, campaign_id=campaign_id),
    )  # fmt: skip


def _change(campaign_id: int, action: str, apply):
    try:
        with transaction() as session:
            campaign = apply(session)
            log_action(session, action, campaign.keyword)
    except NotFound:
        abort(404)
    except BadRequest as exc:
        flash(str(exc), "error")
    else:
        flash(f"{campaign.keyword} saved.", "ok")
    return redirect(url_for(".show", campaign_id=campaign_id))
