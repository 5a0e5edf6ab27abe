"""The ``sms-service`` command: one group assembled from one module per command group.

This module only assembles; what commands share (settings, the engine) lives in
:mod:`sms_service.cli.context`, and no command module imports this one. To add a group,
write ``cli/<name>.py`` (see the context module's docstring) and add two lines here: its
import and its ``main.add_command``.
"""

from __future__ import annotations

import click

from sms_service import log_masking
from sms_service.cli.api_tokens import api_token
from sms_service.cli.broadcasts import broadcast
from sms_service.cli.campaigns import campaign
from sms_service.cli.carrier_sim import carrier_sim_command
from sms_service.cli.consent import consent
from sms_service.cli.consent_chain import COMMANDS as CONSENT_CHAIN_COMMANDS
from sms_service.cli.db import db
from sms_service.cli.dev import dev, serve
from sms_service.cli.errors import FriendlyGroup
from sms_service.cli.exports import export
from sms_service.cli.info import info_command
from sms_service.cli.messages import export_messages
from sms_service.cli.subscribers import subscribers
from sms_service.cli.suppression import suppression
from sms_service.cli.users import user


@click.group(cls=FriendlyGroup)
def main() -> None:
    """SMS keyword campaigns: petitions by text, consent log, broadcasts."""
    log_masking.install()


main.add_command(db)
main.add_command(campaign)
main.add_command(export)
main.add_command(consent)
main.add_command(broadcast)
main.add_command(serve)
main.add_command(dev)
main.add_command(carrier_sim_command)
main.add_command(info_command)
main.add_command(subscribers)
main.add_command(suppression)
# Issue 9's commands join existing groups: consent proof, the message log.
for command in CONSENT_CHAIN_COMMANDS:
    consent.add_command(command)
export.add_command(export_messages)
main.add_command(user)
main.add_command(api_token)

if __name__ == "__main__":  # pragma: no cover
    main()
