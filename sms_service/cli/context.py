"""What every ``sms-service`` command shares: settings loaded once, one engine, disposed at exit.

Command modules import this module and never :mod:`sms_service.cli.main` (which imports them),
so the command line has no import cycle. Inside a command::

    app = current()                    # this invocation's CliContext
    with session_scope(app.engine) as session:
        ...

The engine is made on first use and disposed when the root click context closes, whatever
the command raised.

Adding a command group (``sms-service users ...``): write ``sms_service/cli/users.py`` with a
``@click.group("users")`` that imports from here, then add its line to ``cli/main.py``'s
``COMMANDS`` (the module is imported when the group runs)::

    "users": ("sms_service.cli.users", "users", ()),
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from config import ConfigError, Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_KEY = "sms_service.cli.context"


def load_settings() -> Settings:
    """Settings from the environment; bad ones end the command with one line per variable."""
    try:
        return Settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


class CliContext:
    """Settings and a database engine made lazily, once per invocation."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        """The environment's settings (loaded on first use)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def engine(self) -> Engine:
        """The engine for DATABASE_URL (made on first use, disposed by :meth:`close`)."""
        if self._engine is None:
            from sms_service.db import make_engine

            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def close(self) -> None:
        """Dispose the engine if one was made."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def current() -> CliContext:
    """This invocation's :class:`CliContext`: made on first call, closed with the root context."""
    root = click.get_current_context().find_root()
    state = root.meta.get(_KEY)
    if state is None:
        state = root.meta[_KEY] = CliContext()
        root.call_on_close(state.close)
    return state


def parse_when(value: str | None, option: str) -> datetime | None:
    """An ISO date or datetime; naive values are read as UTC."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or datetime", param_hint=option
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)
