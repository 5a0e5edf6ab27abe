"""The README documents every setting (config.Settings), every command, and the test suite's
own environment variables; each test names what is missing."""

from __future__ import annotations

import re

import click

from config import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
TEST_SUITE_VARIABLES = ("TEST_PG_ADMIN_URL", "SMS_TEST_REDIS_DB", "TEST_WORKERS")


def documented_variables() -> set[str]:
    """The names in the first column of every README table headed ``| Variable |``."""
    found: set[str] = set()
    in_table = False
    for line in README.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        first = line.split("|")[1].strip()
        if first == "Variable":
            in_table = True
        elif in_table:
            found.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first))
    return found


def test_every_setting_has_a_row_in_a_readme_table():
    settings = {name.upper() for name in Settings.model_fields}
    missing = sorted(settings - documented_variables())
    assert missing == [], f"README tables lack: {', '.join(missing)}"


def read_outside_settings() -> set[str]:
    """Variable names the code, the Procfiles and gunicorn.conf.py read themselves."""
    names: set[str] = set()
    sources = [*PROJECT_ROOT.glob("Procfile*"), *PROJECT_ROOT.glob("gunicorn.conf.py")]
    for package in ("sms_service", "workers", "config"):
        sources += (PROJECT_ROOT / package).rglob("*.py")
    for path in sources:
        text = path.read_text(encoding="utf-8")
        names.update(re.findall(r"environ(?:\.get)?\(?\[?\s*[\"']([A-Z][A-Z0-9_]+)[\"']", text))
        names.update(re.findall(r"number\(\"([A-Z][A-Z0-9_]+)\"", text))  # Tuning.from_env
        names.update(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text))  # shell: $PORT, ${PORT:-5000}
    return names


def test_every_readme_row_is_something_the_code_reads():
    settings = {name.upper() for name in Settings.model_fields}
    known = settings | read_outside_settings() | set(TEST_SUITE_VARIABLES)
    unknown = sorted(documented_variables() - known)
    assert unknown == [], f"README documents variables nothing reads: {', '.join(unknown)}"


def test_the_test_suites_own_variables_are_documented():
    missing = [name for name in TEST_SUITE_VARIABLES if f"`{name}`" not in README]
    assert missing == [], f"README lacks the test variables: {', '.join(missing)}"


def _commands(group: click.Group, prefix: str) -> list[str]:
    names = []
    ctx = click.Context(group)  # the command line's groups load their commands on first use
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command.hidden:
            continue
        full = f"{prefix} {name}"
        if isinstance(command, click.Group):
            names.extend(_commands(command, full))
        else:
            names.append(full)
    return names


def test_every_command_appears_in_the_readme():
    from sms_service.cli.main import main

    missing = [c for c in _commands(main, "sms-service") if c not in README]
    assert missing == [], f"README never shows: {', '.join(missing)}"
