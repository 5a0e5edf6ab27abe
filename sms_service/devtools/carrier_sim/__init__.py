"""The carrier simulator: Twilio's Messages API and webhooks, served on loopback.

Twilio's servers cannot be reached in development, tests and benchmarks, so this package
stands in for them over real HTTP: the official ``twilio`` client sends to it (see
``sms_service.carrier.client``), it answers with Twilio's JSON and error codes, posts
signed status callbacks, and posts signed inbound texts to the service's webhook as a
supporter's phone would.

Programmatic use::

    from sms_service.devtools.carrier_sim import SimConfig, run_in_thread

    with run_in_thread(SimConfig(port=0, latency_ms=50)) as sim:
        ...  # TWILIO_API_BASE_URL=sim.url

Parts: ``config`` (settings), ``simulator`` (state and rules), ``api`` (Twilio routes),
``callbacks`` (status callbacks), ``phone`` (``/sim/inbound``), ``control`` (the other
``/sim/`` routes), ``app`` (``build_app``), ``runner`` (threads and foreground), ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sms_service.devtools.carrier_sim.config import CallbackMode, SimConfig

if TYPE_CHECKING:
    from sms_service.devtools.carrier_sim.app import build_app
    from sms_service.devtools.carrier_sim.runner import SimHandle, run_in_thread, serve_forever

__all__ = ["CallbackMode", "SimConfig", "SimHandle", "build_app", "run_in_thread", "serve_forever"]

# The server parts (aiohttp) load on first use: every ``sms-service`` command imports the
# ``carrier-sim`` command's options (``config``), and an export should not pay for aiohttp.
_LAZY = {
    "build_app": "app",
    "SimHandle": "runner",
    "run_in_thread": "runner",
    "serve_forever": "runner",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
