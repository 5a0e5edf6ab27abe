"""Console sign-in: ``/login`` and ``/logout``, the guard in front of every ``/console``
route, and the ``requires(area)`` decorator views declare their area with.

Sessions end after ``SESSION_IDLE_MINUTES`` without a request (the cookie's lifetime,
moved on by each request) and in any case ``MAX_SESSION_HOURS`` after sign-in. The login
cookie's user id carries the account's ``session_token``, so logout, disabling an account
or a new password end every copy of its cookies, not only the one in this browser.

Failed sign-ins are limited per account and per address in the shared limiter storage,
so the limits hold across gunicorn workers and hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user

from sms_service.db import session_scope
from sms_service.models import StaffUser
from sms_service.services import audit, staff
from sms_service.web.console.roles import FULL_NUMBERS, allowed
from sms_service.web.security import client_ip, limiter

MAX_SESSION_HOURS = 12
LOGIN_LIMIT_PER_ACCOUNT = "5 per 15 minutes"
LOGIN_LIMIT_PER_IP = "30 per 15 minutes"

bp = Blueprint("auth", __name__, template_folder="templates")
login_manager = LoginManager()
F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in account as the request sees it (a detached copy, no ORM session)."""

    id: int
    email: str
    role: str
    timezone: str | None
    phone: str | None
    session_token: str
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    @classmethod
    def of(cls, user: StaffUser) -> ConsoleUser:
        """A copy of ``user``."""
        return cls(user.id, user.email, user.role, user.timezone, user.phone, user.session_token)

    def get_id(self) -> str:
        """What the session cookie stores: the id and the token that must still match."""
        return f"{self.id}:{self.session_token}"

    @property
    def sees_full_numbers(self) -> bool:
        """True for roles that need to read phone numbers in full."""
        return self.role in FULL_NUMBERS


@login_manager.user_loader
def _load_user(user_id: str) -> ConsoleUser | None:
    ident, _, token = user_id.partition(":")
    if not ident.isdigit() or not token:
        return None
    with session_scope(current_app.extensions["sms_engine"]) as db:
        user = db.get(StaffUser, int(ident))
        if user is None or not user.active or user.session_token != token:
            return None
        return ConsoleUser.of(user)


def requires(area: str) -> Callable[[F], F]:
    """Declare the console area a view belongs to (see ``roles.AREAS``)."""

    def mark(view: F) -> F:
        view.console_area = area  # type: ignore[attr-defined]
        return view

    return mark


def reads_only(reason: str) -> Callable[[F], F]:
    """Mark a view that takes POST but changes nothing (``reason`` says why), so the
    console does not audit each call of it (see :func:`audit_net`)."""

    def mark(view: F) -> F:
        view.console_reads_only = reason  # type: ignore[attr-defined]
        return view

    return mark


def audit_net(response: Response) -> Response:
    """After every console request: an action (any method but GET) or a download
    (``Content-Disposition: attachment``) that its view did not audit itself — refused
    by the role check, by the input, or a view that forgot — gets an entry naming the
    endpoint, the path and the answer's status. Plain page views are not entries."""
    from flask import g

    if not current_user.is_authenticated or g.get("console_audited"):
        return response
    view = current_app.view_functions.get(request.endpoint or "")
    download = response.headers.get("Content-Disposition", "").startswith("attachment")
    action = request.method not in ("GET", "HEAD", "OPTIONS")
    if not (download or action) or getattr(view, "console_reads_only", None):
        return response
    name = (request.endpoint or "unknown").removeprefix("console.")
    with session_scope(current_app.extensions["sms_engine"]) as db:
        audit.record(
            session=db, user=db.get(StaffUser, current_user.id),
            action=name if response.status_code < 400 else f"{name}.refused",
            target=request.path[:200], ip=client_ip(),
            detail={"method": request.method, "status": response.status_code},
        )  # fmt: skip
    return response


def area_of(endpoint: str | None) -> str | None:
    """The area the view at ``endpoint`` declared, or None."""
    view = current_app.view_functions.get(endpoint or "")
    return getattr(view, "console_area", None)


def guard() -> Response | None:
    """Before every console request: signed in (else to /login), in time, allowed (else 403)."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if time.time() - session.get("login_at", 0) > MAX_SESSION_HOURS * 3600:
        logout_user()
        session.clear()
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    area = area_of(request.endpoint)
    if area is None or not allowed(current_user.role, area):
        abort(403)
    return None


def _account_key() -> str:
    return "account:" + (request.form.get("email") or "").strip().lower()[:254]


def _failed(response: Response) -> bool:
    return response.status_code == 401


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //evil): open redirects refused."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and "\\" not in target:
            return target
    return url_for("console.dashboard.home")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT_PER_IP, methods=["POST"], deduct_when=_failed)
@limiter.limit(
    LOGIN_LIMIT_PER_ACCOUNT, methods=["POST"], deduct_when=_failed, key_func=_account_key
)
def login() -> Response | str | tuple[str, int]:
    """The sign-in form (``email``, ``password``, ``csrf_token``)."""
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("console/login.html", email="", error=None)
    email = (request.form.get("email") or "").strip()
    password = request.form.get("password") or ""
    with session_scope(current_app.extensions["sms_engine"]) as db:
        user = staff.authenticate(session=db, email=email, password=password)
        if user is None:
            audit.record(
                session=db, user=None, actor=email[:254] or "anonymous",
                action="login.failed", ip=client_ip(),
            )  # fmt: skip
        else:
            audit.record(session=db, user=user, action="login", ip=client_ip())
            signed_in = ConsoleUser.of(user)
    if user is None:
        error = "That email and password do not match an active account."
        return render_template("console/login.html", email=email, error=error), 401
    session.clear()  # nothing from before sign-in carries over
    session.permanent = True
    login_user(signed_in)
    session["login_at"] = time.time()
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
def logout() -> Response:
    """Sign out here and everywhere: the account gets a new session token."""
    if current_user.is_authenticated:
        with session_scope(current_app.extensions["sms_engine"]) as db:
            user = db.get(StaffUser, current_user.id)
            if user is not None:
                user.session_token = staff.new_session_token()
                db.add(user)
                audit.record(session=db, user=user, action="logout", ip=client_ip())
        logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.app_errorhandler(429)
def too_many(error) -> tuple[str, int]:
    """A limit was reached: say so plainly, on the login form when it was a sign-in."""
    if request.endpoint == "auth.login":
        message = "Too many failed sign-ins. Wait 15 minutes and try again."
        email = request.form.get("email", "")
        return render_template("console/login.html", email=email, error=message), 429
    return render_template("console/error.html", code=429, message=str(error.description)), 429
