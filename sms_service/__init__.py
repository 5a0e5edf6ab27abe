"""sms_service: SMS keyword campaigns for advocacy organisations.

``create_app(settings=None)`` builds the Flask app; nothing is built at import time except
in :mod:`sms_service.wsgi`, which gunicorn loads.
"""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings

from .db import make_engine
from .domain.replies import Program


def program_from(settings: Settings) -> Program:
    """The program identity used in every reply, from settings."""
    return Program(
        name=settings.program_name,
        help_contact=settings.program_help_contact,
        frequency=settings.program_frequency,
        terms_url=settings.program_terms_url,
    )


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app: settings, database engine, blueprints."""
    settings = settings or Settings()
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(SECRET_KEY=settings.secret_key, SETTINGS=settings)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)  # type: ignore[method-assign]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    engine = make_engine(settings.database_url)
    app.extensions["sms_engine"] = engine
    app.extensions["sms_program"] = program_from(settings)

    from .views import sms

    app.register_blueprint(sms.bp)

    from .views import status

    app.register_blueprint(status.bp)

    from .views import phone

    app.register_blueprint(phone.bp)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
