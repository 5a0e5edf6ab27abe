"""sms_service: SMS keyword campaigns for advocacy organisations.

``create_app(settings=None)`` builds the Flask app; nothing is built at import time except
in :mod:`sms_service.web.wsgi`, which gunicorn loads. Flask is imported only when an app is
built, so RQ workers that import the package's services never load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app: settings, database engine, blueprints (see :mod:`sms_service.web.app`)."""
    from sms_service.web.app import create_app as build

    return build(settings)
