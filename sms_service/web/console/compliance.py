"""Compliance pages: number look-up, the possible-opt-out review queue, CSV exports.

Open to compliance staff and admins (``roles``). Each look-up, decision and download is
written to the audit log with the signed-in account.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from sms_service.domain.phones import InvalidPhoneNumber, mask, to_e164
from sms_service.errors import BadRequest, NotFound
from sms_service.services import consent, exports
from sms_service.services.number_history import number_history
from sms_service.web.console.auth import requires
from sms_service.web.console.common import log_action, settings, transaction, user_zone
from sms_service.web.console.streaming import stream_writer

bp = Blueprint("compliance", __name__)

EXPORT_KINDS = ("consent", "optouts", "signatures")


@bp.get("/lookup")
@requires("compliance")
def lookup() -> str:
    """``?number=``: the number's consent events with their wording and every message."""
    raw = (request.args.get("number") or "").strip()
    history, error = None, None
    if raw:
        try:
            phone = to_e164(raw)
        except InvalidPhoneNumber as exc:
            error = str(exc)
        else:
            with transaction() as session:
                history = number_history(session=session, phone=phone)
                log_action(session, "number.lookup", mask(phone))
    return render_template(
        "console/lookup.html", number=raw, history=history, error=error,
        evidence_enabled="console.proof.evidence" in current_app.view_functions,
    )  # fmt: skip


@bp.get("/reviews")
@requires("compliance")
def reviews() -> str:
    """Possible opt-outs awaiting a decision, the nearest FCC deadline first."""
    with transaction() as session:
        pending = consent.pending_reviews(session=session)
    today = datetime.now(UTC).date()
    return render_template("console/reviews.html", pending=pending, today=today)


@bp.post("/reviews/<sid>")
@requires("compliance")
def decide(sid: str):
    """Record the decision (``decision`` = ``opt_out`` or ``keep``) as the signed-in user."""
    decision = request.form.get("decision")
    if decision not in ("opt_out", "keep"):
        abort(400, description="decision must be opt_out or keep")
    from flask_login import current_user

    try:
        with transaction() as session:
            events = consent.resolve_review(
                session=session, message_sid=sid, opt_out=decision == "opt_out",
                reviewer=current_user.email, settings=settings(),
            )  # fmt: skip
            log_action(
                session, "review.decide", sid, decision=decision, phone=mask(events[0].phone)
            )
    except NotFound as exc:
        flash(str(exc), "error")
    else:
        flash("Decision recorded.", "ok")
    return redirect(url_for(".reviews"))


@bp.get("/exports")
@requires("compliance")
def exports_page() -> str:
    """The export form: kind, date range (in the user's zone), optional number."""
    return render_template("console/exports.html", kinds=EXPORT_KINDS)


@bp.get("/exports/<kind>.csv")
@requires("compliance")
def export(kind: str) -> Response:
    """Stream one export as a CSV download (rows from a server-side cursor)."""
    if kind not in EXPORT_KINDS:
        abort(404)
    try:
        flt = exports.ExportFilter(
            since=_day_start(request.args.get("since")),
            until=_day_start(request.args.get("until"), next_day=True),
            phone=to_e164(request.args["phone"]) if request.args.get("phone") else None,
        )
    except (ValueError, BadRequest, InvalidPhoneNumber) as exc:
        flash(str(exc), "error")
        return redirect(url_for(".exports_page"))
    with transaction() as session:
        log_action(
            session, f"export.{kind}", None, since=request.args.get("since"),
            until=request.args.get("until"), phone=mask(flt.phone) if flt.phone else None,
        )  # fmt: skip
    engine = current_app.extensions["sms_engine"]
    if kind == "signatures":
        campaign = request.args.get("campaign") or None

        def write(out):
            return exports.write_signatures(engine, out, flt, campaign=campaign)
    else:

        def write(out):
            return exports.write_consent(engine, out, flt, opt_outs_only=kind == "optouts")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        stream_writer(write),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{kind}-{stamp}.csv"'},
    )


def _day_start(value: str | None, *, next_day: bool = False) -> datetime | None:
    """A date typed in the user's zone → the start of that day (or of the next) in UTC."""
    if not value:
        return None
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise BadRequest(f"{value!r} is not a date such as 2026-12-01") from None
    if next_day:
        from datetime import timedelta

        day += timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=user_zone()).astimezone(UTC)
