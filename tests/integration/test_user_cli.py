"""``sms-service user``: create (password from stdin), list, disable, with clear refusals."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from sms_service.cli.main import main
from sms_service.db import make_engine
from sms_service.services.staff import authenticate


@pytest.fixture
def runner(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    return CliRunner()


def test_create_list_disable(runner, database_url):
    created = runner.invoke(
        main, ["user", "create", "Ada@Example.org", "--role", "organiser", "--password-stdin",
               "--tz", "America/Chicago", "--phone", "202 555 0123"],
        input="a long enough passphrase\n",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert created.output.strip() == "created ada@example.org (organiser)"
    engine = make_engine(database_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT password_hash, timezone, phone FROM staff_users")).one()
    assert row.password_hash.startswith("$argon2id$")
    assert "passphrase" not in row.password_hash
    assert (row.timezone, row.phone) == ("America/Chicago", "+12025550123")
    from sms_service.db import session_scope

    with session_scope(engine) as session:
        assert authenticate(session=session, email="ada@example.org",
                            password="a long enough passphrase") is not None  # fmt: skip
    listed = runner.invoke(main, ["user", "list"])
    assert listed.output.startswith("ada@example.org\torganiser\tactive\t")
    assert runner.invoke(main, ["user", "disable", "ada@example.org"]).exit_code == 0
    assert "\tdisabled\t" in runner.invoke(main, ["user", "list"]).output
    with session_scope(engine) as session:
        assert authenticate(session=session, email="ada@example.org",
                            password="a long enough passphrase") is None  # fmt: skip
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "organiser"], "x" * 20 + "\n", "--password-stdin"),
        (["--role", "organiser", "--password-stdin"], "short\n", "at least 12"),
        (["--role", "boss", "--password-stdin"], "x" * 20 + "\n", "Invalid value for '--role'"),
        (["--role", "admin", "--password-stdin", "--tz", "Mars/Base"], "x" * 20 + "\n", "Mars"),
    ],
)
def test_create_refuses_bad_input_with_one_clear_line(runner, args, stdin, message):
    result = runner.invoke(main, ["user", "create", "bob@example.org", *args], input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_create_twice_and_disable_unknown_are_refused(runner):
    args = ["user", "create", "bob@example.org", "--role", "admin", "--password-stdin"]
    assert runner.invoke(main, args, input="x" * 20 + "\n").exit_code == 0
    again = runner.invoke(main, args, input="x" * 20 + "\n")
    assert again.exit_code == 1 and "already exists" in again.output
    unknown = runner.invoke(main, ["user", "disable", "nobody@example.org"])
    assert unknown.exit_code == 1 and "no account" in unknown.output
