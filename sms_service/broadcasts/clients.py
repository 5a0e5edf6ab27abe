"""A pool of threads for API calls, each thread with its own Twilio client.

A broadcast job sends many texts with bounded concurrency. A ``twilio.rest.Client`` must
not be shared between threads (twilio 9.13 keeps the last response on the instance), so
each thread builds one on first use and keeps its keep-alive connections for the job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from twilio.rest import Client

from sms_service.carrier.client import close_twilio_client


class ClientPool:
    """Threads that make API calls, each with its own Twilio client (keep-alive HTTP).

    A ``twilio.rest.Client`` must not be shared between threads (twilio 9.13 keeps the
    last response on it), so each thread builds one on first use.
    """

    def __init__(self, factory: Callable[[], Client], size: int) -> None:
        self._factory = factory
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="bcast-send")

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._factory()
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def map(self, fn, items: Sequence, due: Sequence[float] | None = None) -> list[tuple]:
        """``fn(client, item)`` for every item; ``(result, None)`` or ``(None, exception)``
        each, in order. ``due`` gives each call's earliest start (``time.monotonic``)."""

        def call(index: int):
            if due is not None:
                delay = due[index] - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            return fn(self._client(), items[index])

        futures = [self._executor.submit(call, i) for i in range(len(items))]
        results = []
        for future in futures:
            try:
                results.append((future.result(), None))
            except Exception as exc:  # handed back to the caller, per item
                results.append((None, exc))
        return results

    def close(self) -> None:
        """Stop the threads and close every client's connections."""
        self._executor.shutdown(wait=True)
        for client in self._clients:
            close_twilio_client(client)
