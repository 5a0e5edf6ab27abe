"""The web app with the developer pages added: what ``sms-service dev`` and ``serve`` run.

The production app (:func:`sms_service.create_app`) knows nothing of devtools; this module
builds it and registers the phone page (:mod:`sms_service.devtools.phone`) on top. It
refuses production settings: the phone page lets whoever can reach it speak for any
number. ``gunicorn sms_service.devtools.wsgi:app`` serves this app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config import ConfigError, Settings

if TYPE_CHECKING:
    from flask import Flask


def create_dev_app(settings: Settings | None = None) -> Flask:
    """The production app plus the phone page; raises :class:`ConfigError` in production."""
    from sms_service.devtools import phone
    from sms_service.web.app import create_app

    settings = settings or Settings()
    if settings.is_production:
        raise ConfigError(
            "the developer pages are a development tool: APP_ENV=production "
            "(serve sms_service.web.wsgi:app)"
        )
    app = create_app(settings)
    app.register_blueprint(phone.bp)  # its form and script send a CSRF token
    return app
