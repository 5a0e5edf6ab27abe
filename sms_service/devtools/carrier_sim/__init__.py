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

from sms_service.devtools.carrier_sim.app import build_app
from sms_service.devtools.carrier_sim.config import CallbackMode, SimConfig
from sms_service.devtools.carrier_sim.runner import SimHandle, run_in_thread, serve_forever

__all__ = ["CallbackMode", "SimConfig", "SimHandle", "build_app", "run_in_thread", "serve_forever"]
