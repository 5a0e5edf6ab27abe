"""``/console/profile``: the signed-in user's own account, and a new password for it.

The current password is asked for (a session left open on a shared computer must not be
enough to take the account over), attempts are limited per account, and both outcomes are
audited. A new password gives the account a new session token, so every other session of
it ends; this one is signed in again with the new token.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user

from sms_service.errors import BadRequest, NotFound
from sms_service.models import StaffUser
from sms_service.services import staff
from sms_service.web.console.auth import ConsoleUser, requires
from sms_service.web.console.common import log_action, transaction
from sms_service.web.security import limiter

bp = Blueprint("profile", __name__)
PASSWORD_CHANGE_LIMIT = "5 per 15 minutes"


def _user_key() -> str:
    return f"password:{current_user.id}"


def _refused(response) -> bool:
    return response.status_code == 400


@bp.get("/profile")
@requires("profile")
def show() -> str:
    """The account: email, role, zone, test phone, last sign-in; the password form."""
    with transaction() as db:
        user = db.get(StaffUser, current_user.id)
    return render_template("console/profile.html", user=user, error=None)


@bp.post("/profile/password")
@requires("profile")
@limiter.limit(PASSWORD_CHANGE_LIMIT, key_func=_user_key, deduct_when=_refused)
def change_password():
    """Check the current password, set the new one, end the account's other sessions."""
    form = request.form
    try:
        with transaction() as db:
            user = staff.change_password(
                session=db, user_id=current_user.id, current=form.get("current_password", ""),
                new=form.get("new_password", ""), confirm=form.get("confirm_password", ""),
            )  # fmt: skip
            log_action(db, "password.change", user.email)
            signed_in = ConsoleUser.of(user)
    except (BadRequest, NotFound) as exc:
        with transaction() as db:
            log_action(db, "password.change.refused", current_user.email, reason=str(exc))
            user = db.get(StaffUser, current_user.id)
        return render_template("console/profile.html", user=user, error=str(exc)), 400
    login_at = session.get("login_at")
    login_user(signed_in)  # the cookie now carries the new token; other sessions end
    session["login_at"] = login_at
    flash("Password changed. Other sessions of this account are signed out.", "ok")
    return redirect(url_for(".show"), code=303)
