"""gunicorn's ``gthread`` worker, closing its own listening socket when it begins to stop.

With ``WEB_REUSE_PORT=on``, ``gunicorn.conf.py`` turns on ``reuse_port``: each worker then
binds its own socket on the port (``SO_REUSEPORT``) and the kernel spreads new connections
over the workers' sockets.
On one shared socket, the connections of a burst go to whichever worker happens to accept
first and stay there (keep-alive): under wrk's 32 connections the two workers were seen
holding 1 and 31, 3 and 29, 6 and 26, so one process, bound by its GIL, answered nearly
everything while the other idled, and the texts it held waited twice as long
(bench/README.md, inbound_rate).

With its own socket, a worker that stops gracefully (a deploy, a reload, a restart) must
stop the kernel sending it new connections at once: gunicorn's gthread worker only stops
accepting, leaving its socket bound while it finishes its requests (up to
``graceful_timeout``), and connections the kernel queued on that socket meanwhile would
hang, then be reset when it exits, texts Twilio had delivered to nobody. This worker closes
its sockets as soon as it stops accepting, so new connections go to the other workers'
sockets. Connections already queued on a closing socket are reset by the kernel unless the
host sets ``net.ipv4.tcp_migrate_req=1`` (Linux 5.14+), which hands them to a sibling
socket: the README says when a socket per worker is safe. On the shared socket (the
default) this class is gthread unchanged.
"""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker as _GunicornThreadWorker


class ThreadWorker(_GunicornThreadWorker):
    """gthread; with ``reuse_port``, the worker's sockets close when it stops accepting for
    good."""

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        # Not accepting while still alive is gthread's connection limit (worker_connections),
        # which lifts again: only a stopping worker gives its sockets up.
        if not enabled and not self.alive and self.cfg.reuse_port:
            for listener in self.sockets:
                listener.close()
