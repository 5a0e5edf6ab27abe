"""``sms-service serve`` and ``sms-service dev``: the web app on this machine."""

from __future__ import annotations

import click

from sms_service.cli.context import current


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Migrate the database and serve the web app with the phone page (development server)."""
    from config import ConfigError
    from sms_service.cli.ports import ensure_port_free
    from sms_service.db.migrate import upgrade
    from sms_service.devtools.webapp import create_dev_app

    ensure_port_free(host, port)
    settings = current().settings
    try:
        app = create_dev_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    upgrade(settings.database_url)
    from sms_service.db import display_url

    click.echo(f"database {display_url(settings.database_url)}")
    app.run(host=host, port=port)


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--sim-port", default=8765, show_default=True, type=int)
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Simulated carrier latency.",
)
def dev(host: str, port: int, sim_port: int, latency_ms: float) -> None:
    """Everything at once on the embedded defaults: web, worker, scheduler, carrier simulator."""
    from config import ConfigError
    from sms_service.cli.ports import ensure_port_free
    from sms_service.devtools.devserver import run_dev

    ensure_port_free(host, port)
    ensure_port_free("127.0.0.1", sim_port, "--sim-port")

    if current().settings.is_production:
        raise click.ClickException("`sms-service dev` is a development tool: APP_ENV=production")

    try:
        run_dev(host=host, port=port, sim_port=sim_port, latency_ms=latency_ms)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
