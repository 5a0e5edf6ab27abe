"""The staff console: every page under ``/console``, signed in, checked against the role.

``init_console(app)`` registers sign-in (``/login``, ``/logout``) and the ``console``
blueprint, whose guard (:func:`.auth.guard`) runs before every nested page blueprint.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template, request, url_for
from flask_login import current_user

from sms_service.web.console import auth
from sms_service.web.console.common import local, shown_phone
from sms_service.web.console.roles import allowed

# (area, endpoint, label) of the navigation, in order; links show only where allowed.
NAV = (
    ("dashboard", "console.dashboard.home", "Dashboard"),
    ("campaigns.read", "console.campaigns.index", "Campaigns"),
    ("broadcasts.read", "console.broadcasts.index", "Broadcasts"),
    ("subscribers", "console.subscribers.index", "Subscribers"),
    ("compliance", "console.compliance.lookup", "Look-up"),
    ("compliance", "console.compliance.reviews", "Reviews"),
    ("compliance", "console.compliance.exports_page", "Exports"),
    ("compliance", "console.proof.imports_page", "Imports"),
    ("compliance", "console.proof.staff_opt_out", "Record opt-out"),
    ("compliance", "console.proof.verify_page", "Verify"),
    ("audit", "console.admin.audit_log", "Audit log"),
    ("users", "console.admin.users", "Users"),
    ("ops", "console.admin.queues", "Queues"),
)


def build_console() -> Blueprint:
    """The ``/console`` blueprint with every page blueprint nested in it."""
    from sms_service.web.console import (
        admin,
        broadcasts,
        campaigns,
        compliance,
        dashboard,
        profile,
        proof,
        subscribers,
    )

    console = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")
    console.before_request(auth.guard)

    console.after_request(auth.audit_net)

    @console.after_request
    def _no_store(response):
        response.headers["Cache-Control"] = "no-store"
        return response

    @console.errorhandler(403)
    def _forbidden(error):
        message = "Your role does not include this page."
        return render_template("console/error.html", code=403, message=message), 403

    for module in (dashboard, campaigns, broadcasts, subscribers, compliance, proof, admin,
                   profile):  # fmt: skip
        console.register_blueprint(module.bp)
    return console


def init_console(app: Flask) -> None:
    """Sign-in, the console pages, and the template helpers they use."""
    auth.login_manager.init_app(app)
    auth.login_manager.login_view = "auth.login"
    # A stolen cookie from another address still works; "strong" would log out staff on
    # every mobile network change, so the token rotation (see auth) carries the weight.
    auth.login_manager.session_protection = "basic"
    app.register_blueprint(auth.bp)
    app.register_blueprint(build_console())
    app.add_template_filter(local, "local")
    app.add_template_filter(shown_phone, "phone")

    @app.context_processor
    def _console_nav() -> dict:
        if not current_user.is_authenticated:
            return {"console_nav": ()}
        links = []
        for area, endpoint, label in NAV:
            if allowed(current_user.role, area) and endpoint in app.view_functions:
                url = url_for(endpoint)
                here = request.path == url or (
                    url != url_for("console.dashboard.home") and request.path.startswith(url)
                )
                links.append((url, label, here))
        return {"console_nav": tuple(links)}
