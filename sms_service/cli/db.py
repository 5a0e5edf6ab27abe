"""``sms-service db``: the database schema."""

from __future__ import annotations

import click

from sms_service.cli.context import current


@click.group("db")
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to DATABASE_URL."""
    from sms_service.db.migrate import upgrade

    upgrade(current().settings.database_url, revision)
    click.echo(f"database at revision {revision}")
