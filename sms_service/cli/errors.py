"""One place where the command line turns an expected failure into one clear line.

``sms-service`` is a :class:`FriendlyGroup`: whatever a command raises that a person can
fix (a database that does not exist or is not migrated, a file that cannot be written, a
Redis that does not answer, an unknown alembic revision, a refused setting) ends the
command with ``Error: <one line>`` and exit status 1, never a traceback. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import click

from sms_service.domain.phones import mask_numbers_in


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def database_message(exc: BaseException, database_url: str | None) -> str:
    """What a database error means for the person at the terminal, and what to do."""
    from sqlalchemy.engine import make_url

    from sms_service.db import display_url

    original = getattr(exc, "orig", None) or exc
    text = _first_line(original)
    where = display_url(database_url) if database_url else "the database"
    name = None
    try:
        name = make_url(database_url).database if database_url else None
    except Exception:  # a malformed URL: say so below
        name = None
    lowered = text.lower()
    if "does not exist" in lowered and "database" in lowered:
        return (
            f'database "{name}" does not exist; create it with `sms-service db create` '
            f"(or createdb), then run `sms-service db upgrade`"
        )
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return f"{where} has no tables yet: run `sms-service db upgrade` first"
    if "unable to open database file" in lowered:
        return f"cannot open the SQLite file of {where}: check the folder exists and is writable"
    if "connection" in lowered or "could not connect" in lowered or "refused" in lowered:
        return f"cannot reach {where}: {text} (is the server running? check DATABASE_URL)"
    return f"database error at {where}: {text}"


def friendly_message(exc: BaseException, database_url: str | None = None) -> str | None:
    """One line for an expected failure, or None for a bug (which keeps its traceback)."""
    import redis
    from alembic.util import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, ProgrammingError

    from config import ConfigError
    from sms_service.errors import BadRequest, NotFound

    if isinstance(exc, BadRequest | NotFound | ConfigError):
        return str(exc)
    if isinstance(exc, OperationalError | ProgrammingError):
        return database_message(exc, database_url)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return database_message(exc, database_url)
    if _is_psycopg_error(exc):  # raised outside SQLAlchemy: the exports' COPY path
        return database_message(exc, database_url)
    if isinstance(exc, ArgumentError):
        return f"DATABASE_URL is not a database URL: {_first_line(exc)}"
    if isinstance(exc, CommandError):
        return f"migration: {_first_line(exc)}"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"Redis does not answer: {_first_line(exc)} (check REDIS_URL)"
    if isinstance(exc, OSError) and exc.filename:
        reason = exc.strerror or _first_line(exc)
        return f"cannot use {exc.filename}: {reason}"
    return None


def _is_psycopg_error(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.Error)


# What a shell reports for a command ended by SIGPIPE (128 + 13).
SIGPIPE_STATUS = 141


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit finds no broken pipe
    (and prints no second traceback)."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture)
        pass


class FriendlyGroup(click.Group):
    """A click group whose commands end expected failures with one line and exit 1."""

    def invoke(self, ctx: click.Context):  # click's API
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # The reader of the output stopped reading (`sms-service export … | head`): not
            # an error of ours. Quiet, as a command killed by SIGPIPE, and with its status.
            _quiet_stdout()
            ctx.exit(SIGPIPE_STATUS)
        except Exception as exc:  # sorted below: expected or a bug
            message = friendly_message(exc, _database_url())
            if message is None:
                raise
            # The line may quote a database error, which can name a number.
            raise click.ClickException(mask_numbers_in(message)) from exc


def _database_url() -> str | None:
    """DATABASE_URL as the command saw it (None when the settings themselves failed)."""
    try:
        from config import Settings

        return Settings().database_url
    except Exception:  # only for the message
        return None
