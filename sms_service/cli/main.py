"""The ``sms-service`` command: one group assembled from one module per command group.

This module only assembles; what commands share (settings, the engine) lives in
:mod:`sms_service.cli.context`, and no command module imports this one. Each group's module
is imported only when that group is run (or listed, for ``--help``): a command pays for
its own imports, not for every other group's (bench/README.md, "export_rate.py"). To add
a group, write ``cli/<name>.py`` (see the context module's docstring) and add its line to
:data:`COMMANDS`.
"""

from __future__ import annotations

import importlib

import click

from sms_service import log_masking
from sms_service.cli.errors import FriendlyGroup

# name -> (module, attribute, [(module, attribute) of commands added to the group]).
# Issue 9's commands join existing groups: consent proof, the message log.
COMMANDS: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {
    "db": ("sms_service.cli.db", "db", ()),
    "campaign": ("sms_service.cli.campaigns", "campaign", ()),
    "export": ("sms_service.cli.exports", "export",
               (("sms_service.cli.messages", "export_messages"),)),
    "consent": ("sms_service.cli.consent", "consent",
                (("sms_service.cli.consent_chain", "COMMANDS"),)),
    "broadcast": ("sms_service.cli.broadcasts", "broadcast", ()),
    "serve": ("sms_service.cli.dev", "serve", ()),
    "dev": ("sms_service.cli.dev", "dev", ()),
    "carrier-sim": ("sms_service.cli.carrier_sim", "carrier_sim_command", ()),
    "info": ("sms_service.cli.info", "info_command", ()),
    "subscribers": ("sms_service.cli.subscribers", "subscribers", ()),
    "suppression": ("sms_service.cli.suppression", "suppression", ()),
    "user": ("sms_service.cli.users", "user", ()),
    "api-token": ("sms_service.cli.api_tokens", "api_token", ()),
}  # fmt: skip


class LazyGroup(FriendlyGroup):
    """A :class:`FriendlyGroup` whose commands (:data:`COMMANDS`) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute, extras = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            if command.name != cmd_name:  # pragma: no cover - a slip in COMMANDS
                raise RuntimeError(f"{module}.{attribute} is {command.name!r}, not {cmd_name!r}")
            for extra_module, extra_attribute in extras:
                added = getattr(importlib.import_module(extra_module), extra_attribute)
                for sub in added if isinstance(added, list | tuple) else (added,):
                    command.add_command(sub)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup)
def main() -> None:
    """SMS keyword campaigns: petitions by text, consent log, broadcasts."""
    log_masking.install()


if __name__ == "__main__":  # pragma: no cover
    main()
