"""The Flask application factory. Only the web process (and tests) import this module:
workers and the CLI reach the rest of the package without loading Flask."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings
from sms_service import log_masking
from sms_service.db import make_engine
from sms_service.program import program_from


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app: settings, database engine, blueprints."""
    settings = settings or Settings()
    app = Flask(
        __name__,
        instance_relative_config=False,
        template_folder="templates",
        static_folder="static",
    )
    app.config.update(SECRET_KEY=settings.secret_key, SETTINGS=settings)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)  # type: ignore[method-assign]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log_masking.install()  # request lines (werkzeug, gunicorn) carry numbers in query strings

    engine = make_engine(settings.database_url)
    app.extensions["sms_engine"] = engine
    app.extensions["sms_program"] = program_from(settings)

    from sms_service.web.security import exempt_from_csrf, init_security

    init_security(app, settings)

    from sms_service.web.views import sms

    app.register_blueprint(exempt_from_csrf(sms.bp))  # signed by Twilio instead

    from sms_service.web.views import status

    app.register_blueprint(exempt_from_csrf(status.bp))

    from sms_service.devtools import phone

    # A dev tool with no login (off in production): anyone who reaches it may already post.
    app.register_blueprint(exempt_from_csrf(phone.bp))

    @app.context_processor
    def _layout_globals() -> dict[str, str]:
        return {"program_name": settings.program_name}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
