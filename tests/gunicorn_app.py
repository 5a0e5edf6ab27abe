"""A WSGI app for tests of the web process's gunicorn settings: ``/pid`` answers the
worker's process id; ``/slow`` answers it after ``SLOW_SECONDS`` (a request in flight)."""

from __future__ import annotations

import os
import time


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(float(os.environ.get("SLOW_SECONDS", "3")))
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
