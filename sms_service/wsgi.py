"""The one module that builds an app at import: ``gunicorn sms_service.wsgi:app``."""

from sms_service import create_app

app = create_app()
