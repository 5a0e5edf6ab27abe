"""The Flask application factory. Only the web process (and tests) import this module:
workers and the CLI reach the rest of the package without loading Flask."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings
from sms_service import log_masking
from sms_service.db import make_engine
from sms_service.program import program_from, reach_from


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app: settings, database engine, blueprints."""
    settings = settings or Settings()
    app = Flask(
        __name__,
        instance_relative_config=False,
        template_folder="templates",
        static_folder="static",
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SETTINGS=settings,
        # Werkzeug answers 413 from Content-Length alone, before reading the body.
        MAX_CONTENT_LENGTH=settings.max_content_length,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # No record carries its caller or thread: no format here shows them, and working out
    # the caller (a walk up the stack) was half of every line's cost; an inbound text writes
    # two lines (the access line, the text's). The process id stays: gunicorn's error log
    # prints it. The logging HOWTO's own advice for what is not printed.
    logging._srcfile = None
    logging.logThreads = logging.logMultiprocessing = False
    log_masking.install()  # request lines (werkzeug, gunicorn) carry numbers in query strings

    # No pre-ping: it is a round trip before every request's transaction. A connection the
    # database dropped fails its transaction instead, which run_transaction runs again.
    engine = make_engine(settings.database_url, pool_pre_ping=False, threads=settings.web_threads)
    app.extensions["sms_engine"] = engine
    app.extensions["sms_program"] = program_from(settings)
    app.extensions["sms_reach"] = reach_from(settings)
    if settings.inbound_group_commit and engine.dialect.name == "postgresql":
        from sms_service.web.group_commit import GroupCommit

        app.extensions["sms_group_commit"] = GroupCommit().receive

    from sms_service.web.security import init_security, twilio_webhook

    init_security(app, settings)

    from sms_service.web.views import sms

    app.register_blueprint(twilio_webhook(sms.bp))

    from sms_service.web.views import status

    app.register_blueprint(twilio_webhook(status.bp))

    from sms_service.web.console import init_console

    init_console(app)

    from sms_service.web.public import register_public

    register_public(app)

    @app.context_processor
    def _layout_globals() -> dict[str, str]:
        return {"program_name": settings.program_name}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Inbound texts are answered in front of Flask's request machinery (the module says
    # what it takes and what it hands on to the view above).
    from sms_service.web.inbound_lane import InboundLane

    app.wsgi_app = InboundLane(app, app.wsgi_app)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        # X-Forwarded-* are believed only from as many hops as the operator says exist;
        # otherwise anyone could claim any client address, scheme or host. Outermost, so
        # the inbound lane sees what Flask sees.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    return app
