"""``sms-service api-token create|list|revoke``: bearer tokens for the JSON API."""

from __future__ import annotations

import click

from config import Settings
from sms_service.db import make_engine, session_scope
from sms_service.errors import BadRequest, NotFound
from sms_service.services import api_tokens


def _engine():  # SQLAlchemy engine
    try:
        return make_engine(Settings().database_url)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("api-token")
def api_token() -> None:
    """Bearer tokens for /api/v1 (stored hashed; shown once)."""


@api_token.command("create")
@click.option("--name", required=True, help="Who uses it, e.g. 'main website'.")
@click.option(
    "--scope", required=True, type=click.Choice(api_tokens.SCOPES),
    help="signatures:write (sign, and read) or signatures:read (counts and progress only).",
)  # fmt: skip
def create(name: str, scope: str) -> None:
    """Create a token and print it once: it cannot be shown again."""
    engine = _engine()
    try:
        with session_scope(engine) as session:
            token = api_tokens.create_token(session=session, name=name, scope=scope)
    except BadRequest as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"token {token.id} ({token.name}, {token.scope}):")
    click.echo(token.secret)
    click.echo("Store it now: only its hash is kept.", err=True)


@api_token.command("list")
def list_() -> None:
    """Every token: id, name, scope, prefix, created, last used, revoked."""
    engine = _engine()
    try:
        with session_scope(engine) as session:
            rows = api_tokens.list_tokens(session=session)
            for t in rows:
                used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
                state = (
                    f"revoked {t.revoked_at.isoformat(timespec='seconds')}"
                    if t.revoked_at
                    else "live"
                )
                click.echo(
                    f"{t.id}\t{t.name}\t{t.scope}\t{t.prefix}…\t"
                    f"{t.created_at.isoformat(timespec='seconds')}\t{used}\t{state}"
                )
    finally:
        engine.dispose()


@api_token.command("revoke")
@click.argument("token_id", type=int)
def revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID: every later request with it gets 401."""
    engine = _engine()
    try:
        with session_scope(engine) as session:
            row = api_tokens.revoke_token(session=session, token_id=token_id)
            click.echo(f"token {row.id} ({row.name}) revoked")
    except NotFound as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
