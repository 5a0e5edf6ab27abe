"""Admin pages: accounts (``/console/users``), the audit log, and the queues.

The audit log is also open to compliance staff; the rest is admin-only (see ``roles``).
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from sms_service.errors import BadRequest, NotFound
from sms_service.models import StaffRole
from sms_service.services import audit, staff
from sms_service.web.console.auth import requires
from sms_service.web.console.common import log_action, settings, transaction

bp = Blueprint("admin", __name__)


@bp.get("/users")
@requires("users")
def users() -> str:
    """Every account, with forms to add one and disable one."""
    with transaction() as session:
        accounts = staff.list_users(session=session)
    return render_template("console/users.html", accounts=accounts, roles=list(StaffRole))


@bp.post("/users")
@requires("users")
def create_user():
    """Add an account (the admin sets a first password and hands it over)."""
    email = request.form.get("email", "")
    try:
        with transaction() as session:
            user = staff.create_user(
                session=session, email=email, role=request.form.get("role", ""),
                password=request.form.get("password", ""),
                timezone=request.form.get("timezone") or None,
                phone=request.form.get("phone") or None,
            )  # fmt: skip
            log_action(session, "user.create", user.email, role=user.role)
    except BadRequest as exc:
        flash(str(exc), "error")
    else:
        flash(f"Account {user.email} created.", "ok")
    return redirect(url_for(".users"))


@bp.post("/users/<int:user_id>/disable")
@requires("users")
def disable_user(user_id: int):
    """Disable an account and end its sessions."""
    from sms_service.models import StaffUser

    try:
        with transaction() as session:
            user = session.get(StaffUser, user_id)
            if user is None:
                raise NotFound(f"no account {user_id}")
            staff.disable_user(session=session, email=user.email)
            log_action(session, "user.disable", user.email)
    except NotFound as exc:
        flash(str(exc), "error")
    else:
        flash(f"Account {user.email} disabled.", "ok")
    return redirect(url_for(".users"))


@bp.get("/audit")
@requires("audit")
def audit_log() -> str:
    """The audit log, newest first, 50 a page (keyset pagination on the id)."""
    before = request.args.get("before", type=int)
    action = request.args.get("action") or None
    with transaction() as session:
        page = audit.entries(session=session, before=before, action=action)
    return render_template("console/audit.html", page=page, action=action or "")


@bp.get("/queues")
@requires("ops")
def queues() -> str:
    """RQ queues, workers and failed jobs, read from Redis."""
    import redis
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    from workers import QUEUES

    connection = current_app.extensions.get("rq_connection")
    rows, workers, error, backlog = [], [], None, None
    try:
        if connection is None:
            connection = redis.Redis.from_url(
                settings().redis_url, socket_connect_timeout=1, socket_timeout=2
            )
        for name in QUEUES:
            queue = Queue(name, connection=connection)
            rows.append(
                dict(
                    name=name,
                    queued=queue.count,
                    started=StartedJobRegistry(queue=queue).count,
                    scheduled=ScheduledJobRegistry(queue=queue).count,
                    failed=FailedJobRegistry(queue=queue).count,
                    failed_ids=FailedJobRegistry(queue=queue).get_job_ids(0, 9),
                )
            )
        workers = [
            dict(name=w.name, state=w.get_state(), queues=", ".join(w.queue_names()))
            for w in Worker.all(connection=connection)
        ]
        backlog = _throttle_backlog(connection)
    except redis.RedisError as exc:
        error = f"Redis did not answer: {exc}"
    return render_template(
        "console/queues.html", rows=rows, workers=workers, error=error,
        sender_mps=settings().sender_mps, backlog=backlog,
    )  # fmt: skip


def _throttle_backlog(connection) -> float:
    """Seconds until the send throttle's next free slot (0 when idle), on Redis' clock."""
    from sms_service.carrier.throttle import DEFAULT_KEY

    free = connection.get(DEFAULT_KEY)
    if free is None:
        return 0.0
    seconds, micros = connection.time()
    return max(0.0, (float(free) - (seconds * 1_000_000 + micros)) / 1_000_000)
