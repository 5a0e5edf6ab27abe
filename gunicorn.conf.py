"""gunicorn settings for the web process (``Procfile``: ``gunicorn -c gunicorn.conf.py …``).

Sized for the 2-core machines the service runs on (``bench/README.md``, inbound_rate):

* ``gthread`` workers: a webhook spends much of its time waiting for PostgreSQL, so a few
  threads per process keep both cores busy while one waits, at a fraction of the memory of
  more processes. ``WEB_CONCURRENCY`` processes (default 2, one per core) of ``WEB_THREADS``
  threads each (default 8: the inbound texts that wait together share one transaction,
  :mod:`sms_service.web.group_commit`, so more threads make larger groups; 8 and 12 were
  ahead of 4 in an interleaved A/B, bench/README.md).
* HTTP parsing in C: gunicorn uses its own ``gunicorn_h1c`` extension (a dependency) when it
  is installed (``http_parser`` "auto"); the pure-Python parser is the fallback. In one
  interleaved A/B under wrk the worker's CPU per text was 9% lower with it
  (bench/README.md, inbound_rate).
* one listening socket shared by the workers, which take new connections by least load
  (:mod:`sms_service.web.gunicorn_worker` says why; ``on_starting`` below makes the table
  of their loads before they fork, ``pre_fork`` gives each worker its slot, ``child_exit``
  frees it). ``WEB_REUSE_PORT=on`` (off by default) gives each worker its own socket
  (``reuse_port``) and the kernel spreads new connections over them; the worker class
  then closes its own socket as soon as it stops gracefully. A socket each needs a
  host set up for it (README, Pointing a Twilio number at the webhook): ``on_starting``
  keeps the shared socket when ``max_requests`` is set and warns when the kernel resets
  the connections queued on a stopping worker's socket.
* keep-alive: Twilio (and a proxy in front) can reuse connections; a sync worker closes
  each one after its answer.
* the access log stays on (one short line per request, numbers masked by the app's log
  record factory), written by a logger that reads only the five fields the line shows
  (:mod:`sms_service.web.access_log`); ``WEB_ACCESS_LOG=off`` behind a proxy that logs
  requests already.

Values come from :class:`config.Settings`, like every other setting; the address stays on
the Procfile line (``PORT`` is the platform's).
"""

import os

from config import Settings
from sms_service.web import gunicorn_worker

_settings = Settings()

workers = _settings.web_concurrency
worker_class = "sms_service.web.gunicorn_worker.ThreadWorker"
# One worker has nothing to spread, and on the shared socket a restarted worker's successor
# takes the connections that queued meanwhile.
reuse_port = _settings.web_reuse_port and workers > 1
threads = _settings.web_threads
keepalive = 15
# A webhook that has not answered within Twilio's 15 s is retried by Twilio anyway.
timeout = 30
graceful_timeout = 20
accesslog = "-" if _settings.web_access_log else None
logger_class = "sms_service.web.access_log.AccessLogger"

MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"


def on_starting(server):
    """Before the listening sockets are made and the workers fork: a socket per worker
    only where it is safe; on a shared socket, the table the workers balance by."""
    _choose_sockets(server)
    if not server.cfg.reuse_port and server.cfg.workers > 1:
        gunicorn_worker.TABLE = gunicorn_worker.LoadTable()


def pre_fork(server, worker):
    """In the arbiter, before the worker forks: its slot in the table."""
    if gunicorn_worker.TABLE is not None:
        worker.table_slot = gunicorn_worker.TABLE.assign()


def child_exit(server, worker):
    """In the arbiter, a worker has exited (even killed): its slot is free again."""
    if gunicorn_worker.TABLE is not None and worker.table_slot is not None:
        gunicorn_worker.TABLE.free(worker.table_slot)


def worker_exit(server, worker):
    """Run in the worker as it exits, and in the arbiter for a worker it found already
    gone when it meant to kill it (no child_exit follows): only the arbiter frees slots."""
    if os.getpid() == server.pid:
        child_exit(server, worker)


def _choose_sockets(server):
    cfg = server.cfg
    if not cfg.reuse_port:
        return
    if cfg.max_requests > 0:
        # Workers sharing the load reach max_requests together: no socket would be left.
        cfg.set("reuse_port", False)
        server.log.warning("WEB_REUSE_PORT: max_requests is set; the workers share a socket")
        return
    try:
        with open(MIGRATE_REQ) as setting:
            migrates = setting.read().strip() == "1"
    except OSError:
        migrates = False
    if not migrates:
        server.log.warning(
            "WEB_REUSE_PORT: %s is not 1; connections queued on a stopping worker's socket "
            "are reset (README)",
            MIGRATE_REQ,
        )
