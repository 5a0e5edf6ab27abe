"""gunicorn settings for the web process (``Procfile``: ``gunicorn -c gunicorn.conf.py …``).

Sized for the 2-core machines the service runs on (``bench/README.md``, inbound_rate):

* ``gthread`` workers: a webhook spends much of its time waiting for PostgreSQL, so a few
  threads per process keep both cores busy while one waits, at a fraction of the memory of
  more processes. ``WEB_CONCURRENCY`` processes (default 2, one per core) of ``WEB_THREADS``
  threads each (default 4).
* HTTP parsing in C: gunicorn uses its own ``gunicorn_h1c`` extension (a dependency) when it
  is installed (``http_parser`` "auto"); the pure-Python parser is the fallback. In one
  interleaved A/B under wrk the worker's CPU per text was 9% lower with it
  (bench/README.md, inbound_rate).
* keep-alive: Twilio (and a proxy in front) can reuse connections; a sync worker closes
  each one after its answer.
* the access log stays on (one short line per request, numbers masked by the app's log
  record factory), written by a logger that reads only the five fields the line shows
  (:mod:`sms_service.web.access_log`); ``WEB_ACCESS_LOG=off`` behind a proxy that logs
  requests already.

Values come from :class:`config.Settings`, like every other setting; the address stays on
the Procfile line (``PORT`` is the platform's).
"""

from config import Settings

_settings = Settings()

workers = _settings.web_concurrency
worker_class = "gthread"
threads = _settings.web_threads
keepalive = 15
# A webhook that has not answered within Twilio's 15 s is retried by Twilio anyway.
timeout = 30
graceful_timeout = 20
accesslog = "-" if _settings.web_access_log else None
logger_class = "sms_service.web.access_log.AccessLogger"
