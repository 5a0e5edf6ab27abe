"""``sms-service carrier-sim`` / ``python -m sms_service.devtools.carrier_sim``: a fake Twilio.

Registered on the ``sms-service`` group by :mod:`sms_service.cli.main`.
"""

from __future__ import annotations

import logging

import click

from sms_service.devtools.carrier_sim.config import CallbackMode, SimConfig


@click.command("carrier-sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Delay before each API answer and between status changes.",
)
@click.option(
    "--jitter-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Extra random delay, uniform in 0..JITTER, added to each delay.",
)
@click.option(
    "--error-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Fraction of API sends answered with HTTP 500.",
)
@click.option(
    "--undelivered-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Fraction of accepted sends ending undelivered (30003 or 30005).",
)
@click.option(
    "--max-concurrency",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="API requests in flight before HTTP 429.",
)
@click.option(
    "--webhook-url",
    default=None,
    help="The service's inbound webhook [default: PUBLIC_BASE_URL/sms/inbound].",
)
@click.option("--account-sid", default=None, help="[default: TWILIO_ACCOUNT_SID]")
@click.option("--auth-token", default=None, help="[default: TWILIO_AUTH_TOKEN]")
@click.option(
    "--short-code", default=None, help="Default To of /sim/inbound [default: TWILIO_FROM]."
)
@click.option(
    "--callbacks",
    type=click.Choice([m.value for m in CallbackMode]),
    default="all",
    show_default=True,
    help="Status callbacks to post: every change, the final one, or none.",
)
@click.option(
    "--advanced-opt-out/--no-advanced-opt-out",
    default=None,
    help="Mark inbound STOP/START/HELP with OptOutType, as a Messaging Service with Advanced "
    "Opt-Out does [default: on when TWILIO_MESSAGING_SERVICE_SID is set].",
)
@click.option("--seed", type=int, default=None, help="Make sids and random fates repeatable.")
@click.option(
    "--max-messages",
    default=250_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Messages kept in memory; the oldest are forgotten first.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
)
def carrier_sim_command(**options) -> None:
    """Run the carrier simulator: Twilio's Messages API and webhooks on this machine."""
    from sms_service.cli.context import load_settings
    from sms_service.cli.ports import ensure_port_free
    from sms_service.devtools.carrier_sim.runner import serve_forever

    ensure_port_free(options["host"], options["port"])
    logging.basicConfig(level=options.pop("log_level"), format="%(levelname)s %(name)s %(message)s")
    given = {name: value for name, value in options.items() if value is not None}
    try:
        config = SimConfig.from_settings(load_settings(), **given)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"carrier simulator: latency {config.latency_ms:g} ms (+0..{config.jitter_ms:g}), "
        f"errors {config.error_rate:g}, undelivered {config.undelivered_rate:g}, "
        f"max concurrency {config.max_concurrency}, callbacks {config.callbacks}, "
        f"webhook {config.webhook_url or '-'}, "
        f"inbound {'with OptOutType (Advanced Opt-Out)' if config.advanced_opt_out else 'plain'}"
    )
    serve_forever(config, announce=click.echo)
