"""The one module that builds an app at import: ``gunicorn sms_service.web.wsgi:app``.

Bad settings stop gunicorn with one line per bad variable (``QUIET_HOURS: ...``) and no
traceback: gunicorn prints an ``AppImportError``'s message alone and halts instead of
restarting workers that cannot boot.
"""

from config import SettingsError
from sms_service.web.app import create_app

try:
    app = create_app()
except SettingsError as exc:
    from gunicorn.errors import AppImportError

    raise AppImportError(f"sms_service: bad settings:\n{exc}") from None
