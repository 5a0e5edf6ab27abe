"""gunicorn's logger with a cheaper access line (``gunicorn.conf.py``: ``logger_class``).

gunicorn builds its access line from a dictionary of every atom it knows, every request
and response header and every WSGI environ variable, on every request, then formats the
configured pattern from it. The line here shows five of them, so only those five are read:
the client address, the request line, the status, the bytes sent and the time taken,

    127.0.0.1 "POST /sms/inbound HTTP/1.1" 200 250 3ms

which is what ``access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'`` gave. Numbers in
request lines are still masked by the app's log record factory.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

LINE = '%s "%s %s %s" %s %s %dms'


class AccessLogger(Logger):
    """gunicorn's own logger; only :meth:`access` differs."""

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        millis = request_time.seconds * 1000 + request_time.microseconds // 1000
        self.access_log.info(
            LINE,
            environ.get("REMOTE_ADDR", "-"),
            environ["REQUEST_METHOD"],
            environ["RAW_URI"],
            environ["SERVER_PROTOCOL"],
            status,
            "-" if sent is None else sent,
            millis,
        )
