"""The development tools refuse to run under production settings, with one clear line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sms_service.cli.main import main

PRODUCTION = {
    "APP_ENV": "Production ",  # read case- and space-insensitively
    "SECRET_KEY": "k" * 40,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "TWILIO_ACCOUNT_SID": "AC" + "3" * 32,
    "PUBLIC_BASE_URL": "https://sms.example.org",
}


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["carrier-sim", "--port", "0"], "the carrier simulator is a development tool"),
        (["dev", "--port", "0", "--sim-port", "0"], "`sms-service dev` is a development tool"),
    ],
)
def test_dev_tools_refuse_production(command, message):
    result = CliRunner().invoke(main, command, env=PRODUCTION)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_dev_sweeps_every_few_seconds_with_the_in_process_queue_only(monkeypatch):
    from config import Settings
    from sms_service.devtools.devserver import DEV_SWEEP_SECONDS, dev_sweep_interval

    monkeypatch.delenv("BROADCAST_SWEEP_SECONDS", raising=False)
    assert dev_sweep_interval(True, Settings()) == DEV_SWEEP_SECONDS < 30
    assert dev_sweep_interval(False, Settings()) is None  # a real Redis: the CLI enqueues
    monkeypatch.setenv("BROADCAST_SWEEP_SECONDS", "30")  # given, even at its default: kept
    assert dev_sweep_interval(True, Settings()) is None
    monkeypatch.delenv("BROADCAST_SWEEP_SECONDS")
    monkeypatch.setenv("broadcast_sweep_seconds", "7")  # the settings ignore the case
    assert dev_sweep_interval(True, Settings()) is None
