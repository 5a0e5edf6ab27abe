"""The one module that builds an app at import: ``gunicorn sms_service.web.wsgi:app``."""

from sms_service.web.app import create_app

app = create_app()
