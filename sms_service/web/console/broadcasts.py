"""``/console/broadcasts``: compose (live segments, cost, GSM-7 warnings, audience size and
forecast), save a draft or schedule, test-send to a staff phone, follow progress, cancel.

Views call the broadcast service (:mod:`sms_service.broadcasts`) exactly as the CLI does;
scheduling enqueues the start job after the commit, and when no Redis answers the
worker's sweeper starts the run from the database.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from sms_service import broadcasts as svc
from sms_service.broadcasts.forecast import Group, audience_groups, forecast
from sms_service.broadcasts.outcomes import run_opt_outs
from sms_service.broadcasts.progress import broadcast_progress
from sms_service.broadcasts.service import MAX_BODY_CHARS
from sms_service.domain import broadcast_gate as gate
from sms_service.domain.audience import AudienceSpec, parse_audience
from sms_service.domain.phones import mask
from sms_service.errors import BadRequest, NotFound
from sms_service.models import AudienceKind, Broadcast, BroadcastRun, Campaign, SubscriberTag
from sms_service.web.console.auth import reads_only, requires
from sms_service.web.console.common import local, log_action, settings, transaction, user_zone
from sms_service.web.console.jobs import enqueue_broadcast_start, enqueue_text
from sms_service.web.security import limiter

bp = Blueprint("broadcasts", __name__, url_prefix="/broadcasts")
PAST_GRACE = timedelta(minutes=1)  # "now" typed a few seconds ago is not the past
TEST_SEND_LIMIT = "10 per hour"
# The composer asks for an estimate on every pause in typing; the audience's groups (the
# two grouped queries of the forecast) are kept this long per audience and minute, so
# editing the text costs no query. A change to the audience shows within this time.
GROUPS_KEPT_SECONDS = 30.0


def _user_key() -> str:
    return f"user:{current_user.id}"


@bp.get("/")
@requires("broadcasts.read")
def index() -> str:
    """Broadcasts, newest first."""
    with transaction() as session:
        rows = svc.list_broadcasts(session=session, limit=100)
    return render_template("console/broadcasts.html", broadcasts=rows)


@bp.get("/new")
@requires("broadcasts.write")
def new() -> str:
    """The composer."""
    return _composer(None)


@bp.get("/<int:broadcast_id>/edit")
@requires("broadcasts.write")
def edit(broadcast_id: int):
    """The composer on a saved draft: change it, save it again or schedule it."""
    with transaction() as session:
        draft = session.get(Broadcast, broadcast_id)
    if draft is None:
        abort(404)
    if draft.status != "draft" or draft.audience_kind == AudienceKind.LIST:
        flash("Only a draft to everyone, a campaign or a tag can be edited here.", "error")
        return redirect(url_for(".show", broadcast_id=broadcast_id))
    return _composer(draft)


def _composer(draft: Broadcast | None) -> str:
    with transaction() as session:
        campaigns = list(session.execute(select(Campaign).order_by(Campaign.keyword)).scalars())
        tags = list(
            session.execute(select(SubscriberTag.tag).distinct().order_by(SubscriberTag.tag)
                            .limit(200)).scalars()
        )  # fmt: skip
    zone = user_zone()
    send_at, was = "", None
    if draft is not None:
        when = draft.send_at if draft.send_at.tzinfo else draft.send_at.replace(tzinfo=UTC)
        if when >= datetime.now(UTC) - PAST_GRACE:
            send_at = when.astimezone(zone).strftime("%Y-%m-%dT%H:%M")
        else:
            was = local(when)  # the time has passed: empty (now) unless a new one is chosen
        if draft.audience_kind == AudienceKind.TAG and draft.audience_value not in tags:
            tags.append(draft.audience_value)
    return render_template(
        "console/compose.html", campaigns=campaigns, tags=tags, zone=zone.key,
        now_local=datetime.now(zone).strftime("%Y-%m-%dT%H:%M"), draft=draft,
        draft_send_at=send_at, draft_was=was,
    )  # fmt: skip


def _audience(form) -> AudienceSpec:
    kind = form.get("audience") or "all"
    value = form.get("campaign") if kind == "campaign" else form.get("tag")
    if kind not in ("all", "campaign", "tag"):
        raise BadRequest("choose everyone, a campaign's signers or a tag")
    try:
        return parse_audience("all" if kind == "all" else f"{kind}:{value or ''}")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _send_at(form) -> datetime:
    text = (form.get("send_at") or "").strip()
    now = datetime.now(UTC)
    if not text:
        return now
    when = svc.local_to_utc(text, user_zone().key)
    if when < now - PAST_GRACE:
        raise BadRequest(f"{local(when)} is in the past: choose a later time")
    return max(when, now)


def _transient(session, body: str, spec: AudienceSpec) -> Broadcast:
    """An unsaved broadcast with the audience columns the service would store."""
    kind, value, campaign_id = AudienceKind(spec.kind), spec.value, None
    if spec.kind == "campaign":
        campaign = session.execute(
            select(Campaign).where(Campaign.keyword == (spec.value or "").upper())
        ).scalar_one_or_none()
        if campaign is None:
            raise NotFound(f"no campaign with keyword {spec.value}")
        campaign_id, value = campaign.id, campaign.keyword
    return Broadcast(
        body=body, audience_kind=kind, audience_value=value, audience_campaign_id=campaign_id,
        send_at=datetime.now(UTC), timezone=user_zone().key,
    )  # fmt: skip


class _GroupsCache:
    """Audience groups per (audience, cap, minute of the cap window's start), for
    ``GROUPS_KEPT_SECONDS``; one per app (and so per process), shared by its threads."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.entries: dict[tuple, tuple[float, list[Group]]] = {}

    def get(self, key: tuple) -> list[Group] | None:
        with self.lock:
            found = self.entries.get(key)
            if found is None or time.monotonic() - found[0] > self.seconds:
                return None
            return found[1]

    def put(self, key: tuple, groups: list[Group]) -> None:
        with self.lock:
            now = time.monotonic()
            for old in [k for k, (t, _) in self.entries.items() if now - t > self.seconds]:
                del self.entries[old]
            self.entries[key] = (now, groups)


def _groups(session, broadcast: Broadcast, send_at: datetime, rules: gate.Rules) -> list[Group]:
    cache = current_app.extensions.setdefault("console_forecast_groups",
                                              _GroupsCache(GROUPS_KEPT_SECONDS))  # fmt: skip
    window_start = send_at - gate.CAP_WINDOW
    key = (broadcast.audience_kind, broadcast.audience_value, broadcast.audience_campaign_id,
           rules.cap, window_start.replace(second=0, microsecond=0))  # fmt: skip
    groups = cache.get(key)
    if groups is None:
        groups = audience_groups(session=session, broadcast=broadcast,
                                 window_start=window_start, cap=rules.cap)  # fmt: skip
        cache.put(key, groups)
    return groups


@bp.post("/estimate")
@requires("broadcasts.write")
@reads_only("the composer's live forecast, asked on every pause in typing")
def estimate():
    """JSON for the composer: segments and cost, GSM-7 warning, audience size, forecast."""
    data = request.get_json(silent=True) or {}
    body = str(data.get("body") or "")
    rules = gate.Rules.from_settings(settings())
    try:
        spec = _audience(data)
        send_at = _send_at(data)
        with transaction() as session:
            broadcast = _transient(session, body or " ", spec)
            plan = forecast(
                session=session, broadcast=broadcast, send_at=send_at, rules=rules,
                cost_per_segment=settings().cost_per_segment,
                segments_per_second=settings().sender_mps,
                groups=_groups(session, broadcast, send_at, rules),
            )  # fmt: skip
    except (BadRequest, NotFound) as exc:
        return jsonify(error=str(exc)), 400
    est = svc.estimate_body(body, plan.audience, settings().cost_per_segment)
    return jsonify(
        chars=len(body), segments=est.segments, encoding=est.encoding,
        warning=est.ucs2_warning, gsm_safe_body=est.gsm_safe_body,
        gsm_safe_segments=est.gsm_safe_segments, too_long=len(body) > MAX_BODY_CHARS,
        audience=plan.audience, capped=plan.capped, unplaceable=plan.unplaceable,
        deferred=plan.deferred, deferred_until=local(plan.deferred_until) or None,
        sends=plan.sends, cost=f"{plan.cost:.2f}", send_at=local(plan.send_at),
        minutes=round(plan.seconds / 60, 1),
    )  # fmt: skip


@bp.post("/")
@requires("broadcasts.write")
def create():
    """Save the composed broadcast as a draft (``action=draft``) or schedule it."""
    form = request.form
    schedule = form.get("action") != "draft"
    try:
        spec = _audience(form)
        send_at = _send_at(form)
        with transaction() as session:
            created = svc.create_broadcast(
                session=session, body=form.get("body", ""), audience=spec,
                timezone=user_zone().key, send_at=send_at,
                recurrence=form.get("recurrence") or "none", created_by=current_user.email,
            )  # fmt: skip
            run = (
                svc.schedule_broadcast(session=session, broadcast_id=created.id)
                if schedule
                else None
            )
            log_action(
                session, "broadcast.schedule" if schedule else "broadcast.draft",
                str(created.id), audience=created.audience, send_at=created.send_at,
                recurrence=created.recurrence,
            )  # fmt: skip
    except (BadRequest, NotFound) as exc:
        flash(str(exc), "error")
        return redirect(url_for(".new"))
    if run is not None:
        _enqueue(run)
    return redirect(url_for(".show", broadcast_id=created.id))


@bp.post("/<int:broadcast_id>")
@requires("broadcasts.write")
def update(broadcast_id: int):
    """Save changes to a draft (``action=draft``) or save and schedule it."""
    form = request.form
    schedule = form.get("action") != "draft"
    try:
        spec = _audience(form)
        send_at = _send_at(form)
        with transaction() as session:
            changed = svc.update_draft(
                session=session, broadcast_id=broadcast_id, body=form.get("body", ""),
                audience=spec, timezone=user_zone().key, send_at=send_at,
                recurrence=form.get("recurrence") or "none",
            )  # fmt: skip
            log_action(
                session, "broadcast.edit", str(broadcast_id), audience=changed.audience,
                send_at=changed.send_at, recurrence=changed.recurrence,
                segments=changed.segments,
            )  # fmt: skip
            run = None
            if schedule:
                run = svc.schedule_broadcast(session=session, broadcast_id=broadcast_id)
                log_action(session, "broadcast.schedule", str(broadcast_id))
    except NotFound:
        abort(404)
    except BadRequest as exc:
        flash(str(exc), "error")
        return redirect(url_for(".edit", broadcast_id=broadcast_id))
    if run is not None:
        _enqueue(run)
    else:
        flash(f"Draft {broadcast_id} saved.", "ok")
    return redirect(url_for(".show", broadcast_id=broadcast_id))


def _enqueue(run) -> None:
    if enqueue_broadcast_start(run):
        flash(f"Broadcast {run.broadcast_id} scheduled.", "ok")
    else:
        flash(f"Broadcast {run.broadcast_id} scheduled; no queue answered, so the next "
              "worker to start picks it up.", "ok")  # fmt: skip


@bp.post("/<int:broadcast_id>/schedule")
@requires("broadcasts.write")
def schedule(broadcast_id: int):
    """Schedule a draft (refused when its time has passed: edit it first)."""
    try:
        with transaction() as session:
            broadcast = session.get(Broadcast, broadcast_id)
            if broadcast is None:
                abort(404)
            if broadcast.send_at.astimezone(UTC) < datetime.now(UTC) - PAST_GRACE:
                raise BadRequest(f"{local(broadcast.send_at)} is in the past: edit the draft")
            run = svc.schedule_broadcast(session=session, broadcast_id=broadcast_id)
            log_action(session, "broadcast.schedule", str(broadcast_id))
    except BadRequest as exc:
        flash(str(exc), "error")
        return redirect(url_for(".show", broadcast_id=broadcast_id))
    _enqueue(run)
    return redirect(url_for(".show", broadcast_id=broadcast_id))


@bp.post("/<int:broadcast_id>/cancel")
@requires("broadcasts.write")
def cancel(broadcast_id: int):
    """Stop the broadcast: nothing is sent after this commits."""
    try:
        with transaction() as session:
            result = svc.cancel_broadcast(session=session, broadcast_id=broadcast_id)
            log_action(session, "broadcast.cancel", str(broadcast_id), skipped=result.skipped)
    except NotFound:
        abort(404)
    except BadRequest as exc:
        flash(str(exc), "error")
    else:
        flash(f"Broadcast {broadcast_id} cancelled; {result.skipped} texts will not be sent.", "ok")
    return redirect(url_for(".show", broadcast_id=broadcast_id))


@bp.post("/test")
@requires("broadcasts.write")
@limiter.limit(TEST_SEND_LIMIT, key_func=_user_key)
def test_send():
    """Send the composed text once to the signed-in user's own phone (set by an admin), so
    the console cannot be used to text arbitrary numbers."""
    body = request.form.get("body", "")
    phone = current_user.phone
    if not phone:
        return jsonify(error="your account has no phone: ask an admin to add it"), 400
    if not body.strip() or len(body) > MAX_BODY_CHARS:
        return jsonify(error="the test text is empty or longer than 1600 characters"), 400
    message_id = enqueue_text(phone, body, kind="test", audit_target=mask(phone))
    return jsonify(queued=message_id is not None, to=mask(phone))


@bp.get("/<int:broadcast_id>")
@requires("broadcasts.read")
def show(broadcast_id: int) -> str:
    """Progress: counts per state, skips by reason, deferrals, ETA; cancel while open."""
    data = _progress(broadcast_id)
    return render_template("console/broadcast.html", p=data)


@bp.get("/<int:broadcast_id>/progress.json")
@requires("broadcasts.read")
def progress_json(broadcast_id: int):
    """The same figures as the page, for its live refresh."""
    return jsonify(_progress(broadcast_id))


def _progress(broadcast_id: int) -> dict:
    with transaction() as session:
        try:
            progress = broadcast_progress(session=session, broadcast_id=broadcast_id)
        except NotFound:
            abort(404)
        current = progress.current or (progress.runs[0] if progress.runs else None)
        sent = current.counts.get("sent", 0) if current else 0
        opted = 0
        if current and sent:
            run = session.get(BroadcastRun, current.run_id)
            opted = run_opt_outs(session=session, run=run)
    mps = settings().sender_mps
    counts = current.counts if current else {}
    open_now = current.open if current else 0
    return dict(
        id=progress.broadcast_id, status=progress.status, body=progress.body,
        audience=progress.audience, recurrence=progress.recurrence,
        send_at=local(progress.send_at), segments=progress.segments,
        encoding=progress.encoding, done=progress.done,
        run=None if current is None else dict(
            id=current.run_id, status=current.status, planned=current.planned,
            counts=counts, skipped=current.skipped, failed=current.failed,
            deferred_until=local(current.deferred_until) or None,
            delivered=current.delivered, undelivered=current.undelivered,
            eta_seconds=round(open_now * progress.segments / mps) if mps and open_now else 0,
        ),
        opt_outs=opted, opt_out_rate=f"{100 * opted / sent:.1f}%" if sent else "–",
        can_cancel=progress.status in ("draft", "scheduled", "sending"),
        can_schedule=progress.status == "draft",
        can_edit=progress.status == "draft" and not progress.audience.startswith("list"),
    )  # fmt: skip
