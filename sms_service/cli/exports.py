"""``sms-service export``: CSV exports for compliance (consent log, opt-outs, signatures)."""

from __future__ import annotations

import sys

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


def _run_export(kind: str, since, until, phone, output, raw, campaign_key=None) -> None:
    from sms_service.services.exports import ExportFilter, write_consent, write_signatures

    try:
        number = to_e164(phone) if phone else None
        flt = ExportFilter(parse_when(since, "--since"), parse_when(until, "--until"), number)
    except (InvalidPhoneNumber, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    engine = current().engine
    if campaign_key:
        _require_campaign(engine, campaign_key)
    out = open(output, "wb") if output else sys.stdout.buffer
    try:
        if kind == "signatures":
            count = write_signatures(engine, out, flt, campaign=campaign_key, raw=raw)
        else:
            count = write_consent(engine, out, flt, opt_outs_only=kind == "optouts", raw=raw)
        out.flush()
    finally:
        if output:
            out.close()
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
