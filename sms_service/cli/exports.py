"""``sms-service export``: CSV exports for compliance (consent log, opt-outs, signatures)."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from typing import IO

import click

from sms_service.cli.context import current, parse_when
from sms_service.domain.phones import InvalidPhoneNumber, to_e164


def _require_campaign(engine, keyword: str) -> None:
    """Exit 1 naming the keyword when no campaign has it (an empty export would look like
    a campaign nobody signed)."""
    from sqlalchemy import func, select

    from sms_service.models import Campaign

    with engine.connect() as conn:
        found = conn.execute(
            select(Campaign.id).where(func.upper(Campaign.keyword) == keyword.strip().upper())
        ).first()
    if found is None:
        raise click.ClickException(f"no campaign with keyword {keyword.strip().upper()}")


@click.group("export")
def export() -> None:
    """CSV exports for compliance."""


def _export_options(func):
    func = click.option(
        "--raw",
        is_flag=True,
        help="Exact stored text. Default: cells starting with = + - @ tab or CR get a leading "
        "' so a spreadsheet shows them as text instead of running them as formulas.",
    )(func)
    func = click.option(
        "-o", "--output", type=click.Path(dir_okay=False), help="CSV file; default stdout"
    )(func)
    func = click.option("--phone", help="Only this number (E.164).")(func)
    func = click.option("--until", help="ISO date/time, exclusive (UTC if no offset).")(func)
    func = click.option("--since", help="ISO date/time, inclusive (UTC if no offset).")(func)
    return func


@contextlib.contextmanager
def output_stream(path: str | None) -> Iterator[IO[bytes]]:
    """Where an export goes: stdout, or the file at ``path``.

    A file is written under a temporary name beside it and renamed into place only once
    the export is whole, so a failure part-way leaves no partial file (and a file already
    at ``path`` as it was); the new file keeps that file's permissions, else gets the
    umask's as with ``open``. A path that is not a regular file (``/dev/null``, a named
    pipe) is written in place. A write error names the path, for the one-line error."""
    if not path:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target):
        with _named(path), open(path, "wb") as out:
            yield out
        return
    folder, name = os.path.split(target)
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.partial")
    with _named(path, temporary):
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with _named(path, temporary), os.fdopen(fd, "wb") as out:
            yield out
        if os.path.exists(target):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def _named(path: str, temporary: str | None = None) -> Iterator[None]:
    """An OSError that names no file (a full disk, a file too large), or the temporary
    one, names ``path``: the file the person asked for."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None or exc.filename == temporary:
            exc.filename = path
        raise


def _run_export(kind: str, since, until, phone, output, raw, campaign_key=None) -> None:
    from sms_service.services.exports import ExportFilter, write_consent, write_signatures

    try:
        number = to_e164(phone) if phone else None
        flt = ExportFilter(parse_when(since, "--since"), parse_when(until, "--until"), number)
    except (InvalidPhoneNumber, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    engine, chunks = current().engine, current().settings.export_chunks
    if campaign_key:
        _require_campaign(engine, campaign_key)
    with output_stream(output) as out:
        if kind == "signatures":
            count = write_signatures(
                engine, out, flt, campaign=campaign_key, raw=raw, chunks=chunks
            )
        else:
            optouts = kind == "optouts"
            count = write_consent(engine, out, flt, opt_outs_only=optouts, raw=raw, chunks=chunks)
    click.echo(f"{count} rows", err=True)


@export.command("consent")
@_export_options
def export_consent(since, until, phone, output, raw) -> None:
    """Every consent event (opt-ins, opt-outs, help, signatures, possible opt-outs)."""
    _run_export("consent", since, until, phone, output, raw)


@export.command("optouts")
@_export_options
def export_optouts(since, until, phone, output, raw) -> None:
    """Opt-out events only."""
    _run_export("optouts", since, until, phone, output, raw)


@export.command("signatures")
@_export_options
@click.option("--campaign", "campaign_key", help="Only this campaign's keyword.")
def export_signatures(since, until, phone, output, raw, campaign_key) -> None:
    """Petition signatures."""
    _run_export("signatures", since, until, phone, output, raw, campaign_key)
