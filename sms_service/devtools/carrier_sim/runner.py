"""Serving the simulator: in a background thread (tests, ``sms-service dev``) or in the
foreground (the CLI).

The thread has its own event loop, so the simulated latency never blocks the caller and
the caller's blocking calls (the official Twilio client) never block the simulator.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sms_service.devtools.carrier_sim.app import build_app
from sms_service.devtools.carrier_sim.config import SimConfig

# Enough for a benchmark's hundreds of connections opening at once.
BACKLOG = 2048
SHUTDOWN_TIMEOUT_S = 2.0


@dataclass
class SimHandle:
    """A simulator running in a background thread; ``stop()`` ends it (idempotent)."""

    url: str
    host: str
    port: int
    config: SimConfig
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close the callback session and wait for the thread to end."""
        if self._thread.is_alive():
            try:
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:  # the loop already closed
                pass
            self._thread.join(timeout)

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_in_thread(config: SimConfig | None = None, **overrides: Any) -> SimHandle:
    """Start a simulator in a daemon thread and return once it accepts connections.

    Without ``config`` one is built from ``overrides`` on a free port (``port=0``).
    Raises what the server raised while starting (e.g. ``OSError`` for a busy port).
    """
    if config is None:
        config = SimConfig(**({"port": 0} | overrides))
    elif overrides:
        raise TypeError("give a config or keyword settings, not both")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    result: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(
            build_app(config), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, config.host, config.port, backlog=BACKLOG)
            loop.run_until_complete(site.start())
            result["address"] = runner.addresses[0]
        except BaseException as exc:  # handed to the starting thread, which raises it
            result["error"] = exc
            started.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    thread = threading.Thread(target=serve, name="carrier-sim", daemon=True)
    thread.start()
    started.wait()
    if "error" in result:
        thread.join()
        raise result["error"]
    host, port = result["address"][:2]
    return SimHandle(
        url=f"http://{_url_host(host)}:{port}",
        host=host,
        port=port,
        config=config,
        _loop=loop,
        _thread=thread,
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve_forever(config: SimConfig, *, announce=print) -> None:
    """Serve in the foreground until interrupted (Ctrl-C / SIGTERM).

    This process does nothing else, so it tunes the garbage collector for throughput:
    every request allocates a few short-lived objects, and the default thresholds run
    a collection every few hundred requests for no gain.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    web.run_app(
        build_app(config),
        host=config.host,
        port=config.port,
        access_log=None,
        backlog=BACKLOG,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        print=announce,
    )
