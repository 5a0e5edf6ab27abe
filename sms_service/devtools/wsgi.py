"""``gunicorn sms_service.devtools.wsgi:app``: the web app with the phone page (not production)."""

from sms_service.devtools.webapp import create_dev_app

app = create_dev_app()
