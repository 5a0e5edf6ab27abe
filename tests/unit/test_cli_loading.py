"""The command line imports a group's module only when that group runs (or is listed)."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from sms_service.cli.main import COMMANDS, main


def test_every_group_loads_under_its_name_with_the_commands_added_to_it():
    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
    export = main.get_command(ctx, "export")
    assert {"consent", "optouts", "signatures", "messages"} <= set(export.commands)
    consent = main.get_command(ctx, "consent")
    assert {"verify", "checkpoint", "seal", "evidence", "opt-out", "pending"} <= set(
        consent.commands
    )
    assert main.get_command(ctx, "no-such-command") is None


def test_an_unknown_command_is_still_refused_with_a_clear_error():
    result = subprocess.run(
        [sys.executable, "-m", "sms_service.cli", "exprt"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "No such command 'exprt'" in result.stderr


def test_an_export_imports_neither_the_other_groups_nor_the_holiday_calendars():
    """What ``sms-service export consent`` starts with (bench/README.md, export_rate.py)."""
    probe = (
        "import json, sys\n"
        "from sms_service.cli.main import main\n"
        "try:\n"
        "    main(['export', 'consent', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "from sms_service.cli.context import load_settings\n"
        "load_settings()  # checks QUIET_HOURS with the quiet-hours module\n"
        "names = ('sms_service.cli.', 'holidays')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(names))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "sms_service.cli.exports" in loaded
    assert not loaded & {
        "sms_service.cli.broadcasts", "sms_service.cli.api_tokens", "sms_service.cli.users",
        "sms_service.cli.carrier_sim", "sms_service.cli.subscribers", "holidays",
    }  # fmt: skip
