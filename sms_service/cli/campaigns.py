"""``sms-service campaign``: petition campaigns and their keywords."""

from __future__ import annotations

import click

from sms_service.cli.context import current
from sms_service.db import session_scope
from sms_service.errors import BadRequest


@click.group("campaign")
def campaign() -> None:
    """Petition campaigns and their keywords."""


@campaign.command("create")
@click.argument("keyword")
@click.option("--title", required=True, help="Shown in replies, e.g. 'Release the 64'.")
@click.option("--text", "text_", default="", help="The petition text.")
def campaign_create(keyword: str, title: str, text_: str) -> None:
    """Create an active campaign signed by texting KEYWORD (or SIGN)."""
    from sms_service.services.campaigns import create_campaign

    try:
        with session_scope(current().engine) as session:
            created = create_campaign(session=session, keyword=keyword, title=title, text=text_)
            click.echo(f"campaign {created.id} {created.keyword}: {created.title}")
    except BadRequest as exc:
        raise click.ClickException(str(exc)) from exc


@campaign.command("list")
def campaign_list() -> None:
    """List campaigns, newest first."""
    from sms_service.services.campaigns import list_campaigns

    with session_scope(current().engine) as session:
        for c in list_campaigns(session=session):
            state = "active" if c.active else "closed"
            click.echo(f"{c.id}\t{c.keyword}\t{state}\t{c.title}")
