"""``sms-service user``: console accounts (create, list, disable).

The password is read from standard input (``--password-stdin``), never from the command
line, where it would sit in the shell history and the process list.
"""

from __future__ import annotations

import sys

import click

from sms_service.db import make_engine, session_scope
from sms_service.errors import BadRequest, NotFound
from sms_service.models import StaffRole


@click.group("user")
def user() -> None:
    """Console accounts and their roles."""


def _engine():
    from sms_service.cli.context import load_settings

    return make_engine(load_settings().database_url)


@user.command("create")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice([r.value for r in StaffRole]))
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--tz", help="The zone the console shows and takes times in (default: DEFAULT_TIMEZONE)."
)
@click.option("--phone", help="The account's own phone, for test texts.")
def create(email: str, role: str, password_stdin: bool, tz: str | None, phone: str | None) -> None:
    """Add an account; the password comes from standard input."""
    from sms_service.services import staff

    if not password_stdin:
        raise click.UsageError("give --password-stdin and the password on standard input")
    password = sys.stdin.readline().rstrip("\r\n")
    engine = _engine()
    try:
        with session_scope(engine) as session:
            created = staff.create_user(
                session=session, email=email, role=role, password=password, timezone=tz,
                phone=phone,
            )  # fmt: skip
            line = f"created {created.email} ({created.role})"
    except BadRequest as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(line)


@user.command("list")
def list_() -> None:
    """Every account: email, role, active or disabled, last sign-in."""
    from sms_service.services import staff

    engine = _engine()
    try:
        with session_scope(engine) as session:
            rows = [
                (u.email, u.role, "active" if u.active else "disabled",
                 u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "never")
                for u in staff.list_users(session=session)
            ]  # fmt: skip
    finally:
        engine.dispose()
    for email, role, state, last in rows:
        click.echo(f"{email}\t{role}\t{state}\tlast sign-in {last}")


@user.command("disable")
@click.argument("email")
def disable(email: str) -> None:
    """Disable an account; its open sessions end at their next request."""
    from sms_service.services import staff

    engine = _engine()
    try:
        with session_scope(engine) as session:
            staff.disable_user(session=session, email=email)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"disabled {email.strip().lower()}")
