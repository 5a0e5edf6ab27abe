"""``sms-service info``: where this installation keeps its data and what it talks to.

Answers the first question of anyone running the service somewhere new ("which database
is this?") without reading code: the resolved settings, with secrets left out, and
whether the database and Redis answer.
"""

from __future__ import annotations

import click


def database_state(database_url: str) -> str:
    """A short description of the database: missing, unreachable, or at which revision."""
    from pathlib import Path

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from sms_service.db import make_engine

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).exists():
            return "not created yet (sms-service db upgrade creates it)"
    kwargs = {"connect_args": {"connect_timeout": 3}} if url.get_backend_name() != "sqlite" else {}
    engine = make_engine(database_url, **kwargs)
    try:
        with engine.connect() as conn:
            try:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except SQLAlchemyError:
                return "reachable, not migrated (run: sms-service db upgrade)"
        return f"reachable, schema revision {revision or 'none'}"
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
        return f"NOT reachable: {first[0] if first else type(exc).__name__}"
    finally:
        engine.dispose()


def redis_state(redis_url: str) -> str:
    """Whether a Redis answers at ``redis_url``."""
    from sms_service.devtools.devserver import redis_answers

    if redis_answers(redis_url):
        return "answers"
    return "no answer (workers need it; `sms-service dev` falls back to an in-process queue)"


@click.command("info")
def info_command() -> None:
    """Show the settings in force: database file or URL, Redis, carrier, program."""
    from importlib.metadata import PackageNotFoundError, version

    from config import default_data_dir
    from sms_service.cli.context import current
    from sms_service.db import display_url

    settings = current().settings
    try:
        installed = version("sms-service")
    except PackageNotFoundError:  # pragma: no cover - running from an unpacked tree
        installed = "unknown"
    carrier = settings.twilio_api_base_url or "Twilio's API"
    sender = (
        f"Messaging Service {settings.twilio_messaging_service_sid}"
        if settings.twilio_messaging_service_sid
        else settings.twilio_from
    )
    rows = [
        ("version", installed),
        ("APP_ENV", settings.app_env),
        ("DATABASE_URL", display_url(settings.database_url)),
        ("  state", database_state(settings.database_url)),
        ("  default data dir", str(default_data_dir())),
        ("REDIS_URL", display_url(settings.redis_url)),
        ("  state", redis_state(settings.redis_url)),
        ("carrier API", carrier),
        ("sends from", sender),
        ("PUBLIC_BASE_URL", settings.public_base_url or "(the URL each request arrives at)"),
        ("program", f"{settings.program_name} · {settings.program_frequency}"),
        ("DEFAULT_TIMEZONE", settings.default_timezone),
        ("QUIET_HOURS", settings.quiet_hours),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")
