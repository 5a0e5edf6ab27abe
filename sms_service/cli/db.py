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
    from sms_service.db.migrate import check_upgrade_target, upgrade

    url = current().settings.database_url
    check_upgrade_target(url, revision)
    upgrade(url, revision)
    click.echo(f"database at revision {revision}")


@db.command("create")
def db_create() -> None:
    """Create the PostgreSQL database DATABASE_URL names, if it does not exist yet."""
    from sms_service.db import display_url
    from sms_service.db.migrate import create_database

    url = current().settings.database_url
    if not url.startswith("postgresql"):
        click.echo(f"nothing to create: {display_url(url)} is made on first use")
        return
    made = create_database(url)
    click.echo(f"{'created' if made else 'already exists:'} {display_url(url)}")
