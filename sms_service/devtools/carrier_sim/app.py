"""``build_app(config)``: the simulator as an aiohttp application.

Nothing is built at import: the CLI, :func:`~.runner.run_in_thread` and tests each build
their own application with its own state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sms_service.devtools.carrier_sim import api, control
from sms_service.devtools.carrier_sim.config import SimConfig
from sms_service.devtools.carrier_sim.simulator import SIMULATOR, Simulator


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    # The outgoing session must be opened on the loop that serves the app, and closed
    # with it, so it lives in the app's cleanup context.
    callbacks = app[SIMULATOR].callbacks
    await callbacks.start()
    yield
    await callbacks.close()


def build_app(config: SimConfig) -> web.Application:
    """A fresh simulator application for ``config`` (serve it with any aiohttp runner)."""
    app = web.Application()
    app[SIMULATOR] = Simulator(config)
    api.add_routes(app)
    control.add_routes(app)
    app.cleanup_ctx.append(_client_session)
    return app
