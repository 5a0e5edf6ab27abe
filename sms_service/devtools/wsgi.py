"""``gunicorn sms_service.devtools.wsgi:app``: the web app with the phone page (not production)."""

from config import ConfigError
from sms_service.devtools.webapp import create_dev_app

try:
    app = create_dev_app()
except ConfigError as exc:  # one clear line, as sms_service.web.wsgi does
    from gunicorn.errors import AppImportError

    raise AppImportError(f"sms_service: {exc}") from None
